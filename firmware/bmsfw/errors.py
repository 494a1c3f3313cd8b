# The one shape of a bad-input error in bms-twin: which field, what value, why.
#
# Every module's named error (ConfigError, RecordError, LinkError, ...) is a
# FieldError with its own message prefix, so callers catch ValueError (or the
# named class) and read .field and .value; the message is built here once.


class FieldError(ValueError):
    """`field` was given `value`, which is wrong because `why`."""

    prefix = ""   # names the subsystem in the message, e.g. "config "

    def __init__(self, field, value, why):
        super().__init__("%s%s=%r: %s" % (self.prefix, field, value, why))
        self.field = field
        self.value = value
        self.why = why

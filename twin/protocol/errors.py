"""The one error of the protocol language, and the example lines it shows.

Every refusal, from the parser or from a step constructor, says what was wrong,
quotes the fragment, says what was expected and lists valid lines (PyBaMM's
experiment steps do the same with their `_examples`).
"""

EXAMPLES = (
    "Charge at 100 uA for 2 hours",
    "Discharge at 100 uA until 2.0 V",
    "Charge at 0.1 mA for 1 hour or until 2.6 V",
    "Rest for 30 minutes",
    "Hold at 2.6 V until 5 uA",
    "Repeat 20 times:   (then a more-indented block)",
)


class ProtocolError(ValueError):
    """A protocol line (or a constructor argument) that cannot become a step.

    line_no and line_text are None for errors raised by the constructors; fragment is
    the part of the line that could not be read.
    """

    def __init__(self, problem, expected, line_no=None, line_text=None, fragment=None):
        self.problem = problem
        self.expected = expected
        self.line_no = line_no
        self.line_text = line_text
        self.fragment = fragment
        where = "" if line_no is None else "line %d: " % line_no
        quoted = "" if line_text is None else " in %r" % line_text.strip()
        examples = "\n".join("    " + e for e in EXAMPLES)
        # the first line of the message: what a one-line report (the CLI's) shows
        self.brief = "%s%s%s; expected %s" % (where, problem, quoted, expected)
        message = "%s.\nExamples of valid lines:\n%s" % (self.brief, examples)
        super().__init__(message)


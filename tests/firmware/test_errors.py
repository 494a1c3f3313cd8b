# Every firmware error of the shape (field, value, why) is a
# bmsfw.errors.FieldError (so a ValueError), and its message is what each
# module wrote by hand before: its prefix, field=repr(value), why.
# Run: .venv/bin/python -m pytest tests/firmware/test_errors.py -q
import main

from bmsfw.board_hal import BoardError, BoardInputError
from bmsfw.config import ConfigError
from bmsfw.controller import ControllerError
from bmsfw.errors import FieldError
from bmsfw.link_codec import LinkError
from bmsfw.record import RecordError

CASES = (
    (ConfigError, "config area_mm2=0: must be > 0"),
    (RecordError, "record area_mm2=0: must be > 0"),
    (LinkError, "link area_mm2=0: must be > 0"),
    (ControllerError, "area_mm2=0: must be > 0"),
    (BoardError, "area_mm2=0: must be > 0"),
    (BoardInputError, "area_mm2=0: must be > 0"),
    (main.BoardConfigError, "board_config.area_mm2=0: must be > 0"),
)


def test_each_error_is_a_field_error_with_its_message():
    for cls, message in CASES:
        e = cls("area_mm2", 0, "must be > 0")
        assert isinstance(e, FieldError) and isinstance(e, ValueError), cls
        assert str(e) == message, (cls, str(e))
        assert (e.field, e.value, e.why) == ("area_mm2", 0, "must be > 0")


def test_the_value_is_shown_as_its_repr():
    assert str(ConfigError("auto_form", "yes", "must be True or False")) == \
        "config auto_form='yes': must be True or False"

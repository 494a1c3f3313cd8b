"""The error of a bad HIL setting or port."""
from __future__ import annotations

from bmsfw.errors import FieldError


class HilError(FieldError):
    """A bad HIL setting or port: `field` names it."""

    prefix = "hil "

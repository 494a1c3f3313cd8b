"""The error of a bad HIL setting or port."""
from __future__ import annotations

from bmsfw.errors import FieldError


class HilError(FieldError):
    """A bad HIL setting or port: `field` names it."""

    prefix = "hil "


class FirmwareFailed(RuntimeError):
    """A firmware the twin started did not come up, or ended before its link did:
    the run did not do what was asked (exit 1, not 2); the message carries its last words."""

"""The error of a firmware image that cannot be built as asked."""
from __future__ import annotations

from bmsfw.errors import FieldError


class ImageError(FieldError):
    """A bad option, source or build machine for a firmware image: `field` names it
    (the option, the environment variable, or "source" / "toolchain")."""


class BuildFailed(RuntimeError):
    """make ran and failed: the build did not do what was asked (exit 1, not 2)."""

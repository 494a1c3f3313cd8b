"""Reading a file a user names (a protocol, a parameter set, a cycler, a study): a
regular file only, of bounded size, UTF-8 with or without a byte-order mark, and
every refusal naming the file and saying what was expected.

A device or a pipe (/dev/zero, a FIFO) would never end, a huge file would fill
memory, and a Latin-1 or binary file would otherwise fail with a decode error that
names no file; deeply nested TOML would exhaust Python's recursion.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from bmsfw.errors import FieldError

# Far beyond any protocol, parameter set or study (the shipped ones are < 20 kB).
MAX_BYTES = 1 << 20


class InputFileError(FieldError):
    """A named input file that cannot be read as text: field is what the file is for."""


def read_text(path, what: str, max_bytes: int = MAX_BYTES) -> str:
    """The text of `path` (what: the input it is, e.g. "protocol file")."""
    path = Path(path)
    try:
        if not path.exists():
            raise InputFileError(what, str(path), "no such file")
        if not path.is_file():
            raise InputFileError(what, str(path), "not a regular file (a directory, device or pipe); "
                                 "a text file expected")
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise InputFileError(what, str(path), "cannot be read (%s)" % (error.strerror or error)) from None
    if len(data) > max_bytes:
        raise InputFileError(what, str(path), "larger than %d bytes; a text file of at most that size "
                             "expected" % max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise InputFileError(what, str(path), "byte 0x%02x at line %d (offset %d) is not UTF-8; a UTF-8 "
                             "text file expected" % (data[error.start], line, error.start)) from None


def load_toml(path, what: str) -> dict:
    """The TOML table of `path`; InputFileError for anything that is not TOML."""
    text = read_text(path, what)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputFileError(what, str(path), "not valid TOML (%s)" % error) from None
    except RecursionError:
        raise InputFileError(what, str(path), "nested too deeply to read; TOML of plain tables "
                             "and lists expected") from None

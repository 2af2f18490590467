"""File names that are not UTF-8: how MARC stores them losslessly and shows them.

POSIX file names are bytes. Python decodes them with ``os.fsdecode`` (UTF-8 plus
``surrogateescape``): each byte that is not part of valid UTF-8, ``0xHH``, becomes the lone
surrogate ``U+DCHH``, and ``os.fsencode`` gives the same bytes back, so such a ``str`` opens the
right file. Lone surrogates cannot be written to SQLite or PostgreSQL text, a JSON document or a
UTF-8 terminal, so:

- the catalog stores a path with :func:`to_stored` and reads it back with :func:`from_stored`
  (a lossless round trip; UTF-8 paths, nearly all of them, are stored unchanged);
- people and JSON get :func:`printable`: each undecodable byte written ``\\xHH``, the form
  ``ls --quoting-style=escape`` and Python's ``bytes`` repr use.

>>> name = os.fsdecode(b"/cam/\\xff\\xfe_bad.mp4")
>>> to_stored(name)
'/cam/%FF%FE_bad.mp4/'
>>> from_stored(to_stored(name)) == name, printable(name)
(True, '/cam/\\\\xff\\\\xfe_bad.mp4')
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote_to_bytes

_ESCAPED = re.compile("[\udc80-\udcff]")


def is_utf8(text: str) -> bool:
    """Whether ``text`` holds no undecodable byte of a file name (no lone surrogate)."""
    return _ESCAPED.search(text) is None


def printable(text: str) -> str:
    """``text`` with each undecodable byte of a file name written ``\\xHH`` (valid UTF-8)."""
    if is_utf8(text):
        return text
    return _ESCAPED.sub(lambda m: f"\\x{ord(m.group()) - 0xDC00:02x}", text)


def printable_json(text: str) -> str:
    """JSON text from ``json.dumps(..., ensure_ascii=False)`` whose strings hold undecodable
    bytes: each written ``\\xHH`` in the JSON, so the string read back is :func:`printable`'s."""
    if is_utf8(text):
        return text
    return _ESCAPED.sub(lambda m: f"\\\\x{ord(m.group()) - 0xDC00:02x}", text)


def printable_error(error: UnicodeEncodeError) -> tuple[str, int]:
    """A codec error handler (``codecs.register_error``): undecodable bytes of file names
    written ``\\xHH``, any other unencodable character ``\\uXXXX``."""
    bad = error.object[error.start : error.end]
    text = "".join(
        printable(c) if not is_utf8(c) else c.encode("ascii", "backslashreplace").decode("ascii")
        for c in bad
    )
    return text, error.end


def to_stored(path: str) -> str:
    """The catalog's text for an absolute file path (see :func:`from_stored`).

    A UTF-8 path is its own text. Any other gets its undecodable bytes and its ``%`` signs
    percent-escaped (``%FF``, ``%25``) and a trailing ``/``, which no file path has: unambiguous,
    and folder prefixes stay as they are (``/cam/`` still starts ``/cam/%FF.mp4/``).
    """
    if is_utf8(path):
        return path
    text = path.replace("%", "%25")
    return _ESCAPED.sub(lambda m: f"%{ord(m.group()) - 0xDC00:02X}", text) + "/"


def from_stored(text: str) -> str:
    """The path :func:`to_stored` stored as ``text``."""
    if len(text) > 1 and text.endswith("/"):
        return os.fsdecode(unquote_to_bytes(text[:-1]))
    return text

"""MARC's exception tree.

Every error a user can cause or meet derives from :class:`MarcError`; each subsystem owns its
subclasses. Messages name the file or value involved and say what to do, so the CLI can print
``str(err)`` as one line on stderr without a traceback.
"""

from __future__ import annotations


class MarcError(Exception):
    """Base class of every error MARC raises on purpose."""


class ConfigError(MarcError):
    """A setting (``MARC_*`` variable, ``.env`` or argument) is invalid."""


class MediaError(MarcError):
    """A file could not be opened, probed or decoded as a video."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class StoreError(MarcError):
    """The vector store or the catalog failed or is unreachable."""


class ModelError(MarcError):
    """A model could not be loaded or run (missing checkpoint, hub unreachable, ...)."""


def one_line(err: BaseException, *, limit: int | None = None) -> str:
    """``err``'s message as one line: whitespace collapsed, its type when it has no message.

    ``limit`` cuts a longer message to that many characters, ending in ``...``.
    """
    text = " ".join(str(err).split()) or type(err).__name__
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text

"""Where things live: the forms of ``MARC_QDRANT_URL``, what makes a usable ``MARC_HOME`` and
which folders MARC never writes into.

Checks only (no client is made, nothing is created here), so that
:class:`~marc.memory.core.settings.Settings` refuses a bad value at start-up;
:func:`marc.memory.stores.open_store` opens the store.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

__all__ = ["URL_FORMS", "check_home", "client_args", "is_system_folder"]

#: The forms of ``MARC_QDRANT_URL``, as error messages list them.
URL_FORMS = (
    "http://host[:port] or https://host[:port] (a Qdrant server; the port defaults to 6333), "
    "':memory:' (qdrant-client in memory, gone when the process ends), "
    "file:///abs/path or file:relative/path (qdrant-client's local mode in that folder), "
    "or empty (the embedded Qdrant Edge store)"
)


def client_args(url: str) -> dict[str, str]:
    """The one :class:`QdrantStore` argument a ``MARC_QDRANT_URL`` value stands for.

    >>> client_args("http://localhost:6333")
    {'url': 'http://localhost:6333'}
    >>> client_args(":memory:")
    {'location': ':memory:'}
    >>> client_args("file:///srv/marc/qdrant")
    {'path': '/srv/marc/qdrant'}

    A relative ``file:`` path is taken from the working directory, ``~`` from the home folder.

    Raises:
        ValueError: ``url`` is none of :data:`URL_FORMS`; the message names it and them.
    """
    if url == ":memory:":
        return {"location": url}
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        _check_server_url(url, parts)
        return {"url": url}
    if parts.scheme == "file":
        return {"path": _file_url_path(url, parts)}
    raise ValueError(_bad_url(url, _scheme_hint(url, parts)))


def _bad_url(url: str, problem: str) -> str:
    return f"{url!r} is not a Qdrant location ({problem}); use {URL_FORMS}"


def _scheme_hint(url: str, parts: SplitResult) -> str:
    if parts.scheme in ("grpc", "grpcs"):
        return "gRPC is not supported: give the server's REST URL, e.g. http://host:6333"
    if url.startswith(("/", "~", ".")):
        return f"did you mean 'file:{url}'?"
    if "memory" in url:
        return "did you mean ':memory:'?"
    if "://" not in url:
        return f"no scheme: did you mean 'http://{url}'?"
    return f"unknown scheme {parts.scheme!r}"


def _check_server_url(url: str, parts: SplitResult) -> None:
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError(_bad_url(url, "the port is not a number up to 65535")) from None
    if not parts.hostname:
        raise ValueError(_bad_url(url, "no host"))
    if parts.query or parts.fragment:
        raise ValueError(_bad_url(url, "a server URL takes no '?query' or '#fragment'"))


def _file_url_path(url: str, parts: SplitResult) -> str:
    if parts.netloc:
        raise ValueError(
            _bad_url(
                url,
                f"a file URL names no host: write file:///{parts.netloc}{parts.path} for an "
                f"absolute folder, file:{parts.netloc}{parts.path} for a relative one",
            )
        )
    if parts.query or parts.fragment:
        raise ValueError(_bad_url(url, "percent-encode '?' and '#' in a folder name"))
    if not parts.path:
        raise ValueError(_bad_url(url, "no folder"))
    return str(Path(unquote(parts.path)).expanduser().absolute())


#: Virtual file systems: nothing of MARC's can be kept there.
_VIRTUAL = (Path("/proc"), Path("/sys"), Path("/dev"))
#: Folders whose contents belong to the system: MARC writes into none of them itself.
_SYSTEM = (
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/opt", "/proc",
    "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var", "/Applications",
    "/Library", "/System", "/Users", "/private",
)  # fmt: skip


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def is_system_folder(path: Path) -> bool:
    """Whether ``path`` (after resolving it) is a system folder MARC must not write files into:
    ``/``, a top-level system folder (``/etc``, ``/usr``, ``/tmp``, ...), anything on a virtual
    file system (``/proc``, ``/sys``, ``/dev``), or the user's home folder itself.

    >>> is_system_folder(Path("/")), is_system_folder(Path("/usr")), is_system_folder(Path("/x/y"))
    (True, True, False)
    """
    p = Path(path).expanduser().resolve()
    if any(_within(p, root) for root in _VIRTUAL):
        return True
    return str(p) in _SYSTEM or p == Path.home().resolve()


def check_home(home: Path) -> None:
    """Refuse a ``MARC_HOME`` that cannot hold MARC's files; it need not exist yet.

    Raises:
        ValueError: ``home`` is on a virtual file system, is (or lies under) a file, or its
            nearest existing folder is not writable.
    """
    home = Path(home)
    if any(_within(home, root) for root in _VIRTUAL):
        raise ValueError(f"{home} is on a virtual file system; choose a folder on a disk")
    existing = home
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == home else f"lies under the file {existing}"
        raise ValueError(f"{home} {what}, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{existing} is not writable, so {home} cannot hold MARC's files")

"""``marc serve``: the archive in a browser, over the same core the command line uses.

:func:`create_app` builds the ASGI app (FastAPI) over a :class:`Backend` (one
:class:`~marc.memory.archive.Archive` and one :class:`~marc.agent.conversation.Conversation`);
:func:`serve` runs it with uvicorn. The pages are server-rendered Jinja templates with a little
vanilla JavaScript (``static/``), no build step and nothing from a CDN. See ``docs/serve.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marc.agent.server.app import create_app
from marc.agent.server.backend import Backend
from marc.agent.server.security import check_bind

__all__ = ["Backend", "create_app", "serve"]


def serve(
    config: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    token: str | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the archive of ``config`` (an ``AgentConfig`` or a ``Settings``) until interrupted.

    The socket is bound before anything else, so a port in use fails at once (``OSError``);
    ``on_ready`` is then called with the server's URL.

    Raises:
        ValueError: ``host`` is not a loopback address and there is no ``token``.
        OSError: the address cannot be bound.
    """
    import socket

    import uvicorn

    check_bind(host, token)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    backend = Backend(config)
    try:
        app = create_app(backend, token=token)
        config_ = uvicorn.Config(
            app, log_level="warning", access_log=False, timeout_graceful_shutdown=2
        )
        server = uvicorn.Server(config_)
        if on_ready is not None:
            bound = sock.getsockname()[1]
            name = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
            on_ready(f"http://{name}:{bound}")
        server.run(sockets=[sock])
    finally:
        sock.close()
        backend.close()

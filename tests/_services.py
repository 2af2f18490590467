"""Real network services started inside a test: an HTTP server with a scripted answer, a TCP
service that says something odd (or nothing), all on free local ports.

Imported by test modules as ``from _services import ...`` (pytest puts ``tests/`` on ``sys.path``
through ``pythonpath`` in pyproject.toml; ``tests`` itself is never imported as a package).
"""

from __future__ import annotations

import http.server
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: The environment of the tests' tiny-model archives run as real processes (test_agent,
#: test_serving, test_vllm_server): short events, 16 frames, short answers.
TINY_ENV = {
    "MARC_MODELS": "tiny",
    "MARC_MAX_EVENT_S": "4.0",
    "MARC_MIN_EVENT_S": "1.0",
    "MARC_VLM_FRAMES": "16",
    "MARC_VLM_MAX_NEW_TOKENS": "8",
}

#: ``answer(method, path, headers, body) -> (status, content type, text)``
Answer = Callable[[str, str, object, bytes], tuple[int, str, str]]


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's ``answer``."""

    def _reply(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = self.server.answer  # type: ignore[attr-defined]
        try:
            status, ctype, text = answer(self.command, self.path, self.headers, body)
        except Exception as err:  # a bug in the fake: show it in the client's error
            status, ctype, text = 500, "text/plain", f"fake server error: {err!r}"
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _reply

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[str]:
    """Serve ``server`` in a thread until the block ends; yields its ``http://`` URL."""
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def http_service(answer: Answer) -> Iterator[str]:
    """A real HTTP server on a free local port, answering with ``answer``; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.answer = answer  # type: ignore[attr-defined]
    with serving(server) as url:
        yield url


@contextmanager
def tcp_service(reply: bytes | None) -> Iterator[str]:
    """A TCP service that sends ``reply`` and hangs up, or (``None``) reads the request and never
    answers until the block ends."""
    stop = threading.Event()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            if reply is not None:
                self.request.sendall(reply)
                return
            try:
                self.request.recv(1 << 16)
            except OSError:
                return
            stop.wait(30)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    try:
        with serving(server) as url:
            yield url
    finally:
        stop.set()

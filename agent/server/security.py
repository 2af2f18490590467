"""Who may talk to ``marc serve``: the loopback address by default, a token otherwise.

- Without ``MARC_API_TOKEN`` the server binds only a loopback address (``127.0.0.1``,
  ``localhost``, ``::1``; :func:`check_bind` refuses anything else in one line) and answers only
  requests whose ``Host`` is a loopback name, so a web page elsewhere cannot reach it through DNS
  rebinding.
- With ``MARC_API_TOKEN`` every request but the login page, the stylesheet and ``/healthz``
  carries the token: ``Authorization: Bearer <token>``, or the cookie the login page sets (an
  HMAC of the token, ``HttpOnly``, ``SameSite=Strict``; the token itself is never stored in
  the browser). A page without it is sent to the login page, an API call gets 401.

Requests that change something (an ask, an image search) must have a JSON or image body, which
a cross-site form cannot send without the browser asking first (CORS preflight, never granted).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from starlette.requests import Request

__all__ = ["COOKIE", "LOOPBACK_NAMES", "authorized", "check_bind", "cookie_value", "host_allowed"]

COOKIE = "marc_login"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
#: What is reachable without the token: the login page, its stylesheet, the liveness probe.
PUBLIC = frozenset({"/login", "/static/style.css", "/healthz"})


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to bind a non-loopback ``host`` without a token (``ValueError``, one line)."""
    if not is_loopback(host) and not token:
        raise ValueError(
            f"--host {host}: binding an address other than 127.0.0.1 needs MARC_API_TOKEN "
            "(clients then send it as a bearer token or log in with it)"
        )


def cookie_value(token: str) -> str:
    """The login cookie for ``token``: proves the token was given without holding it."""
    return hmac.new(token.encode(), b"marc serve login", hashlib.sha256).hexdigest()


def authorized(request: Request, token: str) -> bool:
    """Whether ``request`` carries ``token`` (bearer header or login cookie)."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer ") and hmac.compare_digest(
        auth[7:].strip().encode(), token.encode()
    ):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return hmac.compare_digest(cookie.encode(), cookie_value(token).encode())


def host_allowed(request: Request) -> bool:
    """Whether the ``Host`` header names a loopback address (any port)."""
    host = request.headers.get("host", "")
    if host.startswith("["):  # [::1]:8080
        name = host[: host.find("]") + 1]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return is_loopback(name)

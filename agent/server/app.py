"""The ``marc serve`` application: the pages, the JSON API and the media routes.

The API answers with the CLI's ``--json`` contracts (``/api/search`` is ``marc search --json``,
``/api/ask`` is ``marc ask --json``, ...), produced by the same functions
(:class:`~marc.agent.server.backend.Backend`); FastAPI documents it at ``/docs``
(``/openapi.json``). Media routes take catalog ids only: the file sent is the one the catalog
records for that id (or a copy made from it in ``MARC_HOME/serve``), never a path from the
request. See ``docs/serve.md``.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from importlib import resources
from io import BytesIO
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

import jinja2
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from marc.agent.server import security
from marc.agent.server.backend import Backend
from marc.memory.core.errors import ConfigError, MarcError, MediaError, StoreError, one_line
from marc.memory.core.events import Filters

__all__ = ["UPLOAD_LIMIT", "create_app"]

#: Largest example picture a search accepts (bytes); it is decoded in memory, never written.
UPLOAD_LIMIT = 10 * 1024 * 1024
#: The graph's nodes in order, as the ask page shows them.
NODES = ("rewrite", "retrieve", "compress", "answer", "cite")
_STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".png": "image/png"}
_NO_STORE = {"Cache-Control": "no-store"}


class AskRequest(BaseModel):
    """``marc ask``'s arguments."""

    question: str = Field(min_length=1, description="The question, in words.")
    thread: str | None = Field(None, description="Continue this thread (default: a new one).")
    k: int = Field(3, ge=1, le=50, description="Events to retrieve.")
    camera: str | None = Field(None, description="Only this camera (kept by the thread).")
    since: str | None = Field(None, description="Only events ending after this ISO time.")
    until: str | None = Field(None, description="Only events starting before this ISO time.")
    clear_filters: bool = Field(False, description="Forget the thread's earlier filters.")


def _static_files() -> dict[str, tuple[bytes, str]]:
    """The package's static files, read once: a request names one of these, never a path."""
    out = {}
    for f in resources.files("marc.agent.server").joinpath("static").iterdir():
        suffix = "." + f.name.rsplit(".", 1)[-1]
        if suffix in _STATIC_TYPES:
            out[f.name] = (f.read_bytes(), _STATIC_TYPES[suffix])
    try:  # Swagger UI for /docs, offline (no CDN)
        import swagger_ui_bundle

        root = resources.files(swagger_ui_bundle).joinpath("vendor")
        ui = next(d for d in root.iterdir() if d.name.startswith("swagger-ui"))
        for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
            out[name] = (ui.joinpath(name).read_bytes(), _STATIC_TYPES["." + name.split(".")[-1]])
    except (ImportError, StopIteration, OSError):
        pass
    return out


def create_app(backend: Backend, *, token: str | None = None) -> FastAPI:
    """The ASGI app over ``backend``; with ``token`` every request must carry it."""
    app = FastAPI(
        title="MARC",
        summary="The archive's events, search, and answers with evidence (marc serve).",
        version="1",
        docs_url=None,  # served below with the vendored Swagger UI (no CDN)
        redoc_url=None,
    )
    static = _static_files()
    pages = jinja2.Environment(
        loader=jinja2.PackageLoader("marc.agent.server", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )

    def page(name: str, request: Request, **context: Any) -> HTMLResponse:
        html = pages.get_template(name).render(
            request=request, nav=name.removesuffix(".html"), login=bool(token), **context
        )
        return HTMLResponse(html)

    # ----------------------------------------------------------------------------- security
    @app.middleware("http")
    async def guard(request: Request, call_next):
        if not token and not security.host_allowed(request):
            return JSONResponse({"error": "unknown host"}, status_code=400)
        path = request.url.path
        if token and path not in security.PUBLIC and not security.authorized(request, token):
            if path.startswith(("/api/", "/media/", "/openapi")):
                return JSONResponse({"error": "needs MARC_API_TOKEN"}, status_code=401)
            return RedirectResponse(f"/login?next={quote(path)}", status_code=303)
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.exception_handler(MarcError)
    async def marc_error(request: Request, e: MarcError):
        code = 400 if isinstance(e, ConfigError) else 503 if isinstance(e, StoreError) else 500
        if isinstance(e, MediaError):
            code = 422
        return JSONResponse({"error": one_line(e)}, status_code=code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        return JSONResponse({"error": e.detail}, status_code=e.status_code, headers=e.headers)

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, e: ValueError):
        return JSONResponse({"error": one_line(e)}, status_code=400)

    @app.exception_handler(FileNotFoundError)
    async def not_found(request: Request, e: FileNotFoundError):
        return JSONResponse({"error": one_line(e)}, status_code=404)

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request, next: str = "/"):  # noqa: A002 - the query's name
        return page("login.html", request, next=_local(next), failed=False)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        body = (await request.body())[:4096].decode(errors="replace")
        form = {k: v[0] for k, v in parse_qs(body).items()}
        target = _local(form.get("next", "/"))
        if not token or not _equal(form.get("token", ""), token):
            return page("login.html", request, next=target, failed=True)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            security.COOKIE, security.cookie_value(token), httponly=True, samesite="strict"
        )
        return response

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"ok": True}

    @app.get("/static/{name}", include_in_schema=False)
    def static_file(name: str):
        if name not in static:
            raise HTTPException(404, "no such file")
        data, media_type = static[name]
        return Response(data, media_type=media_type, headers={"Cache-Control": "max-age=300"})

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request):
        return page("docs.html", request, swagger="swagger-ui-bundle.js" in static)

    @app.get("/openapi-3.0.json", include_in_schema=False)
    def openapi_30():
        """``/openapi.json`` (OpenAPI 3.1) in the 3.0 form the vendored Swagger UI 4 reads."""
        return {**_openapi_30(app.openapi()), "openapi": "3.0.3"}

    # -------------------------------------------------------------------------------- pages
    @app.get("/", include_in_schema=False)
    def timeline_page(request: Request):
        return page("timeline.html", request)

    @app.get("/search", include_in_schema=False)
    def search_page(request: Request):
        cameras = sorted(backend.archive.status()["cameras"])
        return page("search.html", request, cameras=cameras, upload_limit=UPLOAD_LIMIT)

    @app.get("/ask", include_in_schema=False)
    def ask_page(request: Request):
        return page("ask.html", request, nodes=NODES)

    @app.get("/ingest", include_in_schema=False)
    def ingest_page(request: Request):
        return page("ingest.html", request)

    @app.get("/event/{event_id}", include_in_schema=False)
    def event_page(request: Request, event_id: str):
        event = backend.event(event_id)
        if event is None:
            raise HTTPException(404, f"{event_id}: no such event")
        frames = backend.config.memory.encoder.frames_per_event
        return page("event.html", request, event=event, frames=frames)

    # ---------------------------------------------------------------------------------- API
    @app.get("/api/status", tags=["archive"])
    def status() -> dict[str, Any]:
        """``marc status --json``: counts of videos, events, failures and vectors."""
        return backend.archive.status()

    @app.get("/api/videos", tags=["archive"])
    def videos(
        camera: Annotated[list[str] | None, Query(description="Only this camera.")] = None,
        failed: Annotated[bool, Query(description="Only files that failed.")] = False,
    ) -> list[dict[str, Any]]:
        """``marc videos --json``: one row per video with its ``state``."""
        return backend.archive.videos(cameras=camera, failed=failed)

    @app.get("/api/events", tags=["archive"])
    def events(
        camera: Annotated[list[str] | None, Query(description="Only this camera.")] = None,
        since: Annotated[str | None, Query(description="Events ending after (ISO).")] = None,
        until: Annotated[str | None, Query(description="Events starting before (ISO).")] = None,
        video: Annotated[list[str] | None, Query(description="Only this video id.")] = None,
        limit: Annotated[int | None, Query(ge=1)] = None,
    ) -> list[dict[str, Any]]:
        """``marc events --json``: stored events in time order."""
        filters = Filters.parse(cameras=camera, since=since, until=until, videos=_ids(video))
        return backend.archive.events(filters=filters, limit=limit)

    @app.get("/api/ingest", tags=["archive"])
    def ingest() -> dict[str, Any]:
        """Running ingests and watches (files done and left, the file being worked on, frames
        per second, their last failures), ``marc status --json`` and the last failed files."""
        return backend.ingest()

    @app.get("/api/events/{event_id}", tags=["archive"])
    def event(event_id: str) -> dict[str, Any]:
        """One event (a ``marc events --json`` row) with ``video_row`` (its ``marc videos``
        row) and its ``previous``/``next`` events in the same recording."""
        found = backend.event(event_id)
        if found is None:
            raise HTTPException(404, f"{event_id}: no such event")
        return found

    @app.get("/api/search", tags=["search"])
    def search(
        q: Annotated[str, Query(min_length=1, description="What to look for, in words.")],
        k: Annotated[int, Query(ge=1, le=100)] = 3,
        camera: Annotated[list[str] | None, Query()] = None,
        since: Annotated[str | None, Query()] = None,
        until: Annotated[str | None, Query()] = None,
        video: Annotated[list[str] | None, Query(description="Only this video id.")] = None,
    ) -> list[dict[str, Any]]:
        """``marc search TEXT --json``: the k events closest to a description."""
        filters = Filters.parse(cameras=camera, since=since, until=until, videos=_ids(video))
        return backend.search(q, k, filters)

    @app.post(
        "/api/search/image",
        tags=["search"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def search_image(
        request: Request,
        k: Annotated[int, Query(ge=1, le=100)] = 3,
        camera: Annotated[list[str] | None, Query()] = None,
        since: Annotated[str | None, Query()] = None,
        until: Annotated[str | None, Query()] = None,
    ) -> list[dict[str, Any]]:
        """``marc search --image PATH --json``: the body is the picture (``Content-Type:
        image/...``, at most 10 MiB); it is decoded in memory and never written to disk."""
        if not request.headers.get("content-type", "").startswith("image/"):
            raise HTTPException(415, "send the picture as the body, with an image/* Content-Type")
        filters = Filters.parse(cameras=camera, since=since, until=until)
        data = await _read_limited(request, UPLOAD_LIMIT)
        picture = _picture(data)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(backend.search, picture, k, filters)

    @app.post("/api/ask", tags=["ask"])
    def ask(body: AskRequest) -> dict[str, Any]:
        """``marc ask --json``: the answer, its thread and its evidence."""
        return backend.ask(body.question, **_ask_options(body))

    @app.post("/api/ask/stream", tags=["ask"])
    def ask_stream(body: AskRequest) -> StreamingResponse:
        """The same ask as server-sent events: ``node`` (a node has finished: ``rewrite``,
        ``retrieve``, ``compress``, ``answer``, ``cite`` or ``nothing``), then ``result``
        (``marc ask --json``'s object) or ``error`` (``{"error": one line}``)."""
        options = _ask_options(body)
        if body.thread is not None and not backend.conversation.exists(body.thread):
            raise HTTPException(404, f"{body.thread}: no such thread")
        return StreamingResponse(
            _stream_ask(backend, body.question, options),
            media_type="text/event-stream",
            headers={**_NO_STORE, "X-Accel-Buffering": "no"},
        )

    @app.get("/api/threads", tags=["ask"])
    def threads() -> list[dict[str, Any]]:
        """``marc thread list --json``: every thread, most recent first."""
        return backend.conversation.summaries()

    @app.get("/api/threads/{thread}", tags=["ask"])
    def thread(thread: str) -> dict[str, Any]:
        """``marc thread show ID --json``: a thread's messages with their evidence."""
        found = backend.thread(thread)
        if found is None:
            raise HTTPException(404, f"{thread}: no such thread")
        return found

    # -------------------------------------------------------------------------------- media
    @app.head("/media/video/{video_id}", include_in_schema=False)
    @app.get("/media/video/{video_id}", tags=["media"])
    def video_file(video_id: str) -> FileResponse:
        """The video, browser-playable (the original, or a cached H.264 copy); HTTP ranges."""
        path = backend.playable(video_id)
        if path is None:
            raise HTTPException(404, f"{video_id}: no such video")
        return FileResponse(path, media_type=_video_type(path), content_disposition_type="inline")

    @app.get("/media/thumb/{event_id}", tags=["media"])
    def thumbnail(event_id: str) -> FileResponse:
        """The frame in the middle of an event (JPEG, cached in ``MARC_HOME/serve``)."""
        path = backend.thumbnail(event_id)
        if path is None:
            raise HTTPException(404, f"{event_id}: no such event")
        return FileResponse(path, media_type="image/jpeg")

    @app.get("/media/frames/{event_id}/{i}", tags=["media"])
    def encoder_frame(event_id: str, i: int) -> FileResponse:
        """Frame ``i`` of those the encoder sampled from the event (JPEG)."""
        paths = backend.encoder_frames(event_id)
        if paths is None or not 0 <= i < len(paths):
            raise HTTPException(404, f"{event_id}/{i}: no such frame")
        return FileResponse(paths[i], media_type="image/jpeg")

    @app.get("/media/sheet/{thread}/{message}", tags=["media"])
    def contact_sheet(thread: str, message: int) -> FileResponse:
        """The contact sheet of the answer at ``message`` in ``thread`` (PNG)."""
        path = backend.sheet(thread, message)
        if path is None:
            raise HTTPException(404, f"{thread}/{message}: no answer with evidence there")
        return FileResponse(path, media_type="image/png")

    app.state.backend = backend
    return app


# ---------------------------------------------------------------------------------- helpers
def _ids(video: list[str] | None) -> list[str] | None:
    """Video filters of a request: catalog ids only (a path would reach the file system)."""
    if video is None:
        return None
    for v in video:
        if not v or "/" in v or "\\" in v or v.startswith("."):
            raise HTTPException(400, f"{v!r}: give a video id (marc videos --json lists them)")
    return video


def _ask_options(body: AskRequest) -> dict[str, Any]:
    from marc.agent.graph import graph_input

    graph_input(body.question, camera=body.camera, since=body.since, until=body.until)  # checks
    return {
        "thread": body.thread,
        "k": body.k,
        "camera": body.camera,
        "since": body.since,
        "until": body.until,
        "clear_filters": body.clear_filters,
    }


def _stream_ask(backend: Backend, question: str, options: dict[str, Any]) -> Iterator[str]:
    """Run the ask in a thread; yield its nodes as they finish, then its result (SSE)."""
    out: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            result = backend.ask(question, on_node=lambda n: out.put(("node", n)), **options)
            out.put(("result", result))
        except Exception as e:  # noqa: BLE001 - reported to the page as one line
            out.put(("error", {"error": one_line(e)}))
        finally:
            out.put(None)

    threading.Thread(target=work, name="marc-ask", daemon=True).start()
    yield _sse("start", {"nodes": list(NODES)})
    while (item := out.get()) is not None:
        yield _sse(*item)


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the picture is larger than {limit // (1024 * 1024)} MiB")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise HTTPException(413, f"the picture is larger than {limit // (1024 * 1024)} MiB")
    if not data:
        raise HTTPException(400, "no picture in the request body")
    return bytes(data)


def _picture(data: bytes):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise HTTPException(400, f"not a picture MARC can read ({one_line(e)})") from None
    return image.convert("RGB")


def _openapi_30(node: Any) -> Any:
    """OpenAPI 3.1 schemas as 3.0 ones: ``anyOf: [X, {type: null}]`` becomes ``X`` with
    ``nullable: true`` (all FastAPI's descriptions need)."""
    if isinstance(node, list):
        return [_openapi_30(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_30(v) for k, v in node.items()}
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1:
            out.update(rest[0])
        else:
            out["anyOf"] = rest
        out["nullable"] = True
    return out


def _video_type(path) -> str:
    return "video/webm" if str(path).lower().endswith(".webm") else "video/mp4"


def _local(target: str) -> str:
    """A redirect target on this server only (no ``//host`` or ``scheme:``)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _equal(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())

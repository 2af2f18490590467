"""``marc mcp``: the archive as an MCP server over stdio, for desktop assistants and agent
frameworks that speak the Model Context Protocol (no LangGraph needed on their side).

Tools, each answering with the same JSON text as the matching ``marc ... --json`` command:

- ``ask``: a question, answered with its evidence (``marc ask --json``), plus the contact sheet of
  the cited events as a PNG image; ``thread`` continues a conversation (the same threads as
  ``marc ask --thread``), ``evidence_dir`` also keeps the clips there (``--evidence DIR``).
- ``search``: the events closest to a description (``marc search --json``).
- ``events``: stored events, of one video or of all (``marc events --json``).
- ``videos``: one row per video in the catalog (:meth:`marc.memory.archive.Archive.videos`).

Nothing opens at start: the catalog, the vector store and the models open on the first call that
needs them and stay open. Calls run one at a time on one worker thread, which owns them all.
Errors a caller can cause (a bad time, an unknown video, an unreachable store) come back as a
one-line tool error.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property, partial
from pathlib import Path
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, ContentBlock, ImageContent, TextContent
from pydantic import Field

from marc.memory.core.config import AgentConfig, as_config
from marc.memory.core.errors import MarcError, one_line

__all__ = ["Backend", "build_server", "serve"]

T = TypeVar("T")

INSTRUCTIONS = (
    "MARC answers questions about a video archive (surveillance / dashcam recordings) with "
    "evidence: the recorded events an answer comes from (file, camera, seconds, wall-clock time, "
    "score). Use `ask` for questions, `search` to find moments by description, `events` and "
    "`videos` to list what is stored. Times are ISO 8601 (UTC unless they carry an offset)."
)

Camera = Annotated[str | None, Field(description="Only this camera.")]
Since = Annotated[
    str | None, Field(description="Only events ending after this ISO 8601 time or date.")
]
Until = Annotated[
    str | None,
    Field(description="Only events starting before this ISO 8601 time, or through this date."),
]


def _json(data: Any) -> str:
    """The CLI's ``--json`` text (without its final newline)."""
    return json.dumps(data, indent=2, ensure_ascii=False)


class Backend:
    """What the tools call: an :class:`~marc.memory.archive.Archive` and a
    :class:`~marc.agent.conversation.Conversation` sharing one retriever, opened on first use.

    Not thread-safe: :func:`build_server` calls it from one worker thread only.
    """

    def __init__(self, config: AgentConfig | Any) -> None:
        self.config = as_config(config, AgentConfig)

    @cached_property
    def archive(self):
        from marc.memory.archive import Archive

        return Archive(self.config.memory)

    @cached_property
    def conversation(self):
        from marc.agent.conversation import Conversation
        from marc.agent.graph import Resources

        resources = Resources(self.config)
        resources.retriever = self.archive.retriever  # one encoder, one store handle
        return Conversation(self.config, resources=resources)

    def ask(
        self,
        question: str,
        *,
        camera: str | None = None,
        since: str | None = None,
        until: str | None = None,
        thread: str | None = None,
        k: int = 3,
        evidence_dir: str | None = None,
        clear_filters: bool = False,
    ) -> tuple[dict[str, Any], bytes | None]:
        """``marc ask --json``'s object and the contact sheet's PNG (``None`` without evidence)."""
        result = self.conversation.ask(
            question, thread=thread, k=k, camera=camera, since=since, until=until,
            clear_filters=clear_filters,
        )  # fmt: skip
        if not result.evidence:
            return result.to_json(), None
        if evidence_dir is not None:
            files = result.export_evidence(Path(evidence_dir).expanduser())
            return result.to_json(files), files.sheet.read_bytes()
        with tempfile.TemporaryDirectory(prefix="marc-evidence-") as tmp:
            files = result.export_evidence(tmp)
            return result.to_json(), files.sheet.read_bytes()

    def search(
        self,
        text: str,
        *,
        k: int = 3,
        cameras: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        videos: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """``marc search TEXT --json``'s list."""
        from marc.memory.core.events import Filters

        filters = Filters.parse(cameras=cameras, since=since, until=until, videos=videos)
        return [h.to_json() for h in self.archive.search(text, k, filters=filters)]

    def events(self, video: str | None = None) -> list[dict[str, Any]]:
        """``marc events --json``'s list."""
        return self.archive.events(Path(video) if video else None)

    def videos(
        self, cameras: list[str] | None = None, failed: bool = False
    ) -> list[dict[str, Any]]:
        """``marc videos --json``'s list."""
        return self.archive.videos(cameras=cameras, failed=failed)

    def close(self) -> None:
        if "conversation" in self.__dict__:
            self.conversation.close()
        if "archive" in self.__dict__:
            self.archive.close()


def build_server(config: AgentConfig | Any = None) -> MCPServer:
    """The MCP server with MARC's tools; run it with ``.run("stdio")`` (see :func:`serve`).

    ``config``: the agent's config, or a ``Settings`` (``marc mcp`` passes the environment's).

    The returned server has a ``marc_close()`` that closes whatever the tools opened.
    """
    backend = Backend(config)
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marc-mcp")
    server = MCPServer("marc", instructions=INSTRUCTIONS, log_level="WARNING")

    async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        future = worker.submit(partial(fn, *args, **kwargs))
        try:
            return await asyncio.wrap_future(future)
        except (MarcError, ValueError, OSError) as e:  # the caller's to fix: one line
            raise ToolError(one_line(e)) from e

    @server.tool(
        description="Ask the video archive a question. Returns the answer with the events it "
        "comes from (the `marc ask --json` object) and a contact sheet of those events."
    )
    async def ask(
        question: Annotated[str, Field(description="The question, in plain words.")],
        camera: Camera = None,
        since: Since = None,
        until: Until = None,
        thread: Annotated[
            str | None,
            Field(
                description="Continue this conversation (the `thread` of an earlier answer; "
                "an unknown id is an error). Its camera and times stay set until changed."
            ),
        ] = None,
        clear_filters: Annotated[
            bool, Field(description="Forget the camera and times the thread's questions set.")
        ] = False,
        k: Annotated[int, Field(ge=1, description="Events to retrieve.")] = 3,
        evidence_dir: Annotated[
            str | None,
            Field(description="Also write the contact sheet and one clip per event here."),
        ] = None,
    ) -> CallToolResult:
        data, sheet = await call(
            backend.ask, question, camera=camera, since=since, until=until, thread=thread, k=k,
            evidence_dir=evidence_dir, clear_filters=clear_filters,
        )  # fmt: skip
        content: list[ContentBlock] = [TextContent(type="text", text=_json(data))]
        if sheet is not None:
            png = ImageContent(
                type="image", data=base64.b64encode(sheet).decode("ascii"), mime_type="image/png"
            )
            content.append(png)
        return CallToolResult(content=content)

    @server.tool(
        structured_output=False,
        description="Find the stored events that best match a description (`marc search --json`).",
    )
    async def search(
        text: Annotated[str, Field(description="What to look for, in words.")],
        k: Annotated[int, Field(ge=1, description="How many events.")] = 3,
        cameras: Annotated[list[str] | None, Field(description="Only these cameras.")] = None,
        since: Since = None,
        until: Until = None,
        videos: Annotated[list[str] | None, Field(description="Only these video files.")] = None,
    ) -> str:
        return _json(
            await call(
                backend.search,
                text,
                k=k,
                cameras=cameras,
                since=since,
                until=until,
                videos=videos,
            )  # fmt: skip
        )

    @server.tool(
        structured_output=False,
        description="List stored events, in time order (`marc events --json`).",
    )
    async def events(
        video: Annotated[str | None, Field(description="Only the events of this file.")] = None,
    ) -> str:
        return _json(await call(backend.events, video))

    @server.tool(
        structured_output=False,
        description="List the videos in the archive: path, camera, duration, recording start "
        "and end, how many events are stored, and its state: ok, missing (the file is gone), "
        "failed (with the error) or pending.",
    )
    async def videos(
        cameras: Annotated[list[str] | None, Field(description="Only these cameras.")] = None,
        failed: Annotated[
            bool, Field(description="Only the files that could not be ingested.")
        ] = False,
    ) -> str:
        return _json(await call(backend.videos, cameras, failed))

    def close() -> None:
        worker.submit(backend.close).result()
        worker.shutdown()

    server.marc_close = close  # type: ignore[attr-defined]
    return server


def serve(config: AgentConfig | Any = None) -> None:
    """Serve MARC over stdio until the client closes the connection (``marc mcp``)."""
    server = build_server(config)
    try:
        server.run("stdio")
    finally:
        server.marc_close()  # type: ignore[attr-defined]

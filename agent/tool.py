"""MARC inside other LangGraph / LangChain apps: as a tool, or as a subgraph.

- :func:`as_tool` returns a LangChain ``BaseTool`` (``question`` plus optional ``camera``,
  ``since``, ``until``) whose output is the answer followed by its citations, for an agent that
  decides when to look at the archive.
- The compiled graph of :func:`marc.agent.graph.build_graph` is itself a node a host graph can
  add: its input is a ``messages`` list (the last human message is the question) and it appends
  its answer to ``messages``, so a host whose state has ``messages`` adds it directly::

      host.add_node("archive", build_graph(config))

Each tool call is a one-off conversation (no thread): the host keeps its own history.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from marc.agent.graph import build_graph, graph_input
from marc.memory.core.config import AgentConfig

__all__ = ["AskArgs", "as_tool", "format_answer"]

DESCRIPTION = (
    "Ask the video archive (surveillance / dashcam recordings) a question about what happened. "
    "Returns an answer and the recordings it comes from (file, camera, seconds, score)."
)


class AskArgs(BaseModel):
    """The tool's input."""

    question: str = Field(description="The question, in plain words.")
    camera: str | None = Field(None, description="Only this camera.")
    since: str | None = Field(None, description="Only events ending after this ISO 8601 time.")
    until: str | None = Field(None, description="Only events starting before this ISO 8601 time.")


def format_answer(state: dict[str, Any]) -> str:
    """The answer and one line per citation: ``[1] lobby.mp4 (camera lobby) 12.0-18.5 s ...``."""
    lines = [state.get("answer", "")]
    evidence = state.get("evidence") or []
    if evidence:
        lines.append("Evidence:")
    for i, c in enumerate(evidence, 1):
        line = (
            f"[{i}] {PurePath(c['video']).name} (camera {c['camera']}) "
            f"{c['start_s']:.1f}-{c['end_s']:.1f} s, {c.get('start_at', '')}, "
            f"score {c['score']:.3f}, id {c['id']}"
        )
        if c.get("missing"):
            line += f" [file missing: {c['missing']}]"
        lines.append(line)
    return "\n".join(lines)


def as_tool(
    config: AgentConfig | Any = None, *, graph=None, name: str = "video_archive"
) -> BaseTool:
    """A LangChain tool that answers questions from the archive with citations.

    Args:
        config: the agent's config (or a ``Settings``: its ``agent``); default: the config's
            defaults (never the environment). Unused when ``graph`` is given.
        graph: a compiled MARC graph to use (default: :func:`build_graph` without checkpointer).
        name: the tool's name.
    """
    g = graph if graph is not None else build_graph(config)

    def ask_archive(
        question: str, camera: str | None = None, since: str | None = None, until: str | None = None
    ) -> str:
        state = g.invoke(graph_input(question, camera=camera, since=since, until=until))
        return format_answer(state)

    return StructuredTool.from_function(
        func=ask_archive, name=name, description=DESCRIPTION, args_schema=AskArgs
    )

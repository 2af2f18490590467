"""Conversations with the archive: ask in a thread, read a thread back, list threads.

The public API behind ``marc ask``, ``marc chat`` and ``marc thread``::

    with Conversation(Settings()) as conv:
        r = conv.ask("when did the white van leave?")            # a new thread
        r2 = conv.ask("where did it go after that?", thread=r.thread)
        conv.history(r.thread)   # [{"role": "user", "content": ...}, {"role": "assistant", ...}]

Threads persist in the checkpointer of :mod:`marc.agent.threads`, so a thread started in one
process continues in another.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, HumanMessage

from marc.agent.graph import Resources, build_graph, events, graph_input
from marc.agent.threads import (
    ThreadExists,
    UnknownThread,
    list_threads,
    open_checkpointer,
    thread_exists,
)
from marc.memory.core.config import AgentConfig, as_config
from marc.memory.core.events import Filters

if TYPE_CHECKING:
    from marc.agent.evidence import Evidence

__all__ = ["AskResult", "Conversation"]

#: The evidence fields of ``marc ask --json`` (the contract), in order.


@dataclass
class AskResult:
    """One answered question: the ``marc ask --json`` object."""

    answer: str
    thread: str
    evidence: list[dict[str, Any]]
    visual_tokens: int
    budget_tokens: int
    query: str = ""
    filters: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    #: the frames the answer model read (:class:`~marc.compression.vlm.Sampled`), this process only
    model_frames: Any = field(default=None, repr=False, compare=False)

    def export_evidence(self, out_dir: Path | str) -> Evidence | None:
        """Write the contact sheet, one clip per cited event and the frames the answer model read
        into ``out_dir`` (:func:`marc.agent.evidence.export_evidence`); ``None`` when nothing is
        cited."""
        if not self.evidence:
            return None
        from marc.agent.evidence import export_evidence

        return export_evidence(events(self.evidence), out_dir, model_frames=self.model_frames)

    def to_json(self, evidence_files: Evidence | None = None) -> dict[str, Any]:
        """The ``marc ask --json`` object; with the files :meth:`export_evidence` wrote, also
        their ``evidence_files`` (``marc ask --evidence DIR --json``)."""
        data = {
            "answer": self.answer,
            "thread": self.thread,
            "evidence": [dict(c) for c in self.evidence],  # EventRef.to_json() each
            "visual_tokens": self.visual_tokens,
            "budget_tokens": self.budget_tokens,
            "query": self.query,
            "filters": self.filters,
            "missing": self.missing,
            "timings": self.timings,
        }
        if evidence_files is not None:
            data["evidence_files"] = evidence_files.to_json()
        return data


class Conversation:
    """Asks questions in persistent threads. Opens the thread store and models on first use.

    Args:
        config: the agent's config (or a ``Settings``: its ``agent``); ``None``: the config's
            defaults (never the environment).
        resources: already opened models and stores to share (:class:`~marc.agent.graph.Resources`,
            e.g. with an :class:`~marc.memory.archive.Archive`'s retriever); closed with it.
    """

    def __init__(self, config: AgentConfig | Any = None, *, resources: Resources | None = None):
        self.config = as_config(config, AgentConfig)
        self._stack = ExitStack()
        self._graph = None
        self._resources = resources or Resources(self.config)

    def __enter__(self) -> Conversation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._resources.close()
        self._stack.close()

    @property
    def graph(self):
        if self._graph is None:
            checkpointer = self._stack.enter_context(open_checkpointer(self.config.threads))
            self._graph = build_graph(self.config, checkpointer, resources=self._resources)
        return self._graph

    def ask(
        self,
        question: str,
        *,
        thread: str | None = None,
        new_thread: str | None = None,
        k: int = 3,
        filters: Filters | None = None,
        camera: str | None = None,
        since: str | None = None,
        until: str | None = None,
        clear_filters: bool = False,
        on_node: Callable[[str], None] | None = None,
    ) -> AskResult:
        """Answer ``question`` in the existing ``thread``, or in a thread it starts: with the id
        ``new_thread``, or a random one when both are ``None``.

        ``filters`` (:class:`~marc.memory.core.events.Filters`) restrict the search; ``camera``,
        ``since`` and ``until`` (ISO 8601 times or dates) are shorthand for its fields. Both are
        checked here, so a bad time fails before anything runs. Filters set in a thread stay
        with it: a follow-up keeps them until it sets the same filter again, or
        ``clear_filters`` forgets them (the ones given with it then apply).

        ``on_node`` is called with each node's name (``rewrite``, ``retrieve``, ``compress``,
        ``answer``, ``cite`` or ``nothing``) as soon as that node has finished: the graph runs
        with ``stream_mode="updates"`` (``marc serve`` shows the node an answer is in).

        Raises:
            UnknownThread: ``thread`` has no conversation (nothing is stored).
            ThreadExists: ``new_thread`` has one already.
            ValueError: an empty question, a bad time, or both ``thread`` and ``new_thread``
                (nothing ran, the thread is unchanged).
            MarcError: the store, the models or the vLLM server failed (one line); the thread is
                rolled back to before the question, so it never holds an unanswered turn.
        """
        if not question.strip():
            raise ValueError("the question is empty")
        if thread is not None and new_thread is not None:
            raise ValueError("give a thread to continue or a new thread to start, not both")
        inputs = graph_input(
            question, filters, k, camera=camera, since=since, until=until,
            clear_filters=clear_filters,
        )  # fmt: skip
        if thread is not None and not thread_exists(self.graph.checkpointer, thread):
            raise UnknownThread(thread)
        if new_thread is not None and thread_exists(self.graph.checkpointer, new_thread):
            raise ThreadExists(new_thread)
        thread = thread or new_thread or uuid.uuid4().hex
        config = {"configurable": {"thread_id": thread}}
        before = self.graph.get_state(config)
        try:
            for update in self.graph.stream(inputs, config, stream_mode="updates"):
                for node in update:
                    if on_node is not None and not node.startswith("__"):
                        on_node(node)
            state = self.graph.get_state(config).values
        except BaseException:  # the store, the models, Ctrl-C: no question is left unanswered
            self._roll_back(thread, before)
            raise
        turn = state.get("turn", "")  # internal (not in the output schema): from the checkpoint
        return AskResult(
            answer=state["answer"],
            thread=thread,
            evidence=list(state.get("evidence", [])),
            visual_tokens=state.get("visual_tokens", 0),
            budget_tokens=state.get("budget_tokens", 0),
            query=state.get("query", question),
            filters=state.get("filters", {}),
            missing=list(state.get("missing", [])),
            timings=dict(state.get("timings", {})),
            model_frames=self._resources.model_frames.pop(turn, None),
        )

    def _roll_back(self, thread: str, before) -> None:
        """Put ``thread`` back as it was before a turn that failed: its last complete checkpoint
        copied as the newest one (history stays append-only), or no thread at all if it is new.
        """
        checkpointer = self.graph.checkpointer
        if checkpointer is None:
            return
        with suppress(Exception):  # the turn's own error is the one to report
            if before.created_at is None:
                checkpointer.delete_thread(thread)
            else:
                self.graph.update_state(before.config, None, as_node="__copy__")

    def history(self, thread: str) -> list[dict[str, Any]]:
        """The thread's messages as ``{"role": "user"|"assistant", "content": str}`` (assistant
        messages also carry their ``evidence``); empty for an unknown thread."""
        snapshot = self.graph.get_state({"configurable": {"thread_id": thread}})
        out = []
        for m in snapshot.values.get("messages", []):
            if isinstance(m, HumanMessage):
                out.append({"role": "user", "content": m.content})
            elif isinstance(m, AIMessage):
                evidence = m.additional_kwargs.get("evidence", [])
                out.append({"role": "assistant", "content": m.content, "evidence": evidence})
        return out

    def threads(self) -> list[tuple[str, datetime | None]]:
        """Every thread id with the time of its last step, most recent first."""
        self.graph  # noqa: B018 - opens the checkpointer
        return list_threads(self._graph.checkpointer)

    def exists(self, thread: str) -> bool:
        """Whether ``thread`` is a conversation in the thread store."""
        return thread_exists(self.graph.checkpointer, thread)

    def summaries(self) -> list[dict[str, Any]]:
        """``marc thread list --json``: per thread, most recent first, its ``thread`` id, last
        activity (``updated_at``, ISO 8601) and ``first_question`` (``None`` if it has none)."""
        rows = []
        for thread, ts in self.threads():
            first = next((m["content"] for m in self.history(thread) if m["role"] == "user"), None)
            rows.append(
                {
                    "thread": thread,
                    "updated_at": ts.isoformat() if ts else None,
                    "first_question": first,
                }
            )
        return rows

"""The MARC agent: a LangGraph graph retrieve → compress → answer → cite over the archive.

::

    START → rewrite → retrieve ─┬─ compress → answer → cite → END
                                └─ nothing ─────────────────→ END   (no stored event matches)

- **rewrite** takes the last human message as the question and makes a follow-up standalone,
  with the conversation so far: "after that" / "before that" become a time filter after the end
  (before the start) of the previous answer's evidence, "same camera" / "there" its camera, and a
  question that leans on the previous one ("and where did it go?") is searched together with it.
  Rules, not a model, so the rewrite is the same on any machine and explainable in the answer.
- **retrieve** is the Visual Memory Retriever (:class:`marc.memory.retrieval.Retriever`), k = 3,
  with the user's camera and time filters.
- **compress** samples the events' frames, runs Qwen2.5-VL's vision tower and the compression
  layer (:class:`marc.agent.vlm.Answerer`), down to ``MARC_COMPRESSION_BUDGET`` groups.
- **answer** generates with the configured backend (transformers or vLLM).
- **cite** attaches the evidence (file, camera, seconds, score, and whether the file is missing)
  to the answer message.

The compressed tokens are tensors and never enter the state (a checkpointer stores plain data):
**compress** keeps them in the graph's :class:`Resources`, keyed by the turn; if a resumed thread
reaches **answer** in a process that does not hold them, they are computed again.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from functools import cached_property, partial
from types import SimpleNamespace
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph

from marc.agent.state import Citation, MarcInput, MarcState
from marc.memory.settings import Settings
from marc.memory.timeline import parse_time

__all__ = ["NOTHING_FOUND", "Resources", "as_hits", "build_graph", "rewrite"]

#: The answer when no stored event matches (the agent says so instead of guessing).
NOTHING_FOUND = "Nothing in the archive matches this question{filters}, so I cannot answer it."

_AFTER = re.compile(r"\b(after (that|this|it|then)|afterwards?|later on|then what|next)\b", re.I)
_BEFORE = re.compile(r"\b(before (that|this|it)|earlier|beforehand|previously)\b", re.I)
_SAME_CAMERA = re.compile(r"\b(same camera|that camera|this camera|there)\b", re.I)
_LEANS_ON_PREVIOUS = re.compile(
    r"^\s*(and|then|so|also|what about|how about)\b|\b(it|its|they|them|their|he|she|him|her|"
    r"that one|this one|the same)\b",
    re.I,
)


class Resources:
    """What the nodes of one compiled graph share: settings, the retriever, the answer models
    (each opened on first use) and the current turns' compressed prompts."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.prepared: dict[str, Any] = {}

    @cached_property
    def retriever(self):
        from marc.memory.retrieval import Retriever

        return Retriever(self.settings)

    @cached_property
    def answerer(self):
        from marc.agent.vlm import Answerer

        return Answerer(self.settings)

    def close(self) -> None:
        if "retriever" in self.__dict__:
            self.retriever.close()
        if "answerer" in self.__dict__:
            self.answerer.close()


# ------------------------------------------------------------------------------ nodes
def _text(message: AnyMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(p.get("text", "") for p in content if isinstance(p, dict))


def _previous_turn(messages: list[AnyMessage]) -> tuple[str | None, list[Citation]]:
    """The standalone query and evidence of the last answered turn before the current question."""
    for m in reversed(messages[:-1]):
        if isinstance(m, AIMessage) and "evidence" in m.additional_kwargs:
            return m.additional_kwargs.get("query"), m.additional_kwargs["evidence"]
    return None, []


def rewrite(state: MarcState) -> dict[str, Any]:
    """The question, its standalone search text and the filters this turn uses."""
    messages = state.get("messages") or []
    humans = [m for m in messages if isinstance(m, HumanMessage)]
    if not humans:
        raise ValueError("no question: the input needs a human message")
    question = _text(humans[-1]).strip()
    prev_query, prev_evidence = _previous_turn(messages)
    query = question
    filters: dict[str, Any] = {
        "camera": state.get("camera"),
        "since": state.get("since"),
        "until": state.get("until"),
    }
    if prev_evidence:
        ends = [c["end_at"] for c in prev_evidence if c.get("end_at")]
        starts = [c["start_at"] for c in prev_evidence if c.get("start_at")]
        if filters["since"] is None and ends and _AFTER.search(question):
            filters["since"] = max(ends, key=datetime.fromisoformat)  # by time, not by text
        if filters["until"] is None and starts and _BEFORE.search(question):
            filters["until"] = min(starts, key=datetime.fromisoformat)
        if filters["camera"] is None and _SAME_CAMERA.search(question):
            filters["camera"] = prev_evidence[0]["camera"]
    if prev_query and (_LEANS_ON_PREVIOUS.search(question) or _AFTER.search(question)):
        query = f"{prev_query} {question}"
    return {"question": question, "query": query, "filters": filters, "turn": uuid.uuid4().hex}


def retrieve(state: MarcState, *, res: Resources) -> dict[str, Any]:
    f = state["filters"]
    hits = res.retriever.search(
        state["query"],
        k=state.get("k") or 3,
        cameras=[f["camera"]] if f.get("camera") else None,
        since=parse_time(f["since"]) if f.get("since") else None,
        until=parse_time(f["until"], end_of_day=True) if f.get("until") else None,
    )
    floor = res.settings.min_score
    if floor is not None:
        hits = [h for h in hits if h.score >= floor]
    return {"hits": [h.to_json() for h in hits]}


#: A turn's own inputs are cleared when it ends, so a later turn that gives no filter does not
#: inherit this one's from the thread (derived filters come from the evidence, see rewrite).
_TURN_INPUTS_DONE: dict[str, Any] = {"camera": None, "since": None, "until": None}
#: Compressed prompts kept for answer nodes; more than this many means some answer never ran.
_MAX_PREPARED = 8


def route(state: MarcState) -> str:
    return "compress" if state["hits"] else "nothing"


def nothing(state: MarcState) -> dict[str, Any]:
    used = {k: v for k, v in state["filters"].items() if v}
    where = " (" + ", ".join(f"{k} {v}" for k, v in used.items()) + ")" if used else ""
    text = NOTHING_FOUND.format(filters=where)
    return {
        "answer": text,
        "evidence": [],
        "visual_tokens": 0,
        "budget_tokens": 0,
        "groups": [],
        "missing": [],
        "timings": {},
        "messages": [AIMessage(text, additional_kwargs=_meta(state, [], 0, 0))],
        **_TURN_INPUTS_DONE,
    }


def as_hits(items: list[dict[str, Any]]) -> list[SimpleNamespace]:
    """Hits or citations kept as JSON (ISO times) as objects with aware datetimes again, for the
    answer path and the evidence export."""
    out = []
    for h in items:
        ns = SimpleNamespace(**h)
        ns.start_at = datetime.fromisoformat(h["start_at"]) if h.get("start_at") else None
        ns.end_at = datetime.fromisoformat(h["end_at"]) if h.get("end_at") else None
        out.append(ns)
    return out


def _prepare(state: MarcState, res: Resources):
    return res.answerer.prepare(
        state["query"], as_hits(state["hits"]), budget=res.settings.compression_budget,
        text_only=True,
    )  # fmt: skip


def compress(state: MarcState, *, res: Resources) -> dict[str, Any]:
    prepared = _prepare(state, res)
    while len(res.prepared) >= _MAX_PREPARED:  # drop those whose answer node failed
        res.prepared.pop(next(iter(res.prepared)))
    res.prepared[state["turn"]] = prepared
    return {
        "visual_tokens": prepared.visual_tokens,
        "budget_tokens": prepared.budget_tokens,
        "groups": [[list(p) for p in g] for g in prepared.groups],
        "missing": prepared.missing,
        "timings": dict(prepared.timings),
    }


def answer(state: MarcState, *, res: Resources) -> dict[str, Any]:
    prepared = res.prepared.pop(state["turn"], None)
    if prepared is None:  # resumed in another process: compress again (same input, same tokens)
        prepared = _prepare(state, res)
    out = res.answerer.generate(prepared)
    return {"answer": out.text, "timings": {**state.get("timings", {}), **out.timings}}


def cite(state: MarcState) -> dict[str, Any]:
    problems = state.get("missing", [])  # one line each, starting with the file's path
    evidence: list[Citation] = []
    for h in state["hits"]:
        c = Citation(
            id=h["id"], video=h["video"], camera=h["camera"], start_s=h["start_s"],
            end_s=h["end_s"], score=h["score"], start_at=h["start_at"], end_at=h["end_at"],
        )  # fmt: skip
        problem = next((m for m in problems if m.startswith(h["video"] + ": ")), None)
        if problem is not None:
            c["missing"] = problem
        evidence.append(c)
    meta = _meta(state, evidence, state["visual_tokens"], state["budget_tokens"])
    return {
        "evidence": evidence,
        "messages": [AIMessage(state["answer"], additional_kwargs=meta)],
        **_TURN_INPUTS_DONE,
    }


def _meta(state: MarcState, evidence: list[Citation], visual: int, budget: int) -> dict[str, Any]:
    return {
        "evidence": evidence,
        "query": state.get("query"),
        "filters": state.get("filters"),
        "visual_tokens": visual,
        "budget_tokens": budget,
    }


# ------------------------------------------------------------------------------ graph
class _State(MarcState, total=False):
    turn: str  # key of this turn's compressed prompt in Resources.prepared


def build_graph(
    settings: Settings | None = None, checkpointer=None, *, resources: Resources | None = None
):
    """The compiled MARC graph.

    Args:
        settings: runtime settings (default: from the environment).
        checkpointer: a LangGraph checkpointer for persistent threads (see
            :func:`marc.agent.threads.open_checkpointer`); ``None`` keeps no history (one-shot
            questions, or a subgraph that inherits its parent's checkpointer).
        resources: share already opened models and stores between graphs.

    The input is :class:`~marc.agent.state.MarcInput`: ``{"messages": [...], "camera": ...,
    "since": ..., "until": ..., "k": 3}``, the output :class:`~marc.agent.state.MarcState` (also
    the JSON schemas LangGraph Server publishes for it); a host graph whose state has
    ``messages`` can add the compiled graph as a node directly.
    """
    res = resources or Resources(settings)
    builder = StateGraph(_State, input_schema=MarcInput, output_schema=MarcState)
    builder.add_node("rewrite", rewrite)
    builder.add_node("retrieve", partial(retrieve, res=res))
    builder.add_node("nothing", nothing)
    builder.add_node("compress", partial(compress, res=res))
    builder.add_node("answer", partial(answer, res=res))
    builder.add_node("cite", cite)
    builder.add_edge(START, "rewrite")
    builder.add_edge("rewrite", "retrieve")
    builder.add_conditional_edges("retrieve", route, ["compress", "nothing"])
    builder.add_edge("compress", "answer")
    builder.add_edge("answer", "cite")
    builder.add_edge("cite", END)
    builder.add_edge("nothing", END)
    graph = builder.compile(checkpointer=checkpointer, name="marc")
    graph.marc_resources = res  # type: ignore[attr-defined]
    return graph

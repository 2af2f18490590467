"""The MARC agent: a LangGraph graph retrieve → compress → answer → cite over the archive.

::

    START → rewrite → retrieve ─┬─ compress → answer → cite → END
                                └─ nothing ─────────────────→ END   (no stored event matches)

- **rewrite** takes the last human message as the question and makes a follow-up standalone,
  with the conversation so far. Filters the user gave (``camera``/``cameras``/``since``/
  ``until`` in the input) stay with the thread: a later turn keeps them until it gives another
  value for the same filter (which replaces it; a camera replaces cameras and the reverse) or
  ``clear_filters`` (which forgets them all before this turn's own apply). Where the user set no
  filter, "after that" / "before that" become a time filter after the end (before the start) of
  the previous answer's evidence and "same camera" / "there" its camera, for that turn only; a
  question that leans on the previous one ("and where did it go?") is searched together with it.
  Rules, not a model, so the rewrite is the same on any machine and explainable in the answer.
- **retrieve** is the Visual Memory Retriever (:class:`marc.memory.retrieval.Retriever`), k = 3,
  with the user's camera and time filters.
- **compress** samples the events' frames, runs Qwen2.5-VL's vision tower and the compression
  layer (:class:`marc.compression.vlm.Answerer`), down to the compression config's ``budget``
  groups (``MARC_COMPRESSION_BUDGET``).
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
from functools import cached_property, partial
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph

from marc.agent.state import Citation, MarcInput, MarcState
from marc.memory.core.config import AgentConfig, as_config
from marc.memory.core.events import EventRef, Filters

__all__ = ["NOTHING_FOUND", "Resources", "build_graph", "events", "graph_input", "rewrite"]

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
    """What the nodes of one compiled graph share: the agent's config, the retriever, the answer
    models (each opened on first use) and the current turns' compressed prompts."""

    def __init__(self, config: AgentConfig | Any = None) -> None:
        self.config = as_config(config, AgentConfig)
        self.prepared: dict[str, Any] = {}
        #: per turn, the frames the answer model read (:class:`~marc.compression.vlm.Sampled`), for
        #: ``marc ask --evidence``; taken by :meth:`~marc.agent.conversation.Conversation.ask`
        self.model_frames: dict[str, Any] = {}

    @cached_property
    def retriever(self):
        from marc.memory.retrieval import Retriever

        return Retriever(self.config.memory)

    @cached_property
    def answerer(self):
        from marc.compression.vlm import Answerer

        return Answerer(self.config.answer_model, self.config.compression)

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


def rewrite(state: _State) -> dict[str, Any]:
    """The question, its standalone search text and the filters this turn uses."""
    messages = state.get("messages") or []
    humans = [m for m in messages if isinstance(m, HumanMessage)]
    if not humans:
        raise ValueError("no question: the input needs a human message")
    question = _text(humans[-1]).strip()
    prev_query, prev_evidence = _previous_turn(messages)
    query = question
    explicit = _explicit_filters(state)  # the user's, this turn's over the thread's
    wire = {"camera": explicit.get("camera"), "since": explicit.get("since")}
    wire["until"] = explicit.get("until")
    if explicit.get("cameras"):
        wire["cameras"] = list(explicit["cameras"])
    if prev_evidence:
        f = Filters.from_json(wire)
        prev = events(prev_evidence)
        ends = [e.end_at for e in prev if e.end_at is not None]
        starts = [e.start_at for e in prev if e.start_at is not None]
        if f.since is None and ends and _AFTER.search(question):
            wire["since"] = max(ends).isoformat()  # by time, not by text
        if f.until is None and starts and _BEFORE.search(question):
            wire["until"] = min(starts).isoformat()
        if f.cameras is None and _SAME_CAMERA.search(question):
            wire["camera"] = prev[0].camera
    if prev_query and (_LEANS_ON_PREVIOUS.search(question) or _AFTER.search(question)):
        query = f"{prev_query} {question}"
    return {
        "question": question,
        "query": query,
        "filters": wire,
        "explicit_filters": explicit,
        "turn": uuid.uuid4().hex,
    }


_FILTER_KEYS = ("camera", "cameras", "since", "until")


def _explicit_filters(state: _State) -> dict[str, Any]:
    """The filters the user set in this thread: the turn's own (ISO text, checked with the one
    parser) over those earlier turns set (unless the turn clears them); unset ones left out."""
    own = {k: state.get(k) for k in _FILTER_KEYS if state.get(k) is not None}
    if "cameras" in own:
        own["cameras"] = list(own["cameras"])
    Filters.from_json(own)  # ValueError: a time that is not ISO 8601, or an empty one
    kept = {} if state.get("clear_filters") else dict(state.get("explicit_filters") or {})
    if "camera" in own or "cameras" in own:  # one camera replaces several and the reverse
        kept.pop("camera", None)
        kept.pop("cameras", None)
    return {**kept, **own}


def retrieve(state: MarcState, *, res: Resources) -> dict[str, Any]:
    hits = res.retriever.search(
        state["query"], k=state.get("k") or 3, filters=Filters.from_json(state["filters"])
    )
    floor = res.config.min_score
    if floor is not None:
        hits = [h for h in hits if h.score >= floor]
    return {"hits": [h.to_json() for h in hits]}


#: A turn's own inputs are cleared when it ends: the filters the user set live on in
#: ``explicit_filters`` (see rewrite), derived ones come from the evidence each turn.
_TURN_INPUTS_DONE: dict[str, Any] = {
    "camera": None, "cameras": None, "since": None, "until": None, "clear_filters": False,
}  # fmt: skip
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


def graph_input(
    question: str,
    filters: Filters | None = None,
    k: int | None = None,
    *,
    camera: str | None = None,
    since: str | None = None,
    until: str | None = None,
    clear_filters: bool = False,
) -> MarcInput:
    """The graph's input for one question: the message and the filters' wire form.

    ``camera``/``since``/``until`` are the user's text, kept as written (``marc ask --json``
    shows them) over the same fields of ``filters``; a bad time raises ``ValueError`` here.
    ``clear_filters`` forgets the filters earlier turns of the thread set.
    """
    wire = (filters or Filters()).to_json()
    for key, text in (("camera", camera), ("since", since), ("until", until)):
        if text is not None:
            wire[key] = text
    Filters.from_json(wire)  # the one parser: fail before anything runs
    out = MarcInput(
        messages=[HumanMessage(question)], camera=wire["camera"], cameras=wire.get("cameras"),
        since=wire["since"], until=wire["until"],
    )  # fmt: skip
    if k is not None:
        out["k"] = k
    if clear_filters:
        out["clear_filters"] = True
    return out


def events(items: list[dict[str, Any]]) -> list[EventRef]:
    """Hits or citations as the state keeps them (:meth:`EventRef.to_json`) as events again."""
    return [EventRef.from_json(h) for h in items]


def _prepare(state: MarcState, res: Resources):
    # to the compression config's budget
    return res.answerer.prepare(state["query"], events(state["hits"]), text_only=True)


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
    while len(res.model_frames) >= _MAX_PREPARED:  # turns nobody asked for (graph used directly)
        res.model_frames.pop(next(iter(res.model_frames)))
    if prepared.sampled is not None and prepared.sampled.events:
        res.model_frames[state["turn"]] = prepared.sampled
    return {"answer": out.text, "timings": {**state.get("timings", {}), **out.timings}}


def cite(state: MarcState) -> dict[str, Any]:
    problems = state.get("missing", [])  # one line each, starting with the file's path
    evidence: list[Citation] = []
    for e in events(state["hits"]):
        problem = next((m for m in problems if m.startswith(e.video + ": ")), None)
        evidence.append(Citation(**e.replace(missing=problem).to_json()))
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
    #: the filters the user set in the thread (input keys, ISO text), kept across turns
    explicit_filters: dict[str, Any]


def build_graph(
    config: AgentConfig | Any = None, checkpointer=None, *, resources: Resources | None = None
):
    """The compiled MARC graph.

    Args:
        config: the agent's config (or a ``Settings``: its ``agent``); default: the config's
            defaults (never the environment).
        checkpointer: a LangGraph checkpointer for persistent threads (see
            :func:`marc.agent.threads.open_checkpointer`); ``None`` keeps no history (one-shot
            questions, or a subgraph that inherits its parent's checkpointer).
        resources: share already opened models and stores between graphs.

    The input is :class:`~marc.agent.state.MarcInput`: ``{"messages": [...], "camera": ...,
    "since": ..., "until": ..., "k": 3}``, the output :class:`~marc.agent.state.MarcState` (also
    the JSON schemas LangGraph Server publishes for it); a host graph whose state has
    ``messages`` can add the compiled graph as a node directly.
    """
    res = resources or Resources(config)
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

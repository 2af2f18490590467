"""The agent's state: what one conversation turn carries from node to node.

``messages`` accumulates (LangGraph's ``add_messages`` reducer) and is what a thread keeps: the
user's questions and MARC's answers, each answer with its citations in ``additional_kwargs``.
The other keys describe the current turn and are overwritten by the next one. Everything here is
plain data (str, int, float, dict, list) so that any checkpointer can store it; the visual tokens
themselves never enter the state (see :mod:`marc.agent.graph`).
"""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

# typing_extensions' TypedDict, not typing's: pydantic (LangGraph's JSON schemas, which LangGraph
# Server serves as the graph's input/output schema) refuses typing.TypedDict before Python 3.12.
from typing_extensions import TypedDict

__all__ = ["Citation", "MarcInput", "MarcState"]


class Citation(TypedDict, total=False):
    """One cited event: the ``marc ask --json`` evidence object, the wire form of
    :class:`~marc.memory.core.events.EventRef` (:meth:`~EventRef.to_json`)."""

    id: str
    video: str
    camera: str
    start_s: float
    end_s: float
    score: float
    start_at: str  # ISO 8601
    end_at: str
    video_id: str
    fps: float
    missing: str  # one line, when the source file could not be read


class MarcInput(TypedDict, total=False):
    """What a caller passes in: a message list whose last human message is the question, plus
    optional filters (ISO 8601 times) and ``k``.

    The filters given stay with the thread: later turns use them until a turn gives another
    value for the same filter, or ``clear_filters`` (this turn's filters, if any, then apply).
    """

    messages: Annotated[list[AnyMessage], add_messages]
    camera: str | None
    cameras: list[str] | None  # several cameras (the Python API's Filters); camera: one
    since: str | None
    until: str | None
    clear_filters: bool  # forget the filters earlier turns of the thread set
    k: int


class MarcState(MarcInput, total=False):
    #: the question as asked, and the standalone search text it was rewritten to
    question: str
    query: str
    #: the filters the turn actually used (the user's, or derived from the previous evidence)
    filters: dict[str, Any]
    #: retrieved events (``EventRef.to_json()``), best first
    hits: list[dict[str, Any]]
    #: compression results: visual tokens given to the model and the budget in tokens
    visual_tokens: int
    budget_tokens: int
    groups: list[list[list[int]]]
    missing: list[str]
    timings: dict[str, float]
    #: the answer text and its citations (also on the last AI message)
    answer: str
    evidence: list[Citation]

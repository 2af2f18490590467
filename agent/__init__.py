"""MARC's agent: a LangGraph graph retrieve → compress → answer → cite with persistent threads.

- :func:`build_graph`: the compiled graph (a node or subgraph in other LangGraph apps too);
- :class:`Conversation`: questions and follow-ups in threads (what ``marc ask``/``chat`` use);
- :func:`as_tool`: MARC as a LangChain tool;
- :func:`export_evidence`: a contact sheet and clips of cited events.

Names load on first use (see :mod:`marc.memory.core.lazy`).
"""

from marc.memory.core.lazy import exports

_EXPORTS = {
    "build_graph": "marc.agent.graph",
    "Conversation": "marc.agent.conversation",
    "AskResult": "marc.agent.conversation",
    "as_tool": "marc.agent.tool",
    "export_evidence": "marc.agent.evidence",
    "MarcInput": "marc.agent.state",
    "MarcState": "marc.agent.state",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)

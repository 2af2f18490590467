"""MARC's episodic memory: ingest videos into event memories, store them, retrieve them.

- :class:`Archive`: the memory as a whole (ingest, reindex, search, segment, events, status);
- :class:`Retriever`: the Visual Memory Retriever (top-k events for a question or a picture);
- :mod:`.core`: what every layer shares — :class:`Settings`, the :class:`MarcError` tree,
  :class:`Span`, :class:`EventRef`, :class:`Filters`.

Names load on first use (see :mod:`.core.lazy`).
"""

from marc.memory.core.lazy import exports

_EXPORTS = {
    "Archive": "marc.memory.archive",
    "Retriever": "marc.memory.retrieval",
    "Settings": "marc.memory.core.settings",
    "MarcError": "marc.memory.core.errors",
    "EventRef": "marc.memory.core.events",
    "Filters": "marc.memory.core.events",
    "Span": "marc.memory.core.timeline",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)

"""The graph ``langgraph.json`` exposes to ``langgraph dev`` / LangGraph server.

An application boundary: the agent's config comes from the server's environment (``MARC_*``, read
here once); the server brings its own checkpointer, so the graph is compiled without one. Models
open on the first question, not at import.
"""

from marc.agent.graph import build_graph
from marc.memory.core.settings import Settings

graph = build_graph(Settings().agent)

"""The graph ``langgraph.json`` exposes to ``langgraph dev`` / LangGraph server.

Settings come from the server's environment (``MARC_*``); the server brings its own checkpointer,
so the graph is compiled without one. Models open on the first question, not at import.
"""

from marc.agent.graph import build_graph

graph = build_graph()

"""The ``marc`` command line (private): one module per command group over the public API.

- :mod:`.app`: the Typer app, the error policy (one line, exit codes) and shared options;
- :mod:`.ingest`: ``ingest`` (and ``--watch``), ``segment``, ``reindex``, ``samples``;
- :mod:`.archive`: ``events``, ``videos``, ``search``, ``status``;
- :mod:`.care`: ``forget``, ``repair``;
- :mod:`.agent`: ``ask``, ``chat``, ``thread``, ``mcp``;
- :mod:`.serve`: ``serve`` (the web front end, :mod:`marc.agent.server`);
- :mod:`.training`: ``train``, ``eval``.
"""

from marc.agent._cli import agent, archive, care, ingest, serve, training  # noqa: F401 - register commands
from marc.agent._cli.app import app, main

__all__ = ["app", "main"]

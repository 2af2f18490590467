"""MARC's core: what every layer shares and nothing else.

- :mod:`.errors`: the :class:`MarcError` tree (one line per problem, for the CLI).
- :mod:`.timeline`: time as one type (:class:`Span`), seconds formatting, ``--since``/``--until``
  parsing.
- :mod:`.config`: the component configs libraries take (:class:`MemoryConfig`,
  :class:`AnswerModelConfig`, :class:`CompressionConfig`, :class:`AgentConfig`, ...): frozen,
  validated dataclasses; libraries never read the environment.
- :mod:`.settings`: :class:`Settings`, the ``MARC_*`` environment read once at the application
  boundary (CLI, LangGraph app module, scripts), which builds the component configs.
- :mod:`.generated`: installing a locally generated (tiny) model folder atomically.

The core imports nothing else of MARC, so every package may import it.
"""

from marc.memory.core.errors import ConfigError, MarcError, MediaError, ModelError, StoreError
from marc.memory.core.timeline import Span, format_seconds, parse_time

__all__ = [
    "ConfigError",
    "MarcError",
    "MediaError",
    "ModelError",
    "Span",
    "StoreError",
    "format_seconds",
    "parse_time",
]

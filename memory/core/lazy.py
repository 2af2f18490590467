"""Lazy public exports for a package ``__init__`` (PEP 562).

A package lists its public names and the module each lives in; a name's module is imported on
first access. So ``import marc.memory`` (which every layer does to reach :mod:`marc.memory.core`)
loads no database driver, no vector store and no model code, and ``marc --help`` stays fast.

>>> __getattr__, __dir__ = exports("pkg", {"Thing": "collections"})  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["exports"]


def exports(package: str, table: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable]:
    """``(__getattr__, __dir__)`` for ``package`` exporting ``{name: module}`` lazily."""

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(table)

    return __getattr__, __dir__

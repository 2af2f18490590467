"""The dependency rule of docs/architecture.md, checked on the installed packages' source.

Every import counts: module level, inside functions, under ``TYPE_CHECKING``, and module names
given as strings (``importlib.import_module("marc.…")``, lazy-export tables).
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGES = ("marc.agent", "marc.memory", "marc.compression", "marc.training")
#: What each package may import besides itself (docs/architecture.md, "The dependency rule").
ALLOWED = {
    "marc.memory": set(),
    "marc.compression": {"marc.memory"},
    "marc.training": {"marc.memory", "marc.compression"},
    "marc.agent": {"marc.memory", "marc.compression", "marc.training"},
}
_MODULE_TEXT = re.compile(r"^marc\.(agent|memory|compression|training)(\.[A-Za-z_]\w*)*$")


def _sources(package: str) -> dict[str, Path]:
    """``{module name: file}`` for every module of an installed package."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, package
    root = Path(next(iter(spec.submodule_search_locations)))
    out = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        if "migrations" in rel.parts:  # alembic scripts, run by alembic, not imported
            continue
        out[".".join([package, *parts])] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    """The marc modules ``module`` imports, anywhere in its file."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found |= {f"{name}.{a.name}" for a in node.names}
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _MODULE_TEXT.match(node.value)
        ):
            found.add(node.value)
    return {n for n in found if n.startswith("marc.")}


def _top(name: str) -> str | None:
    return next((p for p in PACKAGES if name == p or name.startswith(p + ".")), None)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """``{module: marc modules it imports}`` over the four packages."""
    out = {}
    for package in PACKAGES:
        for module, path in _sources(package).items():
            out[module] = _imports(module, path)
    return out


def test_the_walker_sees_every_kind_of_import(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "import marc.memory.core\n"
        "if TYPE_CHECKING:\n    from marc.agent import graph\n"
        "def f():\n    from marc.training.run import train\n"
        "_LAZY = {'x': 'marc.compression.vlm.answerer'}\n"
        "from .sibling import thing\n"
    )
    found = _imports("marc.memory.m", src)
    assert {"marc.memory.core", "marc.agent.graph", "marc.training.run"} <= found
    assert "marc.compression.vlm.answerer" in found and "marc.memory.sibling" in found


def test_packages_import_only_what_the_architecture_allows(graph):
    bad = []
    for module, names in graph.items():
        here = _top(module)
        for name in names:
            there = _top(name)
            if there and there != here and there not in ALLOWED[here]:
                bad.append(f"{module} imports {name}")
    assert not bad, "\n".join(sorted(bad))


def test_no_cycle_between_packages(graph):
    edges = defaultdict(set)
    for module, names in graph.items():
        for name in names:
            a, b = _top(module), _top(name)
            if a and b and a != b:
                edges[a].add(b)
    for a in PACKAGES:
        for b in edges[a]:
            assert a not in edges[b], f"{a} and {b} import each other"


def test_only_the_cli_reaches_training_from_the_agent(graph):
    bad = [
        f"{m} imports {n}"
        for m, names in graph.items()
        if _top(m) == "marc.agent" and not m.startswith("marc.agent._cli")
        for n in names
        if _top(n) == "marc.training"
    ]
    assert not bad, "\n".join(bad)


def test_the_core_imports_nothing_else_of_marc(graph):
    bad = [
        f"{m} imports {n}"
        for m, names in graph.items()
        if m.startswith("marc.memory.core")
        for n in names
        if not n.startswith("marc.memory.core")
    ]
    assert not bad, "\n".join(bad)


def test_the_compression_operator_is_pure_tensor_code(graph):
    names = graph["marc.compression.temporal_compression"]
    assert not names, names  # torch and the standard library only
    tree = ast.parse(Path(_sources("marc.compression")["marc.compression.temporal_compression"])
                     .read_text())  # fmt: skip
    roots = {
        (a.name if isinstance(n, ast.Import) else n.module or "").split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in (n.names if isinstance(n, ast.Import) else [n])
    }
    assert roots <= {"torch", "__future__", "dataclasses", "math", "typing", "collections"}, roots


@pytest.mark.parametrize(
    ("package", "names"),
    [
        ("marc.agent", ["build_graph", "as_tool", "Conversation"]),
        ("marc.memory", ["Archive", "Retriever", "EventRef", "Filters", "Settings", "MarcError"]),
        ("marc.compression", ["compress", "Answerer", "answer"]),
        ("marc.training", ["GRPOTrainer", "SFTTrainer", "evaluate", "load_config"]),
    ],
)
def test_public_api_is_exported_from_each_package(package, names):
    mod = importlib.import_module(package)
    assert set(names) <= set(mod.__all__)
    for name in names:
        assert getattr(mod, name) is not None


def test_sql_is_written_only_inside_the_catalog():
    """The catalog package owns the SQL: no other module imports SQLAlchemy's query layer
    (the thread store parses a URL with ``sqlalchemy.engine.make_url``, nothing more)."""
    bad = []
    for package in PACKAGES:
        for module, path in _sources(package).items():
            if module.startswith("marc.memory.catalog"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                bad += [f"{module}: {n}" for n in names if n.split(".")[0] == "sqlalchemy"]
    assert bad == ["marc.agent.threads: sqlalchemy.engine"], bad


# ---------------------------------------------------------------- the environment is read once
#: Where ``Settings(...)`` (which reads ``MARC_*`` and ``.env``) may be constructed: the
#: application boundary. Libraries take component configs (marc.memory.core.config).
SETTINGS_READERS = ("marc.agent._cli", "marc.agent.langgraph_app", "marc.memory.core.settings")


def _settings_calls(path: Path) -> list[int]:
    """Lines of ``path`` that call ``Settings(...)`` (by name or as an attribute)."""
    tree = ast.parse(path.read_text(), str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Name) and node.func.id == "Settings")
            or (isinstance(node.func, ast.Attribute) and node.func.attr == "Settings")
        )
    ]


def test_the_settings_finder_sees_every_call(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "from marc.memory.core import settings\n"
        "def f(s=None):\n    return s or Settings()\n"
        "x = settings.Settings(home='/tmp')\n"
        "y = Settings.model_fields\n"  # not a call: no environment read
    )
    assert sorted(_settings_calls(src)) == [3, 4]


def test_only_the_application_boundary_reads_the_environment():
    """No library module constructs ``Settings`` (constructing it reads ``MARC_*`` and
    ``.env``): the CLI, the LangGraph app module and user code read it once and hand the
    libraries its component configs."""
    bad = []
    for package in PACKAGES:
        for module, path in _sources(package).items():
            allowed = any(module == r or module.startswith(r + ".") for r in SETTINGS_READERS)
            if not allowed:
                bad += [f"{module}:{line} calls Settings(...)" for line in _settings_calls(path)]
    assert not bad, "\n".join(bad)

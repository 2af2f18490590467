"""``marc forget``, ``marc repair``: looking after the archive (what to keep, and its health)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from marc.agent._cli.app import JsonOpt, app, out, print_json
from marc.agent._cli.ingest import _archive, _finish, _ReindexProgress


@app.command()
def forget(
    video: Annotated[
        list[Path] | None,
        typer.Option(
            "--video", help="Forget this file (ingested path, copy or video id; repeatable)."
        ),
    ] = None,
    camera: Annotated[
        list[str] | None, typer.Option("--camera", help="Forget this camera's videos (repeatable).")
    ] = None,
    before: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help="Forget the videos whose recording ended before this ISO time or date (UTC).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be forgotten.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove videos' events, vectors and catalog rows (never the video files)."""
    from marc.memory.core.errors import ConfigError
    from marc.memory.core.timeline import parse_time

    if video is None and camera is None and before is None:
        raise ConfigError("say what to forget: --video PATH, --camera NAME or --before TIME")
    when = parse_time(before) if before is not None else None
    with _archive() as archive:
        report = archive.forget(videos=video, cameras=camera, before=when, dry_run=dry_run)
    if as_json:
        print_json(report.to_json())
        return
    for v in report.videos:
        out.print(f"{v['camera']}\t{v['path']}\t{v['events']} events", highlight=False)
    if dry_run:
        n = len(report.videos)
        out.print(f"would forget {n} videos, {sum(v['events'] for v in report.videos)} events")
    else:
        out.print(f"forgot {report.forgotten} videos, {report.events} events", highlight=False)


@app.command()
def repair(as_json: JsonOpt = False) -> None:
    """Rebuild missing or damaged vectors from the video files (checks every stored vector)."""
    archive = _archive()
    with archive, _ReindexProgress(quiet=as_json) as progress:
        report = archive.repair(progress=progress)
    _finish(
        report,
        as_json,
        f"repaired {report.repaired} videos ({report.events} events) into {report.collection}, "
        f"failed {len(report.failed)}; checked {report.videos_checked} videos, "
        f"{report.vectors_checked} vectors"
        + "".join(f"; damaged collection set aside at {p}" for p in report.set_aside),
    )

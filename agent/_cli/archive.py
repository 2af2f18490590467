"""``marc events``, ``marc videos``, ``marc search``, ``marc status``: reading the archive."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from marc.agent._cli.app import JsonOpt, SinceOpt, UntilOpt, app, out, print_json
from marc.agent._cli.ingest import _archive
from marc.memory.core.errors import ConfigError

CameraOpt = Annotated[
    list[str] | None, typer.Option("--camera", help="Only this camera (repeatable).")
]


@app.command()
def events(
    video: Annotated[
        list[Path] | None,
        typer.Option("--video", help="Only the events of this file or video id (repeatable)."),
    ] = None,
    camera: CameraOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="At most this many events.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List stored events, in time order."""
    from marc.memory.core.events import Filters

    filters = Filters.parse(cameras=camera, since=since, until=until, videos=video)
    with _archive() as archive:
        rows = archive.events(filters=filters, limit=limit)
    if as_json:
        print_json(rows)
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
def videos(
    camera: CameraOpt = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only the files that could not be ingested.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the videos in the archive: camera, file, duration, recording time and where it came
    from (container, name, folder+name, mtime), events, state (ok, partial, missing, failed)."""
    with _archive() as archive:
        rows = archive.videos(cameras=camera, failed=failed)
    if as_json:
        print_json(rows)
        return
    if not rows:
        out.print("no videos" + (" failed" if failed else ""), highlight=False)
        return
    table = Table("camera", "file", "duration", "start_at", "from", "events", "state")
    table.columns[1].overflow = table.columns[-1].overflow = "fold"
    for r in rows:
        state = r["state"] + (f": {r['error']}" if r["error"] else "")
        if r["state"] == "partial":
            state += f" (of {r['declared_duration_s']:.1f} s)"
        table.add_row(
            r["camera"],
            r["path"],
            "" if r["duration_s"] is None else f"{r['duration_s']:.1f} s",
            (r["start_at"] or "")[:19],
            r["start_source"] or "",
            str(r["events"]),
            state,
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
    camera: CameraOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    video: Annotated[
        list[Path] | None, typer.Option("--video", help="Only this video file (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Find the events that best match a description or an example picture."""
    from marc.memory.core.events import Filters

    if (text is None) == (image is None):
        raise ConfigError("give exactly one of a search TEXT or --image PATH")
    if image is not None and not image.is_file():
        raise FileNotFoundError(f"{image}: no such file")
    filters = Filters.parse(cameras=camera, since=since, until=until, videos=video)
    with _archive() as archive:
        hits = archive.search(text if image is None else image, k, filters=filters)
    if as_json:
        print_json([h.to_json() for h in hits])
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
    with _archive() as archive:
        st = archive.status()
    if as_json:
        print_json(st)
        return
    for key in (
        "videos",
        "events",
        "vectors",
        "failed",
        "partial",
        "consistent",
        "home",
        "catalog",
    ):
        out.print(f"{key:>13}: {st[key]}", highlight=False)
    sources = ", ".join(f"{k} {n}" for k, n in st["start_sources"].items() if n) or "-"
    out.print(f"{'start times':>13}: {sources}", highlight=False)
    for problem in st["problems"]:
        out.print(f"{'problem':>13}: {problem}", highlight=False, soft_wrap=True)
    for d in st["damaged"]:
        out.print(
            f"{'damaged':>13}: {d['video']}: {d['vectors']} of {d['events']} vectors"
            + (f", {d['bad_vectors']} bad" if d["bad_vectors"] else ""),
            highlight=False,
            soft_wrap=True,
        )
    if st["damaged"]:
        out.print(f"{'':>13}  run `marc repair` to rebuild them from the video files")
    out.print(f"{'vector_store':>13}: {st['vector_store']}", highlight=False)
    out.print(f"{'temp':>13}: {st['temp_bytes'] / 2**20:.1f} MiB", highlight=False)
    if st["cameras"]:
        table = Table("camera", "videos", "events", "failed")
        for name, c in st["cameras"].items():
            table.add_row(name or "(none)", str(c["videos"]), str(c["events"]), str(c["failed"]))
        out.print(table)

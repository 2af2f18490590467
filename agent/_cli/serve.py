"""``marc serve``: the archive in a browser (:mod:`marc.agent.server`)."""

from __future__ import annotations

from typing import Annotated

import typer

from marc.agent._cli.app import app, err, settings


@app.command()
def serve(
    host: Annotated[
        str,
        typer.Option(help="Address to listen on; anything but 127.0.0.1 needs MARC_API_TOKEN."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8080,
) -> None:
    """Serve the archive in a browser: timeline, search, events with video, ask with evidence."""
    from marc.agent.server import serve as run

    s = settings()

    def ready(url: str) -> None:
        err.print(f"serving {s.home} on {url} (Ctrl-C stops)", highlight=False, soft_wrap=True)

    run(s.agent, host=host, port=port, token=s.api_token, on_ready=ready)

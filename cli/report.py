"""`thinktoggle report RUN_DIR` and `thinktoggle view RUN_DIR`: see a run (report/)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def _run_dir(path: Path) -> Path:
    if not path.is_dir():
        click.echo(f"error: {path}: no such folder", err=True)
        sys.exit(2)
    return path


@click.command(short_help="write RUN_DIR/report.html, one self-contained page")
@click.argument("run_dir", type=click.Path(path_type=Path))
def report(run_dir: Path) -> None:
    """Write RUN_DIR/report.html, one self-contained page (no network): the recipe, the funnel with rows for each
    drop and fail reason, on/off pairs, output lengths, the training curves and the evaluation."""
    from thinktoggle.report import write_report

    print(write_report(_run_dir(run_dir)))


@click.command(short_help="browse a run's rows in the browser (127.0.0.1, read-only)")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--port", default=8765, show_default=True, help="0: any free port")
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to bind (loopback unless told)")
def view(run_dir: Path, port: int, host: str) -> None:
    """Serve the report of RUN_DIR with live browsing of every stage's kept, dropped and failed rows (filters by
    category, mode, reason and text; every sample of a prompt in both modes). Read-only; Ctrl-C to stop."""
    from thinktoggle.report.server import make_server

    try:
        server = make_server(_run_dir(run_dir), host=host, port=port)
    except OSError as exc:
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    address, bound = server.server_address[:2]
    print(f"viewing {run_dir} at http://{address}:{bound}/  (read-only; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

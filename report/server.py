"""`thinktoggle view RUN_DIR`: the report page with live row browsing, served by the standard library's
http.server on loopback. Read-only: GET only, and nothing here writes to the run.

    GET /                  the report page (live)
    GET /api/facets        ?stage=&part=                    categories, modes, reasons, row count
    GET /api/rows          ?stage=&part=&category=&mode=&reason=&text=&page=&page_size=
    GET /api/prompt        ?pair_id=                        every row of one prompt, every stage and part
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from thinktoggle.report.collect import collect
from thinktoggle.report.page import render_page
from thinktoggle.report.rows import RowQuery, RowsError, RunRows

LOOPBACK = "127.0.0.1"


class Viewer:
    """The page (rendered once, on the first request) and the run's rows."""

    def __init__(self, run_dir: Path) -> None:
        self.rows = RunRows(run_dir)
        self._page: bytes | None = None
        self._lock = threading.Lock()

    def page(self) -> bytes:
        with self._lock:
            if self._page is None:
                self._page = render_page(collect(self.rows.run_dir, self.rows), live=True).encode()
            return self._page

    def answer(self, path: str, params: dict[str, str]) -> Any:
        if path == "/api/facets":
            return self.rows.facets(params.get("stage", ""), params.get("part", "kept"))
        if path == "/api/rows":
            query = RowQuery(
                stage=params.get("stage", ""),
                part=params.get("part", "kept"),
                category=params.get("category", ""),
                mode=params.get("mode", ""),
                reason=params.get("reason", ""),
                text=params.get("text", ""),
                page=_int(params, "page", 0),
                page_size=_int(params, "page_size", 25),
            )
            return self.rows.page(query)
        if path == "/api/prompt":
            return {"pair_id": params.get("pair_id", ""), "groups": self.rows.prompt(params.get("pair_id", ""))}
        raise LookupError(path)


def _int(params: dict[str, str], key: str, default: int) -> int:
    try:
        return int(params.get(key, default))
    except ValueError:
        raise RowsError(f"{key} must be an integer") from None


def make_handler(viewer: Viewer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "thinktoggle-view"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            url = urlparse(self.path)
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                if url.path in ("/", "/index.html"):
                    self._send(HTTPStatus.OK, viewer.page(), "text/html; charset=utf-8")
                    return
                body = json.dumps(viewer.answer(url.path, params), default=str).encode()
                self._send(HTTPStatus.OK, body, "application/json")
            except LookupError:
                self._error(HTTPStatus.NOT_FOUND, f"no such page: {url.path}")
            except RowsError as exc:
                self._error(HTTPStatus.BAD_REQUEST, str(exc))
            except Exception as exc:  # one bad file must not end the viewer: the page shows the error line
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

        def _error(self, status: HTTPStatus, message: str) -> None:
            self._send(status, json.dumps({"error": message}).encode(), "application/json")

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")  # JSON rows are never read as HTML
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
            pass  # one line per request would bury the address line

    return Handler


def make_server(run_dir: Path, host: str = LOOPBACK, port: int = 8765) -> ThreadingHTTPServer:
    """A server for `run_dir` (port 0: any free port; `server.server_address` says which)."""
    server = ThreadingHTTPServer((host, port), make_handler(Viewer(Path(run_dir))))
    server.daemon_threads = True
    return server

"""A real vLLM OpenAI api_server for the engine tests (openai engine, thinking budget, enable_thinking).

A module of its own, imported as `vllm_server`: `from conftest import ...` resolves to whichever conftest.py was
imported first (tests/report has one), so shared test code does not live in a conftest.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

SERVED_NAME = "tiny-teacher"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """vLLM's OpenAI api_server on `model_dir`, loopback only, served as SERVED_NAME; `kill` ends its whole group."""

    def __init__(self, model_dir, log_dir):
        self.model_dir, self.log_dir = model_dir, log_dir
        self.port = free_port()
        self.proc = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def launch(self) -> None:
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model_dir),
            "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", "float32", "--enforce-eager", "--kv-cache-memory-bytes", str(256 * 2**20),
            "--max-model-len", "512", "--seed", "0",
        ]  # fmt: skip
        log = open(self.log_dir / "server.log", "ab")  # noqa: SIM115 - lives as long as the server
        env = {**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"}
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True, env=env)

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {(self.log_dir / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.kill()
        raise RuntimeError("server did not come up")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

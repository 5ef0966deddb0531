"""The OpenAI engine's retry policy against a real local HTTP server that answers 429 / 400 / 503 on cue.

(The server is a stand-in for a rate-limited provider: the client, its HTTP and the retry code are real.)
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from thinktoggle.generators.engines.base import ChatRequest, SamplingConfig
from thinktoggle.generators.engines.openai_server import OpenAIEngine

OK = {
    "id": "x", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "42", "reasoning_content": "6 * 7"}}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
}  # fmt: skip


@pytest.fixture
def provider():
    """Answers with the statuses queued in `script` (then 200), recording each request body."""
    state = {"script": [], "bodies": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            state["bodies"].append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            status, headers = state["script"].pop(0) if state["script"] else (200, {})
            body = json.dumps(OK if status == 200 else {"error": {"message": f"status {status}"}}).encode()
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", **headers}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_port}/v1"
    yield state
    server.shutdown()


def request(**changes):
    values = dict(messages=[{"role": "user", "content": "6*7?"}], sampling=SamplingConfig(n=1), model="m",
                  chat_template_kwargs={"enable_thinking": True}, seed=7)  # fmt: skip
    return ChatRequest(**{**values, **changes})


def test_429_honours_retry_after_then_succeeds(provider):
    provider["script"] = [(429, {"Retry-After": "0.3"}), (429, {"Retry-After": "0.3"})]
    engine = OpenAIEngine(provider["url"], retries=3, backoff=5.0)  # backoff would wait 5 s: Retry-After wins
    start = time.monotonic()
    [[completion]] = engine.generate([request()])
    assert 0.6 <= time.monotonic() - start < 7  # without Retry-After, backoff 5 s x 2 would take >= 7.5 s
    assert completion.error is None and completion.text == "42" and completion.reasoning_content == "6 * 7"
    assert (completion.prompt_tokens, completion.completion_tokens, completion.finish_reason) == (5, 2, "stop")
    assert len(provider["bodies"]) == 3
    body = provider["bodies"][-1]
    assert body["chat_template_kwargs"] == {"enable_thinking": True} and body["seed"] == 7 and body["n"] == 1


def test_client_errors_fail_at_once_server_errors_after_retries(provider):
    provider["script"] = [(400, {})]
    [[bad]] = OpenAIEngine(provider["url"], retries=3, backoff=0.01).generate([request()])
    assert bad.error.startswith("http_400") and len(provider["bodies"]) == 1
    provider["script"] = [(503, {})] * 3
    [[down]] = OpenAIEngine(provider["url"], retries=2, backoff=0.01).generate([request()])
    assert down.error.startswith("request_failed: InternalServerError") and "503" in down.error
    assert "after 3 attempts" in down.error
    assert len(provider["bodies"]) == 4


def test_n_samples_are_separate_requests_with_their_own_seeds(provider):
    [completions] = OpenAIEngine(provider["url"], concurrency=2).generate([request(n=3)])
    assert len(completions) == 3 and all(c.text == "42" for c in completions)
    assert sorted(b["seed"] for b in provider["bodies"]) == [7, 8, 9]

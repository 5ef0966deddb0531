"""The OpenAI-compatible engine: any server that speaks /v1/chat/completions (vLLM serve, SGLang, NIM, ...).

Async with the `openai` client, at most `concurrency` requests in flight. Each sample is its own request
(n=1, seed + sample index) so that token usage and failures are per sample. Retries with exponential
backoff and jitter on 429 (honouring Retry-After), 5xx, timeouts and connection errors; other errors (a
400 for a too-long prompt, say) fail at once. A sample that still fails comes back with its reason.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

from thinktoggle.generators.engines.base import ChatRequest, Completion, ProgressCallback


def retry_after_seconds(exc: Exception) -> float | None:
    """The server's Retry-After (seconds) on an HTTP error, when it sent one."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class OpenAIEngine:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        concurrency: int = 64,
        timeout: float = 600.0,
        retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        import os

        import openai

        self.version = f"openai-python {openai.__version__}"
        self.base_url = base_url
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.concurrency = concurrency
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff

    def _delay(self, attempt: int, exc: Exception | None) -> float:
        hinted = retry_after_seconds(exc) if exc is not None else None
        if hinted is not None:
            return min(hinted, self.max_backoff)
        return min(self.backoff * 2**attempt, self.max_backoff) * (0.5 + random.random())

    async def _sample(self, client, sem: asyncio.Semaphore, request: ChatRequest, index: int) -> Completion:
        import openai

        body: dict[str, Any] = {}
        if request.chat_template_kwargs is not None:
            body["chat_template_kwargs"] = request.chat_template_kwargs
        s = request.sampling
        last, error = "", None
        for attempt in range(self.retries + 1):
            try:
                async with sem:
                    response = await client.chat.completions.create(
                        model=request.model,
                        messages=request.messages,
                        n=1,
                        temperature=s.temperature,
                        top_p=1.0 if s.temperature == 0 else s.top_p,
                        max_tokens=s.max_tokens,
                        seed=None if request.seed is None else request.seed + index,
                        extra_body=body or None,
                    )
                return _completion(response)
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                # APITimeoutError is an APIConnectionError
                last, error = f"{type(exc).__name__}: {str(exc)[:200]}", exc
            except openai.APIStatusError as exc:
                if exc.status_code < 500 and exc.status_code != 429:
                    return Completion(error=f"http_{exc.status_code}: {str(exc)[:300]}")
                last, error = f"http_{exc.status_code}: {str(exc)[:200]}", exc
            except (ValueError, TypeError, AttributeError, IndexError) as exc:
                # A 200 whose body is not a chat completion (malformed JSON from a broken proxy, no choices):
                # retried like a server error, instead of escaping gather() and failing the whole batch.
                last, error = f"bad_response: {type(exc).__name__}: {str(exc)[:200]}", None
            if attempt < self.retries:
                await asyncio.sleep(self._delay(attempt, error))
        return Completion(error=f"request_failed: {last} (after {self.retries + 1} attempts)")

    async def _run(self, requests: Sequence[ChatRequest], progress: ProgressCallback | None):
        import openai

        client = openai.AsyncOpenAI(base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=0)
        sem = asyncio.Semaphore(self.concurrency)

        async def one(request: ChatRequest, index: int) -> Completion:
            completion = await self._sample(client, sem, request, index)
            if progress:
                progress(1, completion.completion_tokens)
            return completion

        try:
            flat = await asyncio.gather(*(one(r, i) for r in requests for i in range(r.n)))
        finally:
            await client.close()
        results, at = [], 0
        for request in requests:
            results.append(list(flat[at : at + request.n]))
            at += request.n
        return results

    def generate(
        self, requests: Sequence[ChatRequest], progress: ProgressCallback | None = None
    ) -> list[list[Completion]]:
        return asyncio.run(self._run(requests, progress))

    def close(self) -> None:
        pass


def _completion(response) -> Completion:
    choice = response.choices[0]
    message = choice.message
    # vLLM's reasoning parsers fill `reasoning_content` (newer servers: `reasoning`); both ride as extras.
    extra = getattr(message, "model_extra", None) or {}
    reasoning = (
        getattr(message, "reasoning_content", None)
        or getattr(message, "reasoning", None)
        or extra.get("reasoning_content")
        or extra.get("reasoning")
    )
    usage = response.usage
    return Completion(
        text=message.content or "",
        finish_reason=choice.finish_reason or "",
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        reasoning_content=reasoning or None,
    )

"""The OpenAI-compatible engine: any server that speaks /v1/chat/completions (vLLM serve, SGLang, NIM, ...).

Async with the `openai` client, at most `concurrency` requests in flight. Each sample is its own request
(n=1, seed + sample index) so that token usage and failures are per sample. Retries with exponential
backoff and jitter on 429 (honouring Retry-After), 5xx, timeouts and connection errors; other errors (a
400 for a too-long prompt, say) fail at once. A sample that still fails comes back with its reason.

A thinking budget takes two requests (a server cannot be handed a logits processor): the first thinks for at
most budget + grace tokens and stops at `</think>`; past the budget it is cut after the first token that ends
a line (the NIM rule, read from the returned token strings: `logprobs`), or at the grace limit. The second
continues the assistant's message, think block closed (`continue_final_message`, which vLLM's server takes),
for the answer. When the block was opened by the template's generation prompt (DeepSeek-R1 style), the
continued message puts `<think>\n` back in front, since the template renders it only in the generation prompt.
Its thinking tokens are the first request's (kept) tokens: with a model that writes `<think>` itself, the tag
and anything before it count against the budget too.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from thinktoggle.generators.engines.base import ChatRequest, Completion, ProgressCallback
from thinktoggle.generators.engines.thinking_budget import grace_tokens
from thinktoggle.schemas.think import THINK_CLOSE, THINK_OPEN


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

    async def _create(self, client, sem: asyncio.Semaphore, request: ChatRequest, index: int, **overrides: Any):
        """One chat completion with retries: the response, or a failed `Completion` saying why."""
        import openai

        body: dict[str, Any] = dict(overrides.pop("extra_body", None) or {})
        if request.chat_template_kwargs is not None:
            body["chat_template_kwargs"] = request.chat_template_kwargs
        s = request.sampling
        kwargs: dict[str, Any] = {
            "model": request.model,
            "messages": request.messages,
            "n": 1,
            "temperature": s.temperature,
            "top_p": 1.0 if s.temperature == 0 else s.top_p,
            "max_tokens": s.max_tokens,
            "seed": None if request.seed is None else request.seed + index,
            **overrides,
        }
        last, error = "", None
        for attempt in range(self.retries + 1):
            try:
                async with sem:
                    response = await client.chat.completions.create(**kwargs, extra_body=body or None)
                _completion(response)  # parses: a body that is not a chat completion is retried below
                return response
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

    async def _sample(self, client, sem: asyncio.Semaphore, request: ChatRequest, index: int) -> Completion:
        if request.sampling.thinking_budget is not None:
            return await self._budgeted(client, sem, request, index)
        response = await self._create(client, sem, request, index)
        return response if isinstance(response, Completion) else _completion(response)

    async def _budgeted(self, client, sem: asyncio.Semaphore, request: ChatRequest, index: int) -> Completion:
        """Think within the budget (first request), then answer after `</think>` (second request)."""
        s = request.sampling
        budget = s.thinking_budget or 0
        limit = budget + grace_tokens(budget, s.thinking_grace)
        thinking, used, prompt_tokens, cut = "", 0, 0, True
        if limit > 0:  # budget 0: no thinking at all, straight to the closed block
            first = await self._create(
                client, sem, request, index, max_tokens=min(limit, s.max_tokens), stop=[THINK_CLOSE], logprobs=True
            )
            if isinstance(first, Completion):
                return first
            choice, usage = first.choices[0], first.usage
            thinking = choice.message.content or ""
            tokens = _token_texts(choice, thinking)
            prompt_tokens = usage.prompt_tokens if usage else 0
            stopped_at_tag = choice.finish_reason == "stop" and _stop_reason(choice) in (THINK_CLOSE, _NO_STOP_REASON)
            if choice.finish_reason != "length" and not stopped_at_tag:
                # the sample ended inside the block (end of turn): nothing to continue
                return replace(_completion(first), thinking_tokens=_completion(first).completion_tokens)
            if choice.finish_reason == "length" and limit >= s.max_tokens:  # max_tokens, not the budget, ran out
                return replace(_completion(first), thinking_tokens=_completion(first).completion_tokens)
            cut = not stopped_at_tag
            if cut and "".join(tokens) == thinking:  # token texts that spell the text: cut at the line's end
                tokens = end_of_line(tokens, budget)
                thinking = "".join(tokens)
            # without logprobs (a server that gives none) every generated token counts as thinking
            used = len(tokens) if tokens else (usage.completion_tokens if usage else 0)
        opened = "" if THINK_OPEN in thinking else THINK_OPEN + "\n"  # the template opened the block
        closed = thinking + THINK_CLOSE
        second = await self._create(
            client, sem, request, index,
            messages=[*request.messages, {"role": "assistant", "content": opened + closed}],
            max_tokens=max(s.max_tokens - used, 1),
            extra_body={"continue_final_message": True, "add_generation_prompt": False},
        )  # fmt: skip
        if isinstance(second, Completion):
            return second
        answer = _completion(second)
        return Completion(
            text=closed + answer.text,
            finish_reason=answer.finish_reason,
            prompt_tokens=prompt_tokens or answer.prompt_tokens,
            completion_tokens=used + answer.completion_tokens,
            reasoning_content=answer.reasoning_content,
            thinking_tokens=used,
            think_cut=cut,
        )

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


_NO_STOP_REASON = object()  # a server that does not say which stop string ended the sample (not vLLM)


def _stop_reason(choice) -> Any:
    """vLLM's `stop_reason`: the stop string (or token id) that ended the sample, None for end of turn."""
    extra = getattr(choice, "model_extra", None) or {}
    return extra["stop_reason"] if "stop_reason" in extra else getattr(choice, "stop_reason", _NO_STOP_REASON)


def _token_texts(choice, text: str) -> list[str]:
    """The sampled tokens' texts, up to `text` (a stop string's token is generated but not returned)."""
    content = getattr(choice.logprobs, "content", None) or []
    out, length = [], 0
    for item in content:
        if length >= len(text):
            break
        out.append(item.token)
        length += len(item.token)
    return out


def end_of_line(tokens: list[str], budget: int) -> list[str]:
    """The thinking kept of a sample cut at budget + grace: up to the first token at or past the budget that
    ends a line (NIM lets the model finish its line), else all of it."""
    for i in range(max(budget - 1, 0), len(tokens)):
        if "\n" in tokens[i]:
            return tokens[: i + 1]
    return tokens


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

"""A fault-injecting HTTP proxy in front of an OpenAI-compatible server, on loopback (test code, not shipped).

Every POST is forwarded to the upstream server unless a fault is drawn for it. The draw is seeded and depends
only on (seed, the request body, how many times that body was seen before), so a sample's retries meet
different faults and a rerun of the test meets the same ones. Faults:

    500        HTTP 500 with a JSON error body
    429        HTTP 429 with `Retry-After: <retry_after>` (seconds)
    stall      no answer for `stall_s` (longer than the client's timeout)
    drop       the upstream answer's headers and half its body, then the connection is closed
    malformed  HTTP 200, application/json, with the upstream body cut in half (not valid JSON)

The proxy logs every request (arrival, end, body key, fault) so the test can check the client's backoff,
Retry-After and concurrency bound from the server side.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import ClientSession, ClientTimeout, web

FAULTS = ("500", "429", "stall", "drop", "malformed")


@dataclass
class Hit:
    key: str  # the request body's hash: one sample, across its retries
    attempt: int  # how many times this body was seen before (0: first)
    fault: str  # "ok" or one of FAULTS
    arrived: float  # time.monotonic()
    ended: float = 0.0  # when the proxy finished answering (or saw the client go away)


@dataclass
class FaultProxy:
    upstream: str  # http://127.0.0.1:PORT (no /v1)
    seed: int = 0
    rate: float = 0.5  # share of requests that meet a fault
    retry_after: int = 1
    stall_s: float = 5.0
    hits: list[Hit] = field(default_factory=list)
    port: int = 0
    _seen: Counter = field(default_factory=Counter)
    _in_flight: int = 0
    max_in_flight: int = 0

    # -- the fault draw ----------------------------------------------------------------------------------
    def draw(self, key: str, attempt: int) -> str:
        rng = random.Random(f"{self.seed}:{key}:{attempt}")
        return rng.choice(FAULTS) if rng.random() < self.rate else "ok"

    # -- serving -----------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        key = hashlib.sha256(body).hexdigest()[:16]
        attempt = self._seen[key]
        self._seen[key] += 1
        hit = Hit(key, attempt, self.draw(key, attempt) if request.method == "POST" else "ok", time.monotonic())
        self.hits.append(hit)
        self._in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            return await self._answer(request, body, hit)
        finally:
            self._in_flight -= 1
            hit.ended = time.monotonic()

    async def _answer(self, request: web.Request, body: bytes, hit: Hit) -> web.StreamResponse:
        if hit.fault == "500":
            return web.json_response({"error": {"message": "injected 500"}}, status=500)
        if hit.fault == "429":
            headers = {"Retry-After": str(self.retry_after)}
            return web.json_response({"error": {"message": "injected 429"}}, status=429, headers=headers)
        if hit.fault == "stall":
            await asyncio.sleep(self.stall_s)  # cancelled when the client gives up and closes (handler_cancellation)
            return web.json_response({"error": {"message": "stalled"}}, status=504)
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body, headers=headers
        ) as upstream:
            payload = await upstream.read()
            status = upstream.status
        if hit.fault == "malformed":
            return web.Response(body=payload[: len(payload) // 2], status=200, content_type="application/json")
        if hit.fault == "drop":
            response = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
            response.content_length = len(payload)
            await response.prepare(request)
            await response.write(payload[: len(payload) // 2])
            request.transport.close()  # mid-body: the client reads a short body
            return response
        return web.Response(body=payload, status=status, content_type="application/json")

    # -- lifecycle (a thread with its own event loop) ----------------------------------------------------
    def start(self) -> FaultProxy:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        async def serve() -> None:
            self._session = ClientSession(timeout=ClientTimeout(total=120))
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)  # loopback only
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset_log(self) -> None:
        def reset() -> None:
            self.hits = []
            self.max_in_flight = self._in_flight

        self._loop.call_soon_threadsafe(reset)
        time.sleep(0.05)

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._session.close()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

"""An HTTP transport per event loop, for the served backends' async clients.

case -> consultation graph (**served models**) -> trace in SQL -> ...

An ``httpx`` connection belongs to the event loop that opened it. langchain-openai shares
one async client per server across the whole process (a cached default), so the second
``asyncio.run`` of a process that talks to a server (``promed eval`` with two modes, the
demo's stages, a script's loop) reuses a connection of a closed loop and every request
fails with "Event loop is closed" (langchain-ai/langchain#35783). The ``openai:`` and
``vllm:`` backends give their model an async client of its own whose transport is
:class:`LoopLocalTransport`: each running loop gets its own connection pool, and the pools
of closed loops are dropped.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx


class LoopLocalTransport(httpx.AsyncBaseTransport):
    """Delegates each request to an ``httpx.AsyncHTTPTransport`` of the running loop."""

    def __init__(self, **transport_options: Any) -> None:
        self._options = transport_options
        self._pools: dict[asyncio.AbstractEventLoop, httpx.AsyncHTTPTransport] = {}

    def _pool(self) -> httpx.AsyncHTTPTransport:
        loop = asyncio.get_running_loop()
        for old in [old for old in self._pools if old.is_closed()]:
            del self._pools[old]  # its connections died with it
        if loop not in self._pools:
            self._pools[loop] = httpx.AsyncHTTPTransport(**self._options)
        return self._pools[loop]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pool().handle_async_request(request)

    async def aclose(self) -> None:
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.aclose()


def loop_local_client() -> httpx.AsyncClient:
    """An async client whose connections never outlive their event loop."""
    return httpx.AsyncClient(transport=LoopLocalTransport())

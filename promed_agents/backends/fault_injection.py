"""A chat model that fails on purpose: for testing what the graph does with bad backends.

case -> consultation graph (**doctor / patient models**) -> trace in SQL -> ...

:class:`FaultInjectingChatModel` wraps any chat model and, in a seeded share ``rate`` of
its calls, raises a ``ConnectionError``, stalls for ``stall_s`` (longer than the
consultation's ``model_timeout_s``), returns an empty reply, or returns garbage, in turn.
Used by the fault tests and ``benchmarks/backend_faults.py``.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

FAULTS = ("exception", "stall", "empty", "garbage")
GARBAGE = "\x00\ufffd%%## ~~ lorem ipsum \u202e dolor"


class FaultInjectingChatModel(BaseChatModel):
    inner: BaseChatModel
    rate: float = 0.2
    seed: int = 0
    stall_s: float = 5.0
    _rng: random.Random = PrivateAttr()
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _turn: int = PrivateAttr(default=0)
    injected: Counter = Counter()
    calls: int = 0

    def model_post_init(self, __context: Any) -> None:
        self._rng = random.Random(self.seed)
        self.injected = Counter()

    @property
    def _llm_type(self) -> str:
        return "promed-fault-injecting"

    def _fault(self) -> str | None:
        with self._lock:
            self.calls += 1
            if self._rng.random() >= self.rate:
                return None
            fault = FAULTS[self._turn % len(FAULTS)]
            self._turn += 1
            self.injected[fault] += 1
            return fault

    @staticmethod
    def _reply(text: str) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        raise NotImplementedError("FaultInjectingChatModel is async only (ainvoke)")

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: Any = None, **kwargs: Any) -> ChatResult:
        fault = self._fault()
        if fault == "exception":
            raise ConnectionError("injected fault: the backend dropped the connection")
        if fault == "stall":
            await asyncio.sleep(self.stall_s)
        if fault == "empty":
            return self._reply("")
        if fault == "garbage":
            return self._reply(GARBAGE)
        return await self.inner._agenerate(messages, stop=stop, **kwargs)

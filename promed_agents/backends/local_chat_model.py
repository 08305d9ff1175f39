"""The local backend: a token-level LangChain chat model over a transformers causal LM.

case -> consultation graph (**doctor / patient models**) -> trace in SQL -> training

:class:`LocalChatModel` is a ``BaseChatModel``. Concurrent calls, synchronous or async (as
in ``graph.abatch``), are gathered by one batching thread per model (a few milliseconds'
wait), grouped by sampling parameters and run as one left-padded ``generate``. Every
``AIMessage`` carries, in ``response_metadata``, the prompt token ids, the completion token
ids (with the end-of-turn token) and their logprobs under the raw policy (temperature 1,
before sampling warpers), so a trace is exact training data with no re-tokenisation.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from promed_agents.backends.local_weights import load_local_model

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "user"}


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    seed: int | None


@dataclass
class _Request:
    prompt_ids: list[int]
    params: GenerationParams
    future: Future


def _generate_batch(model: Any, tokenizer: Any, prompts: list[list[int]],
                    params: GenerationParams) -> list[dict[str, Any]]:
    import torch

    pad = tokenizer.pad_token_id
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    attention = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):  # left padding
        input_ids[row, width - len(ids):] = torch.tensor(ids)
        attention[row, width - len(ids):] = 1
    kwargs: dict[str, Any] = dict(max_new_tokens=params.max_new_tokens, pad_token_id=pad,
                                  return_dict_in_generate=True, output_logits=True,
                                  do_sample=params.temperature > 0)
    if params.temperature > 0:
        kwargs.update(temperature=params.temperature, top_p=params.top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if params.stop:
        kwargs.update(stop_strings=list(params.stop), tokenizer=tokenizer)
    if params.seed is not None:
        torch.manual_seed(params.seed)
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        new = out.sequences[:, width:]
        logits = torch.stack(out.logits, dim=1).float()
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    results = []
    for row, prompt in enumerate(prompts):
        ids = new[row].tolist()
        end = next((i + 1 for i, t in enumerate(ids) if t in eos_ids), None)
        finish = "stop" if end is not None else "length"
        ids = ids[:end] if end is not None else ids
        text = tokenizer.decode(ids, skip_special_tokens=True)
        for stop in params.stop:
            if stop in text:
                text, finish = text[: text.index(stop)], "stop"
        results.append({"text": text.strip(), "prompt_token_ids": prompt,
                        "completion_token_ids": ids,
                        "logprobs": logprobs[row, : len(ids)].tolist(),
                        "finish_reason": finish})
    return results


class _Batcher:
    """Gathers concurrent requests for one model and runs them as batches."""

    def __init__(self, model: Any, tokenizer: Any, max_batch_size: int, wait_s: float):
        self.model, self.tokenizer = model, tokenizer
        self.max_batch_size, self.wait_s = max_batch_size, wait_s
        self.queue: queue.Queue[_Request] = queue.Queue()
        self.batch_sizes: list[int] = []
        threading.Thread(target=self._loop, name="promed-local-batcher", daemon=True).start()

    def submit(self, prompt_ids: list[int], params: GenerationParams) -> Future:
        future: Future = Future()
        self.queue.put(_Request(prompt_ids, params, future))
        return future

    def _loop(self) -> None:
        while True:
            batch = [self.queue.get()]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self.queue.get(timeout=remaining))
                except queue.Empty:
                    break
            batch.sort(key=lambda r: repr(r.params))
            for params, group in groupby(batch, key=lambda r: r.params):
                self._run(params, list(group))

    def _run(self, params: GenerationParams, group: list[_Request]) -> None:
        self.batch_sizes.append(len(group))
        try:
            results = _generate_batch(self.model, self.tokenizer,
                                      [r.prompt_ids for r in group], params)
        except Exception as exc:  # handed to each caller, which decides what to do
            for request in group:
                request.future.set_exception(exc)
            return
        for request, result in zip(group, results, strict=True):
            request.future.set_result(result)


_BATCHERS: dict[tuple[str, int, float], _Batcher] = {}
_BATCHERS_LOCK = threading.Lock()


class LocalChatModel(BaseChatModel):
    """A local transformers model as a batching, token-level chat model.

    ``model_ref`` is an embedded name (``smollm2``) or a model directory. Sampling
    parameters can also be given per call (``model.invoke(msgs, temperature=0.7)``) or
    with ``.bind(...)``; temperature 0 means greedy decoding.
    """

    model_ref: str = "smollm2"
    max_new_tokens: int = 96
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    max_batch_size: int = 16
    batch_wait_ms: float = 10.0

    @property
    def _llm_type(self) -> str:
        return "promed-local"

    @property
    def spec(self) -> str:
        return f"local:{self.model_ref}"

    @property
    def batcher(self) -> _Batcher:
        key = (self.model_ref, self.max_batch_size, self.batch_wait_ms)
        with _BATCHERS_LOCK:
            if key not in _BATCHERS:
                model, tokenizer = load_local_model(self.model_ref)
                _BATCHERS[key] = _Batcher(model, tokenizer, self.max_batch_size,
                                          self.batch_wait_ms / 1000)
            return _BATCHERS[key]

    def _prompt_ids(self, messages: list[BaseMessage]) -> list[int]:
        tokenizer = self.batcher.tokenizer
        chat = [{"role": _ROLES.get(m.type, "user"), "content": str(m.content)}
                for m in messages]
        encoded = tokenizer.apply_chat_template(chat, add_generation_prompt=True,
                                                tokenize=True, return_dict=True)
        return list(encoded["input_ids"])

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> GenerationParams:
        return GenerationParams(
            max_new_tokens=int(kwargs.get("max_new_tokens", self.max_new_tokens)),
            temperature=float(kwargs.get("temperature", self.temperature)),
            top_p=float(kwargs.get("top_p", self.top_p)),
            stop=tuple(stop or kwargs.get("stop") or ()),
            seed=kwargs.get("seed", self.seed))

    def _result(self, output: dict[str, Any]) -> ChatResult:
        n_prompt, n_out = len(output["prompt_token_ids"]), len(output["completion_token_ids"])
        metadata = {k: v for k, v in output.items() if k != "text"}
        metadata["model"] = self.spec
        message = AIMessage(content=output["text"], response_metadata=metadata,
                            usage_metadata={"input_tokens": n_prompt, "output_tokens": n_out,
                                            "total_tokens": n_prompt + n_out})
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        future = self.batcher.submit(self._prompt_ids(messages), self._params(stop, kwargs))
        return self._result(future.result())

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: Any = None, **kwargs: Any) -> ChatResult:
        future = self.batcher.submit(self._prompt_ids(messages), self._params(stop, kwargs))
        return self._result(await asyncio.wrap_future(future))

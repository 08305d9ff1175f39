"""The local backend's engine: concurrent generation requests decoded together.

case -> consultation graph (**doctor / patient models**) -> trace in SQL -> training

One :class:`BatchGenerator` (a thread) serves each loaded model. Requests arriving within
a few milliseconds of each other are grouped by sampling parameters and decoded by one
left-padded ``generate``. Each row starts from the longest prefix of its prompt that the
:class:`~promed_agents.backends.prefix_cache.PrefixCache` holds, so a consultation's
earlier turns and the shared system prompt are not re-read; ``generate`` reads the
uncached parts of all rows together in its first step.

Decoding runs in chunks of ``chunk_tokens`` when several rows share a batch: a row that
is done (end of turn or a stop string) leaves after its chunk, and one that is not goes
back to the queue, where it joins the next batch with whatever else has arrived, resuming
from its cached states. So one long reply does not hold every other row of its batch,
which on CPU costs the whole batch a decoding step per token. A request alone in its batch
is decoded in one go.

Each result holds the prompt token ids, the completion token ids (with the end-of-turn
token) and their log-probabilities under the raw policy (temperature 1, before sampling
warpers), so a trace is exact training data.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from itertools import groupby
from typing import Any

from promed_agents.backends.prefix_cache import (
    PrefixCache,
    cached_layout,
    extend,
    left_pad,
    row_states,
)

READ_ALONE_TOKENS = 64
"""In a batch, a prompt with more uncached tokens than this is read on its own first."""


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
    completion_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return self.params.max_new_tokens - len(self.completion_ids)


def generate_batch(model: Any, tokenizer: Any, prompts: list[list[int]],
                   params: GenerationParams, cache: PrefixCache | None = None,
                   stop_criteria: Any = None) -> list[dict[str, Any]]:
    """One ``generate`` for ``prompts``: per row, the new token ids (cut after the end of
    turn, padding dropped), their log-probabilities, and whether the row ended (end of
    turn or stop string). With ``cache``, each row's longest cached prefix is reused and
    its prompt and completion states are stored back. ``stop_criteria`` is a prepared
    ``StopStringCriteria`` for ``params.stop`` (building one scans the vocabulary)."""
    import torch
    from transformers import DynamicCache, StoppingCriteriaList, StopStringCriteria

    pad = tokenizer.pad_token_id
    hits = [cache.lookup(ids, len(ids) - 1) if cache else (0, None) for ids in prompts]
    reused = [c for c, _ in hits]
    if len(prompts) > 1:
        # The batch reads every row's uncached part padded to the longest one. Long
        # uncached parts (a new consultation's first prompt) are read row by row first:
        # that wastes no padding, and at that length a row alone is compute-bound anyway.
        for row, ids in enumerate(prompts):
            if len(ids) - reused[row] > READ_ALONE_TOKENS:
                with torch.inference_mode():
                    kv = extend(model, ids[:-1], reused[row], hits[row][1])
                hits[row] = (len(ids) - 1, kv)
    input_ids, attention, head = cached_layout(prompts, [c for c, _ in hits], pad)
    kwargs: dict[str, Any] = dict(max_new_tokens=params.max_new_tokens, pad_token_id=pad,
                                  return_dict_in_generate=True, output_logits=True,
                                  do_sample=params.temperature > 0)
    if head:
        kwargs["past_key_values"] = DynamicCache(
            ddp_cache_data=left_pad([kv for _, kv in hits], head))
    if params.temperature > 0:
        kwargs.update(temperature=params.temperature, top_p=params.top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    if params.stop:
        kwargs["stopping_criteria"] = StoppingCriteriaList(
            [stop_criteria or StopStringCriteria(tokenizer, list(params.stop))])
    if params.seed is not None:
        torch.manual_seed(params.seed)
    with torch.inference_mode():
        out = model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        width = input_ids.shape[1]
        new = out.sequences[:, width:]
        logits = torch.stack(out.logits, dim=1).float()
        logprobs = torch.log_softmax(logits, dim=-1).gather(-1, new.unsqueeze(-1)).squeeze(-1)
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    results = []
    for row, prompt in enumerate(prompts):
        ids = new[row].tolist()
        # A row ends at its first end-of-turn token or at the token that completed a stop
        # string, whichever comes first; what follows is padding (SmolLM2 pads with its
        # end-of-turn token, which was then never sampled) and is not part of the reply.
        end = next((i + 1 for i, t in enumerate(ids) if t in eos_ids), None)
        stopped = _stop_end(tokenizer, prompt[-16:], ids[:end], params.stop)
        if stopped is not None:
            end = stopped
        if end is not None:
            ids = ids[:end]
        if cache is not None:  # states exist for the prompt and all new tokens but the last
            kept = min(len(ids), new.shape[1] - 1)
            positions = torch.cat([attention[row].nonzero().squeeze(1),
                                   torch.arange(width, width + kept)])
            cache.store(prompt + ids[:kept], row_states(out.past_key_values, row, positions))
            cache.hits_tokens += reused[row]
            cache.computed_tokens += len(prompt) - reused[row]
        results.append({"ids": ids, "logprobs": logprobs[row, : len(ids)].tolist(),
                        "ended": end is not None})
    return results


def _stop_end(tokenizer: Any, context: list[int], ids: list[int],
              stop: tuple[str, ...]) -> int | None:
    """The length of the shortest prefix of ``ids`` that completes a stop string, which
    may begin in ``context`` (the tokens before them, such as the reply's earlier chunks,
    as ``generate``'s stop criteria see them), or None."""
    if not stop:
        return None
    base = len(tokenizer.decode(context, skip_special_tokens=True))

    def completes(k: int) -> bool:
        text = tokenizer.decode(context + ids[:k], skip_special_tokens=True)
        return any(text.find(s, max(0, base - len(s) + 1)) >= 0 for s in stop)

    if not completes(len(ids)):
        return None
    return next(k for k in range(1, len(ids) + 1) if completes(k))


_CLOSE: Any = object()
"""Put on the queue by :meth:`BatchGenerator.close`: the serving thread ends."""


def _sampling_key(request: _Request) -> str:
    """Requests that can share a ``generate``: equal parameters but the token budget (and
    a seeded request starts apart from continuations, which are not seeded again)."""
    first_seeded = request.params.seed is not None and not request.completion_ids
    return repr(replace(request.params, max_new_tokens=0)) + ("/seeded" if first_seeded else "")


class BatchGenerator:
    """Gathers concurrent requests for one model and decodes them in batches."""

    def __init__(self, model: Any, tokenizer: Any, max_batch_size: int = 16,
                 wait_s: float = 0.01, cache_mb: int = 1024, chunk_tokens: int = 16):
        self.model, self.tokenizer = model, tokenizer
        self.max_batch_size, self.wait_s, self.chunk_tokens = max_batch_size, wait_s, chunk_tokens
        self.cache: PrefixCache | None = PrefixCache(cache_mb << 20) if cache_mb > 0 else None
        self.queue: queue.Queue[_Request] = queue.Queue()
        self.batch_sizes: list[int] = []
        self._weights_version = self._version()
        self._stop_criteria: dict[tuple[str, ...], Any] = {}
        self.closed = False
        self._thread = threading.Thread(target=self._loop, name="promed-local-batcher",
                                        daemon=True)
        self._thread.start()

    def submit(self, prompt_ids: list[int], params: GenerationParams) -> Future:
        if self.closed:
            raise RuntimeError("this batch generator is closed")
        future: Future = Future()
        self.queue.put(_Request(prompt_ids, params, future))
        return future

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop the serving thread once the requests already queued are answered, and
        drop the model and cached states (the thread holds them while it runs: a
        generator that is never closed keeps its model alive for the whole process)."""
        if self.closed:
            return
        self.closed = True
        self.queue.put(_CLOSE)
        self._thread.join(timeout)
        self.model = self.tokenizer = None
        self.cache = None
        self._stop_criteria.clear()

    def _version(self) -> int:
        """Changes whenever a weight is modified in place (an optimizer step, a
        ``load_state_dict``), so cached states never outlive the weights they came from."""
        return sum(p._version for p in self.model.parameters())

    def _loop(self) -> None:
        closing = False
        while not closing:
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
            closing = any(r is _CLOSE for r in batch)
            batch = [r for r in batch if r is not _CLOSE]
            # A caller that gave up (a cancelled task) is dropped; a request taken up can
            # no longer be cancelled, so its result always finds its future.
            batch = [r for r in batch if r.future.running() or
                     r.future.set_running_or_notify_cancel()]
            batch.sort(key=_sampling_key)
            for _, grouped in groupby(batch, key=_sampling_key):
                group = list(grouped)
                try:
                    self._run(group)
                except Exception as exc:  # never let the serving thread die
                    for request in group:
                        if not request.future.done():
                            request.future.set_exception(exc)

    def _run(self, group: list[_Request]) -> None:
        self.batch_sizes.append(len(group))
        if self.cache is not None and (version := self._version()) != self._weights_version:
            self.cache.clear()
            self._weights_version = version
        params = group[0].params
        if group[0].completion_ids:  # seeded once, at the first chunk
            params = replace(params, seed=None)
        steps = min(r.remaining for r in group)
        if len(group) > 1:
            steps = min(steps, self.chunk_tokens)
        try:
            if params.stop and params.stop not in self._stop_criteria:
                from transformers import StopStringCriteria

                self._stop_criteria[params.stop] = StopStringCriteria(self.tokenizer,
                                                                      list(params.stop))
            results = generate_batch(
                self.model, self.tokenizer, [r.prompt_ids + r.completion_ids for r in group],
                replace(params, max_new_tokens=steps), self.cache,
                self._stop_criteria.get(params.stop))
        except Exception as exc:  # handed to each caller, which decides what to do
            for request in group:
                request.future.set_exception(exc)
            return
        for request, result in zip(group, results, strict=True):
            request.completion_ids += result["ids"]
            request.logprobs += result["logprobs"]
            if result["ended"] or request.remaining <= 0:
                request.future.set_result(self._finish(request, result["ended"]))
            else:
                self.queue.put(request)  # decodes on in a later batch

    def _finish(self, request: _Request, ended: bool) -> dict[str, Any]:
        text = self.tokenizer.decode(request.completion_ids, skip_special_tokens=True)
        for stop in request.params.stop:
            if stop in text:
                text = text[: text.index(stop)]
        return {"text": text.strip(), "prompt_token_ids": request.prompt_ids,
                "completion_token_ids": request.completion_ids, "logprobs": request.logprobs,
                "finish_reason": "stop" if ended else "length"}

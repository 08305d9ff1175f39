"""Prefix KV cache for the local backend: a consultation turn re-reads only what is new.

case -> consultation graph (**doctor / patient models**) -> trace in SQL -> training

A consultation's prompt grows by one exchange per turn, and every prompt of one graph
starts with the same system message. :class:`PrefixCache` keeps the key/value states of
recent sequences (prompt plus completion), keyed by their token ids. A new prompt is
matched against them on the longest common token prefix (which may be a part of a stored
sequence, such as the shared system prompt); only the rest is run through the model
(:func:`~promed_agents.backends.batch_generator.generate_batch` lays a batch out as
cached part, then uncached part, each left-padded, so ``generate`` itself reads the
uncached parts of all rows in its first step).
Entries are evicted least recently used first once their states take more than
``max_bytes``.

Matching is on token ids, so a completion that re-tokenises differently in the next
prompt simply matches up to the first differing token. The cached states are exactly the
ones a full forward pass computes (up to floating-point reduction order), which the
backend's tests check against fresh forward passes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]
"""Per layer, keys and values of shape [1, kv_heads, length, head_dim]."""


@dataclass(eq=False)  # entries are compared by identity
class _Entry:
    ids: torch.Tensor
    kv: KV
    last_used: int

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in self.kv)


def _common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(len(a), len(b))
    differ = (a[:n] != b[:n]).nonzero()
    return int(differ[0]) if len(differ) else n


class PrefixCache:
    """Key/value states of recent sequences, reused on their longest common prefix."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: list[_Entry] = []
        self._clock = 0
        self._lock = threading.Lock()
        self.hits_tokens = 0
        self.computed_tokens = 0

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, prompt_ids: list[int], limit: int) -> tuple[int, KV | None]:
        """The longest cached prefix of ``prompt_ids``, at most ``limit`` tokens long:
        its length and its key/value states (sliced copies, safe to extend)."""
        if not self._entries or limit <= 0:
            return 0, None
        prompt = torch.tensor(prompt_ids[:limit], dtype=torch.long)
        with self._lock:
            best, best_len = None, 0
            for entry in self._entries:
                length = _common_prefix(entry.ids, prompt)
                if length > best_len:
                    best, best_len = entry, length
            if best is None:
                return 0, None
            self._clock += 1
            best.last_used = self._clock
            return best_len, [(k[:, :, :best_len], v[:, :, :best_len]) for k, v in best.kv]

    def store(self, ids: list[int], kv: KV) -> None:
        """Keep the states of sequence ``ids``; entries it extends are dropped."""
        entry = _Entry(torch.tensor(ids, dtype=torch.long),
                       [(k.clone(), v.clone()) for k, v in kv], 0)
        if not ids or entry.nbytes > self.max_bytes:
            return
        new = entry.ids
        with self._lock:
            self._entries = [e for e in self._entries
                             if not (len(e.ids) <= len(new)
                                     and _common_prefix(e.ids, new) == len(e.ids))]
            self._clock += 1
            entry.last_used = self._clock
            self._entries.append(entry)
            while self.nbytes > self.max_bytes:
                self._entries.remove(min(self._entries, key=lambda e: e.last_used))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def extend(model: Any, ids: list[int], start: int, kv: KV | None) -> KV:
    """States for all of ``ids``, given those of its first ``start`` tokens (``kv``):
    one forward pass over the rest."""
    from transformers import DynamicCache

    states = DynamicCache(ddp_cache_data=kv) if kv else DynamicCache(config=model.config)
    rest = torch.tensor([ids[start:]], dtype=torch.long)
    positions = torch.arange(start, len(ids), dtype=torch.long).unsqueeze(0)
    model(input_ids=rest, position_ids=positions, past_key_values=states, use_cache=True,
          logits_to_keep=1)
    return [(layer.keys, layer.values) for layer in states.layers]


def cached_layout(prompts: list[list[int]], cached: list[int],
                  pad: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Input ids and attention mask for a batch whose first ``max(cached)`` positions are
    served from cache: per row, [padding, cached prefix, padding, uncached rest]. The
    padding in the middle is masked like any padding; positions follow the mask."""
    head = max(cached)
    tail = max(len(ids) - c for ids, c in zip(prompts, cached, strict=True))
    input_ids = torch.full((len(prompts), head + tail), pad, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for row, (ids, c) in enumerate(zip(prompts, cached, strict=True)):
        input_ids[row, head - c:head] = torch.tensor(ids[:c], dtype=torch.long)
        input_ids[row, head + tail - (len(ids) - c):] = torch.tensor(ids[c:], dtype=torch.long)
        attention[row, head - c:head] = 1
        attention[row, head + tail - (len(ids) - c):] = 1
    return input_ids, attention, head


def left_pad(rows: list[KV | None], width: int) -> KV:
    """Stack per-row states into one batch, each row right-aligned in ``width`` positions
    (left padding, matching the attention mask ``generate`` is given). A row without
    states (``None``) is all padding."""
    like = next(row for row in rows if row)
    merged: KV = []
    for layer, (k0, v0) in enumerate(like):
        keys, values = [], []
        for row in rows:
            k, v = row[layer] if row else (k0[:, :, :0], v0[:, :, :0])
            pad = width - k.shape[2]
            shape = (1, k.shape[1], pad, k.shape[3])
            keys.append(torch.cat([k.new_zeros(shape), k], dim=2) if pad else k)
            values.append(torch.cat([v.new_zeros(shape), v], dim=2) if pad else v)
        merged.append((torch.cat(keys), torch.cat(values)))
    return merged


def row_states(batch: Any, row: int, positions: torch.Tensor) -> KV:
    """One row's states at ``positions`` of a batched cache (copies)."""
    return [(layer.keys[row:row + 1].index_select(2, positions),
             layer.values[row:row + 1].index_select(2, positions)) for layer in batch.layers]

"""The one owner of the models a process has loaded.

case -> consultation graph (**doctor, patient and scorer models**) -> trace in SQL -> training

Loaded models are what a process spends its memory on: SmolLM2-135M is about 0.5 GB in
fp32, and each batch generator serving a model keeps up to ``prefix_cache_mb`` of cached
key/value states besides. :class:`ModelPool` holds all of it: the chat model made for each
spec, each local model's weights and tokenizer, and the batch generators that serve them.
When a local model is asked for and ``max_local_models`` are already loaded, the least
recently used one is evicted first: its generators are closed (after answering what they
were asked) and its weights dropped. A chat model whose weights were evicted loads them
again at its next call.

:func:`shared_pool` is the process's pool. :func:`~promed_agents.backends.resolve_chat_model`,
:class:`~promed_agents.backends.local_chat_model.LocalChatModel`, the local answer scorer
and the trainers go through it; :meth:`ModelPool.release` drops one model when its user is
done with it (an evaluated doctor, a trainer's policy), and :meth:`ModelPool.close` drops
them all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch loads with the first model, not with this module
    from langchain_core.language_models import BaseChatModel

    from promed_agents.backends.batch_generator import BatchGenerator

DEFAULT_MAX_LOCAL_MODELS = 3
"""Local models a pool keeps loaded at once: a doctor, a patient and a scorer that differ."""


class ModelPool:
    """Loaded models, their batch generators and the chat models made for specs.

    Args:
        max_local_models: local models (weights from :mod:`.local_weights`) kept loaded at
            once; asking for one more evicts the least recently used. Policies served
            with :meth:`serve` (a trainer's model) are not counted and never evicted:
            their trainer releases them.
    """

    def __init__(self, max_local_models: int = DEFAULT_MAX_LOCAL_MODELS) -> None:
        if max_local_models < 1:
            raise ValueError(f"max_local_models must be at least 1, not {max_local_models}")
        self.max_local_models = max_local_models
        self._lock = threading.RLock()
        self._weights: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._batchers: dict[tuple[str, Hashable], BatchGenerator] = {}
        self._served: dict[str, BatchGenerator] = {}
        self._chat_models: dict[str, BaseChatModel] = {}
        self._spec_of: dict[int, str] = {}
        self.evictions = 0
        """How many local models this pool has evicted (a figure for tests and logs)."""

    # -- chat models -------------------------------------------------------------------

    def chat_model(self, spec: str, create: Callable[[], BaseChatModel]) -> BaseChatModel:
        """The chat model for ``spec``, made by ``create`` the first time."""
        with self._lock:
            if spec not in self._chat_models:
                model = create()
                self._chat_models[spec] = model
                self._spec_of[id(model)] = spec
            return self._chat_models[spec]

    def spec_of(self, model: BaseChatModel) -> str | None:
        """The spec a chat model of this pool was made for."""
        with self._lock:
            return self._spec_of.get(id(model))

    # -- local weights -----------------------------------------------------------------

    def weights(self, ref: str) -> tuple[Any, Any]:
        """``(model, tokenizer)`` for the local model ``ref`` (an embedded name or a model
        directory), loaded on first use; the least recently used local model is evicted
        first if ``max_local_models`` are loaded."""
        with self._lock:
            if ref in self._weights:
                self._weights.move_to_end(ref)
                return self._weights[ref]
            while len(self._weights) >= self.max_local_models:
                self._evict(next(iter(self._weights)))
            from promed_agents.backends.local_weights import read_local_model

            self._weights[ref] = read_local_model(ref)
            return self._weights[ref]

    def batcher(self, ref: str, **settings: Any) -> BatchGenerator:
        """The batch generator serving ``ref`` with ``settings`` (the
        :class:`~promed_agents.backends.batch_generator.BatchGenerator` arguments), started
        on first use; a served policy's own generator when ``ref`` names one."""
        with self._lock:
            if ref in self._served:
                return self._served[ref]
            key = (ref, tuple(sorted(settings.items())))
            model, tokenizer = self.weights(ref)  # marks ref as recently used
            if key not in self._batchers or self._batchers[key].closed:
                from promed_agents.backends.batch_generator import BatchGenerator

                self._batchers[key] = BatchGenerator(model, tokenizer, **settings)
            return self._batchers[key]

    def serve(self, name: str, model: Any, tokenizer: Any, **settings: Any) -> BatchGenerator:
        """A batch generator over an already loaded ``model`` (a policy in training), owned
        by the pool under ``name`` until :meth:`release` (never evicted)."""
        from promed_agents.backends.batch_generator import BatchGenerator

        with self._lock:
            if name in self._served:
                self._served.pop(name).close()
            self._served[name] = BatchGenerator(model, tokenizer, **settings)
            return self._served[name]

    def loaded(self) -> list[str]:
        """The local models loaded now, least recently used first, then served policies."""
        with self._lock:
            return [*self._weights, *self._served]

    # -- release -----------------------------------------------------------------------

    def release(self, model: str) -> bool:
        """Drop one model: a local model (``smollm2``, a directory, or its spec
        ``local:...``) or a served policy's name. Its generators are closed and its
        weights dropped; chat models made for it load it again if they are called.
        Returns whether anything was loaded."""
        ref = model.removeprefix("local:")
        with self._lock:
            if ref in self._served:
                self._served.pop(ref).close()
                return True
            if ref not in self._weights:
                return False
            self._drop(ref)
            return True

    def close(self) -> None:
        """Drop every model, generator and chat model this pool holds."""
        with self._lock:
            for generator in self._served.values():
                generator.close()
            self._served.clear()
            for ref in list(self._weights):
                self._drop(ref)
            self._chat_models.clear()
            self._spec_of.clear()

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _evict(self, ref: str) -> None:
        self._drop(ref)
        self.evictions += 1

    def _drop(self, ref: str) -> None:
        for key in [k for k in self._batchers if k[0] == ref]:
            self._batchers.pop(key).close()
        del self._weights[ref]


_POOL = ModelPool()


def shared_pool() -> ModelPool:
    """The process's model pool (its ``max_local_models`` may be changed in place)."""
    return _POOL


def load_local_model(ref: str) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for the local model ``ref``, shared through the process's
    pool (loaded once; evicted when more local models than it keeps are asked for)."""
    return _POOL.weights(ref)

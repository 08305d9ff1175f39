"""The local backend: a token-level LangChain chat model over a transformers causal LM.

case -> consultation graph (**doctor / patient models**) -> trace in SQL -> training

:class:`LocalChatModel` is a ``BaseChatModel``. Concurrent calls, synchronous or async (as
in ``graph.abatch``), go to the model's one
:class:`~promed_agents.backends.batch_generator.BatchGenerator`, which decodes them in
batches and reuses cached prompt prefixes. Every ``AIMessage`` carries, in
``response_metadata``, the prompt token ids, the completion token ids (with the end-of-turn
token) and their logprobs under the raw policy (temperature 1, before sampling warpers), so
a trace is exact training data with no re-tokenisation.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from promed_agents.backends.chat_tokens import ChatTokens, chat_dicts
from promed_agents.backends.model_pool import shared_pool
from promed_agents.errors import BackendError

if TYPE_CHECKING:  # torch loads with the model, not with this module
    from concurrent.futures import Future

    from promed_agents.backends.batch_generator import BatchGenerator, GenerationParams

class LocalChatModel(BaseChatModel):
    """A local transformers model as a batching, token-level chat model.

    ``model_ref`` is an embedded name (``smollm2``) or a model directory. Sampling
    parameters can also be given per call (``model.invoke(msgs, temperature=0.7)``) or
    with ``.bind(...)``; temperature 0 means greedy decoding. ``prefix_cache_mb``
    bounds the memory of the key/value states kept for prefix reuse (0 turns reuse off;
    1 GiB holds about 22,000 tokens of SmolLM2's states). ``chunk_tokens`` is how many
    tokens a shared batch decodes before finished rows leave it.
    """

    logprobs_kind: ClassVar[str] = "raw"
    """What the recorded logprobs are: temperature-1 log-probabilities of the unwarped
    policy, whatever the sampling parameters (see ``consultation_runner.sampling_record``)."""
    model_ref: str = "smollm2"
    max_new_tokens: int = 96
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    max_batch_size: int = 16
    batch_wait_ms: float = 10.0
    prefix_cache_mb: int = 1024
    chunk_tokens: int = 16
    _generator: BatchGenerator | None = PrivateAttr(default=None)

    @classmethod
    def serving(cls, model: Any, tokenizer: Any, name: str = "policy",
                **settings: Any) -> LocalChatModel:
        """A chat model over an already loaded ``model`` (the policy a trainer updates),
        with its own batch generator, held by the model pool under ``name`` until
        ``shared_pool().release(name)``; cached states are dropped whenever the weights
        change. ``name`` is what traces record as its spec (``local:NAME``)."""
        chat = cls(model_ref=name, **settings)
        chat._generator = shared_pool().serve(name, model, tokenizer, **chat._settings())
        return chat

    def _settings(self) -> dict[str, Any]:
        return {"max_batch_size": self.max_batch_size, "wait_s": self.batch_wait_ms / 1000,
                "cache_mb": self.prefix_cache_mb, "chunk_tokens": self.chunk_tokens}

    @property
    def _llm_type(self) -> str:
        return "promed-local"

    @property
    def spec(self) -> str:
        return f"local:{self.model_ref}"

    @property
    def batcher(self) -> BatchGenerator:
        """The batch generator serving this model (the pool's; loads the weights if they
        are not loaded or were evicted)."""
        if self._generator is not None:
            return self._generator
        return shared_pool().batcher(self.model_ref, **self._settings())

    def _submit(self, messages: list[BaseMessage], stop: list[str] | None,
                kwargs: dict[str, Any]) -> Future:
        params = self._params(stop, kwargs)
        for _ in range(2):  # evicted between reading the batcher and submitting: once more
            batcher = self.batcher
            if batcher.closed and self._generator is not None:
                raise BackendError(f"local model {self.spec!r} was released by its owner "
                                   "(a trainer that finished); load its saved folder as "
                                   "local:PATH")
            tokenizer = batcher.tokenizer
            if tokenizer is not None:
                try:
                    return batcher.submit(self._prompt_ids(messages, tokenizer), params)
                except RuntimeError:
                    if not batcher.closed:
                        raise
        raise BackendError(f"local model {self.spec!r} was evicted twice in one call; "
                           "raise shared_pool().max_local_models")

    def _prompt_ids(self, messages: list[BaseMessage], tokenizer: Any) -> list[int]:
        return ChatTokens(tokenizer).prompt_ids(chat_dicts(messages))

    def tokens_for(self, messages: list[BaseMessage], text: str) -> tuple[list[int], list[int]]:
        """What this model's tokenizer makes of ``text`` written by another as the reply
        to ``messages``: ``(prompt ids, completion ids)``, as if this model had said it
        and ended its turn: the completion ends with the end-of-turn token, so SFT on it
        teaches the policy to stop after the turn (without it a doctor trained on many
        proposed questions learnt to run them together in one turn)."""
        tokens = ChatTokens(self.batcher.tokenizer)
        return tokens.prompt_ids(chat_dicts(messages)), tokens.turn_ids(text)

    def _params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> GenerationParams:
        from promed_agents.backends.batch_generator import GenerationParams

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
        return self._result(self._submit(messages, stop, kwargs).result())

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return self._result(await asyncio.wrap_future(self._submit(messages, stop, kwargs)))

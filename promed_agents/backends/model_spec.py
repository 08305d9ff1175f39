"""Model specs: one string names a chat model, for every node and every command.

case -> **consultation graph (doctor, patient, evaluator models)** -> trace in SQL -> ...

A spec is ``provider:model`` with an optional ``@base_url``:

- ``local:smollm2``: the embedded SmolLM2-135M-Instruct (see :mod:`.local_weights`);
- ``local:PATH``: a local transformers causal LM directory (a trainer's checkpoint, say);
- ``openai:MODEL@http://host:port/v1``: an OpenAI-compatible server (vLLM included),
  with logprobs when the server gives them;
- ``vllm:MODEL@http://host:port/v1``: a vLLM server, also asked for the completion's and
  the prompt's token ids (:mod:`.vllm_chat_model`, :mod:`.token_metadata`);
- ``fake:RESPONSE||RESPONSE...``: a scripted model for tests (see :mod:`.scripted_chat_model`);
- ``bank:random`` / ``bank:fixed`` (``:FILE``): a reference doctor asking the question bank
  (:mod:`promed_agents.agents.reference_doctors`, listed here by name and loaded on first
  use; ``oracle`` and ``bank:similar`` are built by
  :func:`promed_agents.agents.reference_doctors.resolve_doctor`);
- any other LangChain provider (``anthropic:...``, ``ollama:...``) through LangChain's
  ``init_chat_model``.

:func:`resolve_chat_model` returns one shared instance per spec, held by the process's
:func:`~promed_agents.backends.model_pool.shared_pool` (a local model is loaded once for all
nodes and graphs, and evicted when the pool is full); a ``BaseChatModel`` instance is
passed through as it is.
This is the project's one registry, every provider listed in :data:`_REGISTRY` (a
factory, or ``"module:function"`` for one that lives above the backends and is imported
on first use); :func:`register_backend` adds one.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from langchain_core.language_models import BaseChatModel

from promed_agents.backends.model_pool import shared_pool
from promed_agents.errors import BackendError
from promed_agents.redaction import without_password

_SPEC = re.compile(r"^(?P<provider>[a-z][\w-]*):(?P<model>.+?)(?:@(?P<base_url>https?://\S+))?$")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``provider:model[@base_url]`` string."""

    provider: str
    model: str
    base_url: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        match = _SPEC.match(text.strip())
        if match is None:
            raise BackendError(
                f"model spec {text!r} is not of the form provider:model[@base_url]; e.g. "
                "local:smollm2, openai:my-model@http://127.0.0.1:8000/v1, fake:answer: A")
        return cls(match["provider"], match["model"], match["base_url"])

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}" + (f"@{self.base_url}" if self.base_url else "")


BackendFactory = Callable[[ModelSpec], BaseChatModel]


def _local(spec: ModelSpec) -> BaseChatModel:
    from promed_agents.backends.local_chat_model import LocalChatModel
    from promed_agents.backends.local_weights import EMBEDDED, model_folder

    if spec.model not in EMBEDDED:
        model_folder(spec.model)  # a missing folder is an error now, not at the first call
    return LocalChatModel(model_ref=spec.model)


def _fake(spec: ModelSpec) -> BaseChatModel:
    from promed_agents.backends.scripted_chat_model import ScriptedChatModel

    return ScriptedChatModel(responses=spec.model.split("||"))


def _server_url(spec: ModelSpec) -> str:
    """The server of an ``openai:``/``vllm:`` spec, checked before any request: these
    providers talk to a server the user runs, so one must be named and well formed."""
    example = f"{spec.provider}:MODEL@http://127.0.0.1:8000/v1"
    if spec.base_url is None:
        after = spec.model.partition("@")[2]
        problem = f"{after!r} after '@' is not an http(s) URL" if after else \
            "it names no server"
        raise BackendError(f"model spec {str(spec)!r}: {problem}; give the server as "
                           f"{example}")
    try:
        parsed = urlsplit(spec.base_url)
        parsed.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise BackendError(f"model spec {str(spec)!r}: server URL {spec.base_url!r} is not "
                           f"valid ({exc}); e.g. {example}") from None
    if not parsed.hostname:
        raise BackendError(f"model spec {str(spec)!r}: server URL {spec.base_url!r} has no "
                           f"host; e.g. {example}")
    return spec.base_url


def _openai(spec: ModelSpec) -> BaseChatModel:
    base_url = _server_url(spec)
    from langchain_openai import ChatOpenAI

    from promed_agents.backends.loop_local_transport import loop_local_client

    # Local OpenAI-compatible servers rarely check the key; logprobs when the server has them.
    return ChatOpenAI(model=spec.model, base_url=base_url, api_key="not-needed",
                      logprobs=True, temperature=0.0, http_async_client=loop_local_client())


def _vllm(spec: ModelSpec) -> BaseChatModel:
    base_url = _server_url(spec)
    from promed_agents.backends.loop_local_transport import loop_local_client
    from promed_agents.backends.vllm_chat_model import VLLM_TOKEN_IDS, VLLMChatModel

    # vLLM's OpenAI server: logprobs with each token written as "token_id:<id>", and the
    # prompt's token ids (kept by VLLMChatModel).
    return VLLMChatModel(model=spec.model, base_url=base_url, api_key="not-needed",
                         logprobs=True, temperature=0.0, extra_body=dict(VLLM_TOKEN_IDS),
                         http_async_client=loop_local_client())


def _langchain(spec: ModelSpec) -> BaseChatModel:
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:  # pragma: no cover - langchain is a dependency
        raise BackendError(f"provider {spec.provider!r} needs the langchain package") from exc
    kwargs = {"base_url": spec.base_url} if spec.base_url else {}
    try:
        return init_chat_model(spec.model, model_provider=spec.provider, **kwargs)
    except (ImportError, ValueError) as exc:
        reason = " ".join(str(exc).split())  # one line: LangChain's lists span several
        raise BackendError(f"cannot create a chat model for {spec}: {reason}") from None


_REGISTRY: dict[str, BackendFactory | str] = {
    "local": _local, "fake": _fake, "openai": _openai, "vllm": _vllm,
    "bank": "promed_agents.agents.reference_doctors:bank_backend"}
_LOCK = threading.Lock()


def register_backend(provider: str, factory: BackendFactory) -> None:
    """Make ``provider:...`` specs resolve through ``factory``."""
    with _LOCK:
        _REGISTRY[provider] = factory


def resolve_chat_model(spec: str | ModelSpec | BaseChatModel) -> BaseChatModel:
    """The shared chat model for ``spec`` (created on first use)."""
    if isinstance(spec, BaseChatModel):
        return spec
    parsed = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    return shared_pool().chat_model(str(parsed), lambda: _factory(parsed.provider)(parsed))


def _factory(provider: str) -> BackendFactory:
    with _LOCK:
        factory = _REGISTRY.get(provider, _langchain)
    if isinstance(factory, str):  # "module:function", imported on first use
        module, _, name = factory.partition(":")
        factory = getattr(importlib.import_module(module), name)
    return factory


def spec_name(model: str | ModelSpec | BaseChatModel) -> str:
    """A string naming ``model`` for traces: its spec, or its class for an instance; a
    password in the spec's URL is masked (a trace may be printed, exported, shared)."""
    if isinstance(model, BaseChatModel):
        return without_password(shared_pool().spec_of(model) or getattr(model, "spec", None) or
                                f"instance:{type(model).__name__}")
    return without_password(str(model if isinstance(model, ModelSpec)
                                else ModelSpec.parse(model)))


def sampling_kwargs(model: BaseChatModel, *, max_tokens: int | None = None,
                    temperature: float | None = None,
                    stop: list[str] | None = None) -> dict[str, object]:
    """Per-call sampling arguments under the names ``model``'s backend uses
    (``max_new_tokens`` for local models, ``max_tokens`` for API clients)."""
    from promed_agents.backends.local_chat_model import LocalChatModel

    kwargs: dict[str, object] = {}
    if stop:
        kwargs["stop"] = stop
    if temperature is not None:
        kwargs["temperature"] = temperature
    if max_tokens is not None:
        kwargs["max_new_tokens" if isinstance(model, LocalChatModel) else "max_tokens"] = \
            max_tokens
    return kwargs

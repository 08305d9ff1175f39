"""Token ids and log-probabilities of a reply, whatever backend wrote it.

case -> consultation graph (**doctor turns**) -> trace in SQL -> training

The local backend puts ``prompt_token_ids``, ``completion_token_ids`` and ``logprobs``
(floats) in a reply's ``response_metadata``. OpenAI-compatible servers, through
``ChatOpenAI(logprobs=True)``, put ``logprobs`` as ``{"content": [{"token": ..., "logprob":
...}, ...]}``; vLLM, asked with ``return_tokens_as_token_ids`` (the ``vllm:`` model spec
does), writes each token as ``"token_id:<id>"``, which gives the completion's token ids.
:func:`token_metadata` reads either form; missing parts are None, and logprobs whose
token ids the server did not give are dropped (a trace's logprobs always belong to known
tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_TOKEN_ID = "token_id:"


@dataclass(frozen=True)
class TokenMetadata:
    prompt_ids: list[int] | None = None
    completion_ids: list[int] | None = None
    logprobs: list[float] | None = None


def token_metadata(response_metadata: dict[str, Any] | None) -> TokenMetadata:
    meta = response_metadata or {}
    logprobs = meta.get("logprobs")
    if isinstance(logprobs, dict):  # the OpenAI form
        content = logprobs.get("content") or []
        values = [float(item["logprob"]) for item in content]
        tokens = [str(item.get("token", "")) for item in content]
        ids = [int(t[len(_TOKEN_ID):]) for t in tokens] \
            if tokens and all(t.startswith(_TOKEN_ID) for t in tokens) else None
        # Logprobs without token ids cannot be matched to tokens: they are not kept.
        return TokenMetadata(meta.get("prompt_token_ids"), ids,
                             values or None if ids is not None else None)
    return TokenMetadata(meta.get("prompt_token_ids"), meta.get("completion_token_ids"),
                         list(logprobs) if logprobs is not None else None)

"""A vLLM server as a doctor whose turns are exact training data.

case -> consultation graph (**doctor model**) -> trace in SQL -> training

vLLM's OpenAI chat-completions server, asked with ``return_tokens_as_token_ids`` and
``return_token_ids``, writes each completion token as ``"token_id:<id>"`` in its logprobs
and adds the prompt's token ids to the reply (``prompt_token_ids``). LangChain's
``ChatOpenAI`` keeps the logprobs but drops the prompt ids; :class:`VLLMChatModel` keeps
them in the reply's ``response_metadata``, where
:func:`~promed_agents.backends.token_metadata.token_metadata` reads both, so a served
doctor's consultations stitch and train like a local doctor's (SIG-GRPO with
``use_vllm``, where TRL keeps the server's weights in sync).

Whether the logprobs it returns are the sampling distribution's depends on how the server
was started (``--logprobs-mode``). A server in development mode (``VLLM_SERVER_DEV_MODE=1``,
which TRL's server mode needs anyway) says so at ``/server_info``:
:attr:`VLLMChatModel.logprobs_kind` asks once and is ``raw`` or ``processed`` where it
said, ``backend`` (unknown) where it did not; each episode records it
(:class:`~promed_agents.trace.SamplingRecord`), and off-policy training takes only what
is exact.
"""

from __future__ import annotations

from typing import Any

import httpx
from langchain_core.outputs import ChatResult
from langchain_openai import ChatOpenAI
from pydantic import PrivateAttr

VLLM_TOKEN_IDS = {"return_tokens_as_token_ids": True, "return_token_ids": True}
"""What the ``vllm:`` spec asks the server for besides logprobs."""

LOGPROBS_KINDS = {"raw_logprobs": "raw", "processed_logprobs": "processed"}
"""vLLM's ``logprobs_mode`` values whose logprobs are log-probabilities (not logits), by
the name :class:`~promed_agents.trace.SamplingRecord` records."""


def server_logprobs_mode(base_url: str, timeout_s: float = 5.0) -> str | None:
    """The ``logprobs_mode`` a vLLM server at ``base_url`` (``.../v1``) says it runs
    with, from ``/server_info`` (development mode only); None where it does not say."""
    root = base_url.rstrip("/").removesuffix("/v1")
    try:
        reply = httpx.get(f"{root}/server_info", params={"config_format": "json"},
                          timeout=timeout_s)
        reply.raise_for_status()
        mode = reply.json()["vllm_config"]["model_config"]["logprobs_mode"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return str(mode)


class VLLMChatModel(ChatOpenAI):
    """``ChatOpenAI`` that keeps vLLM's ``prompt_token_ids`` in ``response_metadata`` and
    knows what its server says its logprobs are."""

    _server_mode: str | None = PrivateAttr(default=None)
    _asked: bool = PrivateAttr(default=False)

    @property
    def server_logprobs_mode(self) -> str | None:
        """The server's ``logprobs_mode`` (asked once), or None where it did not say."""
        if not self._asked:
            self._server_mode = server_logprobs_mode(str(self.openai_api_base))
            self._asked = True
        return self._server_mode

    @property
    def logprobs_kind(self) -> str:
        """``raw`` or ``processed`` where the server said so, else ``backend``."""
        return LOGPROBS_KINDS.get(self.server_logprobs_mode or "", "backend")

    def _create_chat_result(self, response: Any, generation_info: dict | None = None
                            ) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        data = response if isinstance(response, dict) else response.model_dump()
        prompt_ids = data.get("prompt_token_ids")
        if prompt_ids is not None:
            for generation in result.generations:
                generation.generation_info = {**(generation.generation_info or {}),
                                              "prompt_token_ids": list(prompt_ids)}
                generation.message.response_metadata["prompt_token_ids"] = list(prompt_ids)
        return result

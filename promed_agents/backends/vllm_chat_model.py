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
"""

from __future__ import annotations

from typing import Any

from langchain_core.outputs import ChatResult
from langchain_openai import ChatOpenAI

VLLM_TOKEN_IDS = {"return_tokens_as_token_ids": True, "return_token_ids": True}
"""What the ``vllm:`` spec asks the server for besides logprobs."""


class VLLMChatModel(ChatOpenAI):
    """``ChatOpenAI`` that keeps vLLM's ``prompt_token_ids`` in ``response_metadata``."""

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

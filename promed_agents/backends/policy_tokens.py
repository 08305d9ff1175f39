"""A turn written by one model, in the token ids of another: proposals a policy learns.

case -> consultation graph -> trace in SQL -> MCTS (**proposed turns**) -> SFT -> ...

MCTS can take candidate doctor turns from a proposer (a stronger model, or the question
bank). SFT then teaches the policy to say them, which needs them in the policy's tokens:
:class:`PolicyTokenized` asks the proposer for the turn and records, in the reply's
``response_metadata``, the prompt and completion token ids the policy's tokenizer gives
(``prompt_token_ids``, ``completion_token_ids``; no log-probabilities: the policy did not
sample them). The consultation's turns then stitch into one sequence like the policy's own.
"""

from __future__ import annotations

from typing import Any, Protocol

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class Tokenizes(Protocol):
    """A chat model that can say what its tokenizer makes of another's reply."""

    def tokens_for(self, messages: list[BaseMessage], text: str
                   ) -> tuple[list[int], list[int]]: ...


class PolicyTokenized(BaseChatModel):
    """``proposer``'s replies, with ``policy``'s token ids."""

    proposer: BaseChatModel
    policy: Any
    """A :class:`Tokenizes` chat model (a ``local:`` model)."""

    @property
    def _llm_type(self) -> str:
        return "promed-policy-tokenized"

    @property
    def reads_consultation(self) -> bool:
        """As its proposer: a reference doctor reads the consultation the graph passes."""
        return bool(getattr(self.proposer, "reads_consultation", False))

    def _result(self, messages: list[BaseMessage], reply: BaseMessage) -> ChatResult:
        text = str(reply.content)
        prompt, completion = self.policy.tokens_for(messages, text)
        metadata = {"model": (reply.response_metadata or {}).get("model"),
                    "prompt_token_ids": prompt, "completion_token_ids": completion}
        return ChatResult(generations=[ChatGeneration(
            message=AIMessage(text, response_metadata=metadata))])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return self._result(messages, self.proposer.invoke(messages, stop=stop, **kwargs))

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: Any = None, **kwargs: Any) -> ChatResult:
        reply = await self.proposer.ainvoke(messages, stop=stop, **kwargs)
        return self._result(messages, reply)

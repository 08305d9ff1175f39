"""The scorer a model spec names: local weights or a server that echoes prompt logprobs.

case -> consultation graph -> trace in SQL -> **Shapley** / SIG -> MCTS-SFT / GRPO
"""

from __future__ import annotations

from promed_agents.backends.model_spec import ModelSpec
from promed_agents.errors import BackendError
from promed_agents.sig.answer_scorer import AnswerScorer, AnswerTarget
from promed_agents.sig.local_answer_scorer import LocalAnswerScorer
from promed_agents.sig.served_answer_scorer import ServedAnswerScorer


def resolve_scorer(spec: str, target: AnswerTarget = "text") -> AnswerScorer:
    """The scorer a model spec names: ``local:smollm2``, ``local:PATH``, or a server that
    echoes prompt logprobs, ``vllm:MODEL@URL`` / ``openai:MODEL@URL``
    (:mod:`promed_agents.sig.served_answer_scorer`)."""
    parsed = ModelSpec.parse(spec)
    if parsed.provider == "local":
        return LocalAnswerScorer(model_ref=parsed.model, target=target)
    if parsed.provider in ("vllm", "openai") and parsed.base_url:
        return ServedAnswerScorer(model=parsed.model, base_url=parsed.base_url,
                                  provider=parsed.provider, target=target)
    raise BackendError(f"scorer {spec!r}: Shapley values need the prompt's token "
                       f"log-probabilities: use 'local:smollm2', 'local:PATH' (a "
                       f"transformers model directory) or 'vllm:MODEL@http://host:port/v1'")

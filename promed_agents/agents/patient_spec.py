"""The patient a spec names: ``fact-select`` or ``llm:MODEL_SPEC``.

case -> **consultation graph (patient)** -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO
"""

from __future__ import annotations

from promed_agents.agents.patient import FactSelectPatient, LLMPatient
from promed_agents.backends.model_spec import resolve_chat_model
from promed_agents.errors import ConsultationError


def resolve_patient(spec: str) -> FactSelectPatient | LLMPatient:
    """``fact-select``: the harvest-proof lexical patient; ``llm:MODEL_SPEC``: an LLM
    patient (any chat model spec) that may state only the facts it was asked about."""
    if spec == "fact-select":
        return FactSelectPatient()
    if spec.startswith("llm:") and spec[len("llm:"):]:
        return LLMPatient(model=resolve_chat_model(spec[len("llm:"):]))
    raise ConsultationError(f"--patient {spec!r}: use fact-select or llm:MODEL_SPEC")

"""Chat-model backends, named by model spec strings (see :mod:`.model_spec`).

case -> consultation graph (**doctor / patient / evaluator models**) -> trace in SQL -> ...
"""

from promed_agents.backends.chat_tokens import ChatTokens
from promed_agents.backends.model_pool import ModelPool, shared_pool
from promed_agents.backends.model_spec import (
    ModelSpec,
    register_backend,
    resolve_chat_model,
    sampling_kwargs,
    spec_name,
)

__all__ = ["ChatTokens", "ModelPool", "ModelSpec", "register_backend", "resolve_chat_model",
           "sampling_kwargs", "shared_pool", "spec_name"]

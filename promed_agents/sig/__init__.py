"""``promed_agents.sig``: Shapley values of a case's facts and the fact weights SIG uses.

case -> consultation graph -> trace in SQL -> **Shapley/SIG** -> MCTS-SFT / GRPO -> evaluation

- :mod:`.shapley`: exact and permutation (Monte Carlo) Shapley estimators over any value
  function of coalitions; :mod:`.kernel_shapley`: stratified paired KernelSHAP, the
  default (fewer coalitions for the same error);
- :mod:`.answer_scorer`: the :class:`AnswerScorer` protocol (v(S) = log-probability of
  the right answer given the facts in S) and the text every scorer scores;
  :mod:`.local_answer_scorer` (local weights) and :mod:`.served_answer_scorer` (a server
  echoing prompt logprobs) implement it; :mod:`.scorer_spec` picks one from a model spec;
- :mod:`.fact_weights`: Shapley values -> the weights of facts in SIG.

Computing and storing values for many cases is :func:`promed_agents.trainers.compute_shapley`;
an evaluator from stored values is :func:`promed_agents.storage.sig_evaluator`.
"""

from promed_agents.sig.answer_scorer import AnswerScorer, AnswerTarget
from promed_agents.sig.fact_weights import shapley_weights
from promed_agents.sig.kernel_shapley import KernelConfig, kernel_shapley
from promed_agents.sig.local_answer_scorer import LocalAnswerScorer
from promed_agents.sig.scorer_spec import resolve_scorer
from promed_agents.sig.served_answer_scorer import ServedAnswerScorer
from promed_agents.sig.shapley import (
    Coalition,
    PermutationConfig,
    ShapleyEstimate,
    ValueFunction,
    exact_shapley,
    permutation_shapley,
)

__all__ = ["AnswerScorer", "AnswerTarget", "Coalition", "KernelConfig", "LocalAnswerScorer",
           "PermutationConfig", "ServedAnswerScorer", "ShapleyEstimate", "ValueFunction",
           "exact_shapley", "kernel_shapley", "permutation_shapley", "resolve_scorer",
           "shapley_weights"]

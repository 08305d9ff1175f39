"""``promed_agents.trainers``: Shapley values, SIG-guided MCTS with SFT, and SIG-augmented
GRPO, all reading traces from ``promed_agents.storage``. Import as
``promed_agents.trainers``; the folder ``trainers/`` installs under that name.

case -> consultation graph -> trace in SQL -> **Shapley/SIG -> MCTS-SFT / GRPO** -> evaluation

- :mod:`.shapley_job`: :func:`compute_shapley`, Shapley values of case facts under a
  scorer, stored per case.
- :mod:`.mcts_search`: :func:`run_mcts`, SIG-guided MCTS with the consultation graph as
  the environment (:class:`ConsultationEnvironment`, :class:`MCTSConfig`).
- :mod:`.sft_dataset`: :func:`search_samples`, the best search paths as SFT samples,
  :func:`logged_samples`, any run's consultations through an :class:`EpisodeFilter`
  (exact token ids, or rendered in the student's tokens; doctor-only loss mask), and
  :func:`export_samples`.
- :mod:`.sft_trainer`: :func:`train_sft`, TRL's ``SFTTrainer`` on those samples
  (:class:`DoctorSFTConfig`, LoRA optional), resumable.
- :mod:`.token_rewards`: SIG-guided token rewards (:class:`RewardWeights`) and
  group-relative advantages.
- :mod:`.reward_designs`: the :class:`RewardDesign` protocol and the designs GRPO can
  train with: ProMed's SIG rewards, DoctorAgent-RL's, outcome-only, the rollout-level
  ablation, and a length penalty.
- :mod:`.episode_sources`: where SIG-GRPO's consultations come from: fresh
  :class:`GraphRollouts` or stored :class:`LoggedEpisodes`.
- :mod:`.grpo_trainer`: :func:`train_grpo`, TRL's ``GRPOTrainer`` with per-token SIG
  rewards (:class:`DoctorGRPOConfig`).

Names that need torch and TRL (the trainers and their configs) load on first use, so
``import promed_agents.trainers`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ConsultationEnvironment": "mcts_search", "MCTSConfig": "mcts_search",
    "SearchReport": "mcts_search", "run_mcts": "mcts_search",
    "ExportConfig": "sft_dataset", "export_samples": "sft_dataset",
    "search_samples": "sft_dataset", "logged_samples": "sft_dataset",
    "EpisodeFilter": "sft_dataset", "filter_episodes": "sft_dataset",
    "ShapleyConfig": "shapley_job", "ShapleyReport": "shapley_job",
    "compute_shapley": "shapley_job",
    "RewardWeights": "token_rewards",
    "RewardDesign": "reward_designs", "SIGReward": "reward_designs",
    "DoctorAgentReward": "reward_designs", "OutcomeReward": "reward_designs",
    "RolloutLevelReward": "reward_designs", "LengthPenalty": "reward_designs",
    "RewardChoice": "reward_designs",
    "EpisodeSource": "episode_sources", "GraphRollouts": "episode_sources",
    "LoggedEpisodes": "episode_sources",
    "DoctorSFTConfig": "sft_trainer", "SFTResult": "sft_trainer", "train_sft": "sft_trainer",
    "DoctorGRPOConfig": "grpo_trainer", "DoctorGRPOTrainer": "grpo_trainer",
    "GRPOResult": "grpo_trainer", "train_grpo": "grpo_trainer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

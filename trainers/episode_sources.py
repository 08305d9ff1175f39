"""Where SIG-GRPO gets its consultations: fresh graph rollouts or logged traces.

case -> **consultation graph (rollouts)** / **trace in SQL (logged)** -> token rewards ->
SIG-GRPO

The trainer asks its :class:`EpisodeSource` for one finished consultation per dataset row
(each case's id repeated ``num_generations`` times in a row, which makes a group):

- :class:`GraphRollouts` (on-policy): the consultation graph with the trainer's current
  model as the doctor (sampling at the trainer's temperature), patient and evaluator
  frozen; every consultation is recorded in the store under the run's experiment, with
  token ids, logprobs and each doctor turn's reward per token (the policy's tokens are
  those of the doctor turns); a step's rollouts in one transaction, tagged with the step
  (a resumed run drops those of the steps it redoes). ``doctor`` can instead be a served
  model (an ``openai:`` backend on a vLLM server that the trainer keeps in sync).
- :class:`LoggedEpisodes` (off-policy): consultations already in the store, from given
  experiments, taken in turn per case; their recorded sampling logprobs become the "old"
  logprobs of the PPO ratio, so updates are importance-weighted and clipped.

Which logged traces are exact: the ratio needs the log-probability of each token under the
distribution it was *sampled* from. The local backend records temperature-1 logprobs of
the raw policy, which are that distribution only when the doctor sampled at temperature 1
with top-p 1 (no warpers). Each episode records how it sampled (``EpisodeRecord.sampling``:
doctor spec, temperature, top-p, logprob kind; :func:`~promed_agents.graphs.
consultation_runner.sampling_record`), and :class:`LoggedEpisodes` refuses, with one line
saying which and how many, traces that were sampled otherwise (greedy, T 0.7, top-p
below 1), whose logprobs came from a server that did not say what they are, or that
recorded no sampling at all. A vLLM server in development mode says it at
``/server_info`` (its ``--logprobs-mode``): raw or processed logprobs are the sampling
distribution's at temperature 1 and top-p 1, so its consultations sampled that way train
like a local doctor's. The behaviour model may differ from the model in training: the ratio then
corrects for it (and clips it), which is what importance weighting is for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from langchain_core.language_models import BaseChatModel

from promed_agents.agents.doctor import DOCTOR_TURN_TOKENS, doctor_sampling
from promed_agents.agents.evaluator import Evaluator
from promed_agents.agents.measurement import FactSelectMeasurement, Measurement
from promed_agents.agents.patient import FactSelectPatient, Patient
from promed_agents.case import Case
from promed_agents.errors import TrainingError
from promed_agents.graphs.consultation import DEFAULT_MAX_QUESTIONS, ConsultationContext
from promed_agents.graphs.consultation_runner import arun_consultations
from promed_agents.partial_view import DEFAULT_POLICY, PartialInfoPolicy
from promed_agents.trace import EpisodeRecord, EpisodeStatus, Role, SamplingRecord
from promed_agents.trainers.reward_designs import SIGReward
from promed_agents.trainers.token_rewards import with_token_rewards

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

GRAPH_NAME = "grpo"


class EpisodeSource(Protocol):
    off_policy: bool
    """True when the episodes were not sampled from the current policy."""

    def episodes(self, case_ids: Sequence[str], trainer: Any) -> list[EpisodeRecord]:
        """One finished consultation per entry of ``case_ids``, in that order."""
        ...


@dataclass
class GraphRollouts:
    """On-policy consultations of ``cases`` (by id) through the consultation graph."""

    cases: Mapping[str, Case]
    patient: Patient = field(default_factory=FactSelectPatient)
    measurement: Measurement = field(default_factory=FactSelectMeasurement)
    """Answers open-ended cases' test orders."""
    evaluator: Evaluator = field(default_factory=Evaluator)
    max_questions: int = DEFAULT_MAX_QUESTIONS
    budget_range: tuple[int, int] | None = None
    """A dynamic budget: each consultation draws its turns from this range (see
    :class:`~promed_agents.graphs.consultation.ConsultationContext`)."""
    max_new_tokens: int = DOCTOR_TURN_TOKENS
    demonstration: bool = False
    partial_policy: PartialInfoPolicy | str = DEFAULT_POLICY
    concurrency: int = 16
    store: TraceStore | None = None
    experiment_id: int | None = None
    doctor: BaseChatModel | None = None
    """A served copy of the policy (vLLM through ``openai:``); None: the trainer's model."""
    off_policy: bool = False
    _policy: BaseChatModel | None = field(default=None, repr=False)

    def _doctor(self, trainer: Any) -> BaseChatModel:
        if self.doctor is not None:  # TRL synced its weights before asking (use_vllm)
            return self.doctor
        if self._policy is None:
            from promed_agents.backends.local_chat_model import LocalChatModel

            model = trainer.accelerator.unwrap_model(trainer.model)
            self._policy = LocalChatModel.serving(model, trainer.processing_class,
                                                  name=trainer.args.policy_name)
        return self._policy

    def close(self) -> None:
        """Release the chat model over the policy in training (its serving thread holds
        the model; :func:`~promed_agents.trainers.grpo_trainer.train_grpo` calls this
        when training ends)."""
        if self._policy is not None:
            from promed_agents.backends.model_pool import shared_pool

            shared_pool().release(self._policy.model_ref)
            self._policy = None

    def episodes(self, case_ids: Sequence[str], trainer: Any) -> list[EpisodeRecord]:
        missing = sorted(set(case_ids) - set(self.cases))
        if missing:
            raise TrainingError(f"the training rows name cases {missing[:5]} that the "
                                "rollout source was not given")
        doctor = self._doctor(trainer)
        context = ConsultationContext(
            doctor=doctor, patient=self.patient, measurement=self.measurement,
            evaluator=self.evaluator,
            max_questions=self.max_questions, budget_range=self.budget_range,
            demonstration=self.demonstration,
            doctor_kwargs=doctor_sampling(doctor, max_new_tokens=self.max_new_tokens,
                                          temperature=trainer.temperature))
        model = trainer.accelerator.unwrap_model(trainer.model)
        was_training = model.training
        model.eval()  # no dropout while sampling
        try:
            episodes = asyncio.run(arun_consultations(
                [self.cases[c] for c in case_ids], context, policy=self.partial_policy,
                concurrency=self.concurrency, graph_name=GRAPH_NAME,
                experiment_id=self.experiment_id))
        finally:
            model.train(was_training)
        design = getattr(trainer, "reward_design", None) or SIGReward()
        step = trainer.state.global_step  # the rollouts of a step are stored together,
        episodes = [with_token_rewards(  # tagged with the step
            e, turn_rewards=design.turn_rewards(e)).model_copy(
            update={"training_step": step}) for e in episodes]
        if self.store is not None:
            ids = self.store.record_episodes(episodes)
            episodes = [e.model_copy(update={"id": i}) for e, i in zip(episodes, ids,
                                                                      strict=True)]
        return episodes


def inexact_sampling(sampling: SamplingRecord | None) -> str | None:
    """Why an episode's recorded logprobs are not its behaviour policy's (None: they
    are): see the module docstring."""
    if sampling is None:
        return "recorded no sampling parameters"
    if sampling.logprobs not in ("raw", "processed"):
        return (f"have logprobs from a served doctor ({sampling.doctor}) that did not say "
                "what they are (start vLLM with VLLM_SERVER_DEV_MODE=1 and --logprobs-mode "
                "raw_logprobs: its /server_info says so)")
    temperature, top_p = sampling.temperature, sampling.top_p
    if temperature is None:
        return "recorded no sampling temperature"
    if abs(temperature - 1.0) > 1e-9:
        return ("were decoded greedily" if temperature == 0 else
                f"were sampled at temperature {temperature}")
    if top_p is not None and top_p < 1.0:
        return f"were sampled with top-p {top_p}"
    return None


@dataclass
class LoggedEpisodes:
    """Stored consultations of experiments ``experiment_ids``, served in turn per case
    (cycling when a case has fewer than a group). Failed episodes are skipped."""

    store: TraceStore
    experiment_ids: Sequence[int]
    require_shapley: bool = False
    """Refuse consultations whose SIG was not computed from stored Shapley values."""
    off_policy: bool = True
    _by_case: dict[str, list[int]] = field(default_factory=dict, repr=False)
    _cursor: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for experiment_id in self.experiment_ids:
            for summary in self.store.list_episodes(experiment_id):
                if summary.status != EpisodeStatus.FAILED.value:
                    self._by_case.setdefault(summary.case_id, []).append(summary.id)
        if not self._by_case:
            raise TrainingError(f"experiments {list(self.experiment_ids)} have no finished "
                                "consultations to train on")
        inexact: dict[str, list[int]] = {}
        for ids in self._by_case.values():
            for episode_id in ids:
                episode = self.store.get_episode(episode_id)
                self._refuse_untrainable(episode)
                problem = inexact_sampling(episode.sampling)
                if episode.metadata.get("proposer", {}).get("proposed_turns"):
                    problem = (f"hold turns written by a search proposer "
                               f"({episode.metadata['proposer'].get('spec')}), not sampled "
                               "from the policy")
                if problem:
                    inexact.setdefault(problem, []).append(episode_id)
        if inexact:
            problem, ids = max(inexact.items(), key=lambda item: len(item[1]))
            count = sum(len(v) for v in inexact.values())
            raise TrainingError(
                f"{count} of {sum(len(v) for v in self._by_case.values())} logged "
                f"consultations (first: episode {ids[0]}) {problem}, so their recorded "
                "logprobs are not those of the distribution they were sampled from and the "
                "importance ratio would be wrong; record traces for off-policy training "
                "with a local: doctor at temperature 1 and top-p 1 (promed consult "
                "--temperature 1)")

    def _refuse_untrainable(self, episode: EpisodeRecord) -> None:
        """An episode without token ids, or (``require_shapley``) whose SIG was not
        computed from stored Shapley values, is an error."""
        if episode.imported_from is not None:
            raise TrainingError(
                f"episode {episode.id} was imported (from {episode.imported_from}): it "
                "holds no logprobs of the policy that said it, so off-policy GRPO cannot "
                "weigh it; train on imported consultations with promed train sft --from "
                "RUN --model local:...")
        if not any(t.token_ids for t in episode.turns if t.role is Role.DOCTOR):
            raise TrainingError(
                f"episode {episode.id} has no token ids in its doctor turns: its doctor "
                "backend did not return them, so it cannot be trained on (record traces "
                "with a local: model, or a server that returns token ids and logprobs)")
        weighting = episode.fact_weights or "unrecorded"
        if self.require_shapley and not weighting.startswith("shapley:"):
            raise TrainingError(
                f"--require-shapley: episode {episode.id} (case {episode.case_id}) weighed "
                f"its facts {weighting}, not by stored Shapley values; record the traces "
                "after 'promed shapley', or leave out --require-shapley")

    @property
    def case_ids(self) -> list[str]:
        """The cases with stored consultations, sorted."""
        return sorted(self._by_case)

    def episodes(self, case_ids: Sequence[str], trainer: Any = None) -> list[EpisodeRecord]:
        chosen = []
        for case_id in case_ids:
            if case_id not in self._by_case:
                raise TrainingError(f"no stored consultation of case {case_id!r} in "
                                    f"experiments {list(self.experiment_ids)}")
            ids = self._by_case[case_id]
            position = self._cursor.get(case_id, 0)
            self._cursor[case_id] = position + 1
            chosen.append(self.store.get_episode(ids[position % len(ids)]))
        return chosen

"""Evaluation figures: per-episode metrics, bootstrap intervals, paired differences.

case -> consultation graph -> trace in SQL -> ... -> checkpoint -> **evaluation**

An evaluation reads recorded consultations only. Per episode: ``correct`` (1/0),
``questions`` (questions asked), ``answered`` (questions whose reply disclosed at least
one fact the doctor did not know), ``repeated`` (questions repeating an earlier one of
the consultation, :mod:`~promed_agents.question_repeats`; they acquire nothing),
``new_facts`` (facts acquired by asking), ``fact_recall`` (share of the case's facts the
doctor knew at the end), ``sig`` (the episode's information gain: its questions' summed
SIG, under the weights its evaluator recorded, see :func:`sig_weighting`),
``valid_turns`` (share of well-formed doctor turns) and ``timeout`` (1 when the
consultation ended without an answer). A run's figure is the mean over cases (a case
consulted with several seeds counts once, with its seeds' mean), with a 95% percentile
bootstrap interval over cases; the ``answerable`` share (answered over asked questions,
pooled over cases) and the ``repeated_share`` (repeated over asked questions) are ratios
of two such means, resampled together, and undefined (NaN, shown ``—``) for a doctor that
asked nothing. Two runs on the same cases are compared case by
case (:func:`paired_difference`); :func:`relative_gain` is the paper's headline figure,
the relative accuracy gain of one run over another (proactive over reactive), with its
interval from the same paired resampling.

Open-ended cases (a diagnosis, no options) add ``tests`` (test orders given to the
measurement agent, SDBench's tests per episode) and ``diagnosis_rouge`` (ROUGE-L F1 of
the diagnosis against the case's, 0 without one); their ``correct`` is the judge's
verdict, and their facts acquired and SIG count what test results revealed too. Tables
show the two figures when a run has open-ended cases (:func:`shown_metrics`). Runs whose
diagnoses were judged by different judges are not compared (:func:`judging`).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from promed_agents.question_repeats import repeated_flags
from promed_agents.trace import EpisodeRecord, EpisodeStatus, Role, TurnKind

METRICS = ("correct", "questions", "answered", "repeated", "new_facts", "fact_recall", "sig",
           "tests", "diagnosis_rouge", "open_ended",
           "valid_turns", "timeout")
"""Per-episode figures, averaged per case."""
RATIOS = {"answerable": ("answered", "questions"), "repeated_share": ("repeated", "questions")}
"""Run figures that are a ratio of two per-case means."""
SHOWN = ("correct", "questions", "answerable", "repeated_share", "new_facts", "fact_recall",
         "sig", "valid_turns", "timeout")
"""What tables and reports show, in order."""
OPEN_SHOWN = ("tests", "diagnosis_rouge")
"""What they show besides for runs with open-ended cases."""
LABELS = {"correct": "accuracy", "questions": "questions / episode",
          "answered": "answered questions / episode",
          "answerable": "answerable share of questions",
          "repeated": "repeated questions / episode",
          "repeated_share": "repeated share of questions",
          "new_facts": "facts acquired / episode", "timeout": "timeout rate",
          "fact_recall": "fact recall", "sig": "SIG / episode", "valid_turns": "format",
          "tests": "tests ordered / episode", "diagnosis_rouge": "diagnosis ROUGE-L F1"}
"""How tables and reports name the metrics."""
BOOTSTRAP_ROUNDS = 2000


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% bootstrap interval.

    ``mean`` is NaN where the figure is undefined (a share of questions when none was
    asked); an end of the interval is infinite where more than 2.5% of the resamples
    had no finite value (a relative gain over a base whose resample scored 0), and
    ``undefined`` is that share."""

    mean: float
    low: float
    high: float
    undefined: float = 0.0

    def text(self, spec: str = ".3f") -> str:
        """``mean [low, high]`` in ``spec`` (e.g. ``+.1%``); ``—`` for an undefined
        figure, ``unbounded`` for an infinite end, and the share of undefined
        resamples when there were any."""
        if math.isnan(self.mean):
            return "\u2014"

        def end(value: float) -> str:
            return "\u2014" if math.isnan(value) else "unbounded" if math.isinf(value) \
                else format(value, spec)

        note = f"; {self.undefined:.1%} of resamples undefined" if self.undefined else ""
        return f"{end(self.mean)} [{end(self.low)}, {end(self.high)}]{note}"

    def __str__(self) -> str:
        return self.text()


def episode_figures(episode: EpisodeRecord) -> dict[str, float]:
    """The metrics of one consultation (a failed one scores 0 on each; :func:`per_case`
    leaves failed ones out)."""
    if episode.status is EpisodeStatus.FAILED:
        return dict.fromkeys(METRICS, 0.0)
    doctor = [t for t in episode.turns if t.role is Role.DOCTOR]
    valid = [t for t in doctor if t.kind in (TurnKind.QUESTION, TurnKind.TEST, TurnKind.ANSWER)]
    known, answered = set(episode.known_fact_ids), 0
    repeats = dict(zip((i for i, t in enumerate(episode.turns) if t.role is Role.DOCTOR),
                       repeated_flags(episode.turns), strict=True))
    for i, (question, reply) in enumerate(zip(episode.turns, episode.turns[1:], strict=False)):
        if question.kind is TurnKind.QUESTION and reply.role is Role.PATIENT and \
                not repeats[i]:
            new = set(reply.disclosed_fact_ids) - known
            answered += bool(new)
            known |= new
        elif question.kind is TurnKind.TEST and reply.role is Role.MEASUREMENT:
            known |= set(reply.disclosed_fact_ids)
    return {"correct": 1.0 if episode.correct else 0.0,
            "questions": float(episode.num_questions),
            "answered": float(answered),
            "repeated": float(sum(flag for i, flag in repeats.items()
                                  if episode.turns[i].kind is TurnKind.QUESTION)),
            "new_facts": float(len(known) - len(set(episode.known_fact_ids))),
            "fact_recall": float(episode.fact_recall or 0.0),
            "sig": float(episode.information_gain or sum(
                t.sig or 0.0 for t in episode.turns
                if t.kind in (TurnKind.QUESTION, TurnKind.TEST))),
            "tests": float(episode.tests_ordered or 0),
            "diagnosis_rouge": float(episode.diagnosis_rouge or 0.0),
            "open_ended": 1.0 if episode.diagnosis_rouge is not None else 0.0,
            "valid_turns": len(valid) / len(doctor) if doctor else 0.0,
            "timeout": 1.0 if episode.status is EpisodeStatus.TIMEOUT else 0.0}


def run_status(episodes: Iterable[EpisodeRecord]) -> tuple[str, str | None]:
    """``(status, reason)`` of a run from its consultations: ``failed`` when every one
    failed (or there were none), ``incomplete`` when some did, else ``complete``; the
    reason counts the failures and quotes the first."""
    episodes = list(episodes)
    failed = [e for e in episodes if e.status is EpisodeStatus.FAILED]
    if not failed and episodes:
        return "complete", None
    first = failed[0].failure_reason if failed else None
    reason = (f"{len(failed)} of {len(episodes)} consultations failed"
              + (f"; the first: {first}" if first else ""))
    return ("failed" if len(failed) == len(episodes) else "incomplete"), reason


def recorded_status(status: str | None, reason: str | None,
                    episodes: Iterable[EpisodeRecord]) -> tuple[str, str | None]:
    """A run's ``(status, reason)``: the one its command stored, else what its episodes
    say (:func:`run_status`; runs made through the Python API store none)."""
    return (status, reason) if status else run_status(episodes)


def sig_weighting(episodes: Iterable[EpisodeRecord]) -> str:
    """How the SIG of ``episodes`` weighed facts, as their evaluators recorded it:
    ``uniform``, ``shapley:SCORER``, several of these joined by ``+``, or ``unrecorded``."""
    kinds = sorted({e.fact_weights or "unrecorded" for e in episodes})
    return "+".join(kinds) if kinds else "unrecorded"


def judging(episodes: Iterable[EpisodeRecord]) -> str | None:
    """Who judged the diagnoses of ``episodes`` (their verdicts' judges joined by ``+``),
    or None when none was judged (multiple-choice cases)."""
    judges = sorted({e.verdict.judge for e in episodes if e.verdict is not None})
    return "+".join(judges) if judges else None


def shown_metrics(*runs: Mapping[str, Mapping[str, float]]) -> tuple[str, ...]:
    """What a table of ``runs`` (from :func:`per_case`) shows: :data:`SHOWN`, and
    :data:`OPEN_SHOWN` when a run has an open-ended case."""
    open_ended = any(f.get("open_ended") for run in runs for f in run.values())
    return SHOWN + OPEN_SHOWN if open_ended else SHOWN


def per_case(episodes: Iterable[EpisodeRecord]) -> dict[str, dict[str, float]]:
    """Each case's metrics, averaged over its episodes (seeds). Failed consultations are
    left out (a case whose every episode failed has no figures): a backend error is not a
    wrong answer. :func:`run_status` says how many there were."""
    grouped: dict[str, list[dict[str, float]]] = defaultdict(list)
    for episode in episodes:
        if episode.status is not EpisodeStatus.FAILED:
            grouped[episode.case_id].append(episode_figures(episode))
    return {case: {m: sum(f[m] for f in figures) / len(figures) for m in METRICS}
            for case, figures in grouped.items()}


def _resampled(cases: Sequence[str], statistic: Callable[[Sequence[str]], float],
               seed: int, rounds: int = BOOTSTRAP_ROUNDS) -> Estimate:
    """The percentile bootstrap of ``statistic`` over ``cases`` (resampled with
    replacement). A NaN resample (a share with nothing to share) is left out: the
    interval is conditional on the figure being defined. An infinite one (a ratio over a
    zero) stays in, sorted to its end, so that when more than 2.5% of the resamples are
    infinite the interval is unbounded there; its share is the estimate's
    ``undefined``."""
    if not cases:
        raise ValueError("no cases to evaluate")
    point = statistic(cases)
    if math.isnan(point):
        return Estimate(point, math.nan, math.nan)
    rng = random.Random(seed)
    values = [statistic(rng.choices(cases, k=len(cases))) for _ in range(rounds)]
    values = sorted(v for v in values if not math.isnan(v))
    if not values:
        return Estimate(point, math.nan, math.nan)
    undefined = sum(math.isinf(v) for v in values) / rounds
    n = len(values)
    return Estimate(point, values[int(0.025 * n)], values[max(int(0.975 * n) - 1, 0)],
                    undefined)


def summarize(figures: Mapping[str, Mapping[str, float]], seed: int = 0
              ) -> dict[str, Estimate]:
    """Each metric's mean over the cases of ``figures`` (from :func:`per_case`)."""
    cases = sorted(figures)

    def mean_of(metric: str) -> Callable[[Sequence[str]], float]:
        if metric in RATIOS:
            top, bottom = RATIOS[metric]
            return lambda chosen: _ratio(figures, chosen, top, bottom)
        return lambda chosen: sum(figures[c][metric] for c in chosen) / len(chosen)

    return {m: _resampled(cases, mean_of(m), seed) for m in SHOWN + OPEN_SHOWN}


def _ratio(figures: Mapping[str, Mapping[str, float]], chosen: Sequence[str], top: str,
           bottom: str) -> float:
    below = sum(figures[c][bottom] for c in chosen)
    return sum(figures[c][top] for c in chosen) / below if below else math.nan


def paired_difference(base: Mapping[str, Mapping[str, float]],
                      other: Mapping[str, Mapping[str, float]], seed: int = 0
                      ) -> dict[str, Estimate]:
    """``other`` minus ``base`` per metric, over the cases both have."""
    shared = sorted(set(base) & set(other))

    def ratio_diff(top: str, bottom: str) -> Callable[[Sequence[str]], float]:
        return lambda chosen: (_ratio(other, chosen, top, bottom)
                               - _ratio(base, chosen, top, bottom))

    return {m: _resampled(shared, ratio_diff(*RATIOS[m]), seed) if m in RATIOS
            else paired_metric(base, other, m, seed) for m in SHOWN + OPEN_SHOWN}


def mean_estimate(figures: Mapping[str, Mapping[str, float]], metric: str, seed: int = 0
                  ) -> Estimate:
    """The mean of one per-case figure ``metric`` (any, not only :data:`METRICS`) with its
    95% bootstrap interval."""
    return _resampled(sorted(figures), lambda chosen: sum(
        figures[c][metric] for c in chosen) / len(chosen), seed)


def paired_metric(base: Mapping[str, Mapping[str, float]],
                  other: Mapping[str, Mapping[str, float]], metric: str, seed: int = 0
                  ) -> Estimate:
    """``other`` minus ``base`` for one per-case figure ``metric``, over the cases both
    have, paired by case."""
    shared = sorted(set(base) & set(other))
    return _resampled(shared, lambda chosen: sum(
        other[c][metric] - base[c][metric] for c in chosen) / len(chosen), seed)


def relative_gain(base: Mapping[str, Mapping[str, float]],
                  other: Mapping[str, Mapping[str, float]], metric: str = "correct",
                  seed: int = 0) -> Estimate | None:
    """``(mean(other) - mean(base)) / mean(base)`` over shared cases, with a paired
    bootstrap interval; None when the base's mean is 0 (no relative gain exists). A
    resample whose base mean is 0 has no finite gain: it counts as unbounded (the
    estimate's ``undefined`` share), so the interval's upper end is unbounded when over
    2.5% of the resamples are of that kind (20 cases with one base success: about 36%)."""
    shared = sorted(set(base) & set(other))

    def gain(chosen: Sequence[str]) -> float:
        low = sum(base[c][metric] for c in chosen)
        return (sum(other[c][metric] for c in chosen) - low) / low if low else math.inf

    if not shared or not sum(base[c][metric] for c in shared):
        return None
    return _resampled(shared, gain, seed)

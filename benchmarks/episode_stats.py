"""Per-experiment episode figures with 95% bootstrap intervals, and the paired difference
between two experiments run on the same cases (used by ``mcts_sft_effect.sh``).

    python benchmarks/episode_stats.py --db sqlite:///promed.db BASELINE CANDIDATE
"""

from __future__ import annotations

import argparse
import json
import random

from promed_agents.storage import TraceStore
from promed_agents.trace import Role, TurnKind

METRICS = ("sig", "fact_recall", "correct", "questions", "valid_turns")


def figures(episode) -> dict[str, float]:
    doctor = [t for t in episode.turns if t.role is Role.DOCTOR]
    valid = [t for t in doctor if t.kind in (TurnKind.QUESTION, TurnKind.ANSWER)]
    return {"sig": episode.information_gain or 0.0,
            "fact_recall": episode.fact_recall or 0.0,
            "correct": 1.0 if episode.correct else 0.0,
            "questions": float(episode.num_questions),
            "valid_turns": len(valid) / len(doctor) if doctor else 0.0}


def interval(values: list[float], rng: random.Random, rounds: int = 2000) -> list[float]:
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values)
                   for _ in range(rounds))
    return [round(means[int(0.025 * rounds)], 4), round(means[int(0.975 * rounds) - 1], 4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("experiments", nargs=2)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    per_case: dict[str, dict[str, dict[str, float]]] = {}
    report: dict[str, object] = {}
    with TraceStore(args.db) as store:
        for name in args.experiments:
            episodes = list(store.iter_episodes(store.experiment_id(name)))
            per_case[name] = {e.case_id: figures(e) for e in episodes}
            report[name] = {"episodes": len(episodes), **{
                m: {"mean": round(sum(f[m] for f in per_case[name].values()) / len(episodes),
                                  4),
                    "ci95": interval([f[m] for f in per_case[name].values()], rng)}
                for m in METRICS}}
    base, candidate = args.experiments
    shared = sorted(set(per_case[base]) & set(per_case[candidate]))
    report["paired_difference"] = {"cases": len(shared), **{
        m: {"mean": round(sum(per_case[candidate][c][m] - per_case[base][c][m]
                              for c in shared) / len(shared), 4),
            "ci95": interval([per_case[candidate][c][m] - per_case[base][c][m]
                              for c in shared], rng)}
        for m in METRICS}}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

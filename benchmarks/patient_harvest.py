"""Can the fact-select patient be harvested? Degenerate questions, the question bank and
a red-team search over short questions built from the case vocabulary, on unseen cases.

case -> partial view -> doctor <-> **patient** -> evaluator -> ...

    python benchmarks/patient_harvest.py [--cases FILE] [--first 800] [--count 200]

Figures, per case over the ``--count`` cases from position ``--first`` of the file:
- the degenerate battery (``DEGENERATE_QUESTIONS``, all asked in one consultation): new
  facts acquired (target under 0.1);
- a fact's own text as the question: share of facts returned (recall);
- the question bank at budget 5: its best path per case (greedy by new facts), a fixed
  script (the bank's order ranked by yield on the ``--train`` cases before ``--first``),
  and five random bank questions;
- the oracle bound: five unknown facts asked by their own text;
- red team: each of the ``--words`` most frequent fact words alone, and in pairs among
  the ``--pair-words`` most frequent, asked first; the 20 that acquire most are listed,
  and the words of asking ("show", "reveal", "patient", "results") must acquire nothing.
The last line reads ``battery_new_facts_per_case=...``.
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import sys
from collections import Counter
from pathlib import Path

from promed_agents.agents.patient import FactSelectPatient
from promed_agents.agents.question_bank import bank_questions, rank_by_yield
from promed_agents.loader import load_cases
from promed_agents.partial_view import DEFAULT_POLICY, partial_view

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from adversarial_turns import DEGENERATE_QUESTIONS  # noqa: E402  (red-team turns, shared with the tests)

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "mediq" / "imedqa_dev.jsonl"
ASKING_WORDS = ("show", "reveal", "patient", "results")


def unknown_facts(case) -> set[int]:
    return set(partial_view(case, DEFAULT_POLICY).hidden_fact_ids(case))


def acquired(patient, case, questions) -> set[int]:
    unknown, got = unknown_facts(case), set()
    for question in questions:
        got |= set(patient.select(case, question)) & unknown
    return got


def best_path(patient, case, questions, budget: int) -> int:
    unknown, got, left = unknown_facts(case), set(), list(questions)
    for _ in range(budget):
        best = max(left, key=lambda q: len((set(patient.select(case, q)) & unknown) - got))
        left.remove(best)
        got |= set(patient.select(case, best)) & unknown
    return len(got)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=DEV)
    parser.add_argument("--first", type=int, default=800, help="First unseen case.")
    parser.add_argument("--count", type=int, default=200, help="Unseen cases.")
    parser.add_argument("--train", type=int, default=600,
                        help="Cases before --first that rank the bank's fixed order.")
    parser.add_argument("--budget", type=int, default=5)
    parser.add_argument("--words", type=int, default=500)
    parser.add_argument("--pair-words", type=int, default=60)
    args = parser.parse_args()

    cases = load_cases(args.cases)
    unseen = cases[args.first: args.first + args.count]
    train = cases[max(0, args.first - args.train): args.first]
    patient = FactSelectPatient()
    n = len(unseen)

    battery = sum(len(acquired(patient, c, DEGENERATE_QUESTIONS)) for c in unseen) / n
    own = [i in patient.select(c, c.facts[i]) for c in unseen for i in range(len(c.facts))]
    bank = bank_questions()
    order = rank_by_yield(bank, train) if train else bank
    rng = random.Random(0)
    figures = {
        f"degenerate battery ({len(DEGENERATE_QUESTIONS)} questions)": battery,
        "own text returns the fact (recall)": sum(own) / len(own),
        f"bank best path, budget {args.budget}":
            sum(best_path(patient, c, bank, args.budget) for c in unseen) / n,
        f"bank fixed script (top {args.budget} by yield on {len(train)} earlier cases)":
            sum(len(acquired(patient, c, order[: args.budget])) for c in unseen) / n,
        f"bank random {args.budget}":
            sum(len(acquired(patient, c, rng.sample(bank, args.budget))) for c in unseen) / n,
        f"oracle, budget {args.budget}": sum(len(acquired(patient, c, [
            c.facts[i] for i in sorted(unknown_facts(c))[: args.budget]])) for c in unseen) / n,
    }
    print(f"fact-select patient (min_weight {patient.min_weight}, min_score "
          f"{patient.min_score}, max_facts {patient.max_facts}) on {n} unseen cases "
          f"({args.cases.name} [{args.first}, {args.first + n})); new facts per case:")
    for name, value in figures.items():
        print(f"  {name:<62} {value:6.3f}")

    # red team: the case vocabulary's frequent words, alone and in pairs
    frequency: Counter[str] = Counter()
    for case in cases[: args.first]:
        for fact in case.facts:
            frequency.update({w.lower() for w in re.findall(r"[A-Za-z]{3,}", fact)})
    words = [w for w, _ in frequency.most_common(args.words)]
    probes = words + [f"{a} {b}" for a, b in itertools.combinations(words[: args.pair_words], 2)]
    hidden = [(c, unknown_facts(c)) for c in unseen]
    gains = {q: sum(len(set(patient.select(c, q)) & unknown) for c, unknown in hidden) / n
             for q in probes}
    top = sorted(gains.items(), key=lambda item: -item[1])[:20]
    print(f"red team: {len(words)} frequent fact words alone and {len(probes) - len(words)} "
          f"pairs; the 20 that acquire most (new facts per case):")
    for question, value in top:
        print(f"  {question!r:<36} {value:.3f}")
    for word in ASKING_WORDS:
        print(f"  asking word {word!r}: {gains.get(word, 0.0):.3f}")
    print(f"battery_new_facts_per_case={battery:.3f} recall={sum(own) / len(own):.3f} "
          f"bank_best_path={figures[f'bank best path, budget {args.budget}']:.3f}")


if __name__ == "__main__":
    main()

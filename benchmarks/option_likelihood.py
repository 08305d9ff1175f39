"""Can a scorer model use a case's facts? Option-likelihood accuracy with and without them.

Shapley values and SIG are only as meaningful as the scorer's use of information: the
value of a coalition of facts is the scorer's log-probability of the correct answer
(:mod:`promed_agents.sig.answer_scorer`). This script asks the scorer to choose: for each
case it scores every option as the answer, once with all the case's facts and once with
none, and picks the most likely option. If accuracy with the facts is no better than
without, the scorer cannot use them (and the values it gives facts are noise).

    python benchmarks/option_likelihood.py --cases ../shared/data/mediq/imedqa_dev.jsonl \
        --first 800 --count 80

Prints accuracy with all facts and with none (95% bootstrap intervals over cases) and
their paired difference; the last line is
``option_likelihood all_facts=... no_facts=... difference=... ci_low=... ci_high=... cases=N``.
The demo quotes this script's result for the embedded model.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from promed_agents.evaluation import mean_estimate, paired_metric
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.sig.local_answer_scorer import LocalAnswerScorer


def chosen_options(scorer: LocalAnswerScorer, case) -> tuple[str, str]:
    """The options the scorer finds most likely as the answer, with all the case's facts
    and with none."""
    both = [frozenset(range(len(case.facts))), frozenset()]
    scores = {letter: scorer.value_function(case.model_copy(update={"answer": [letter]}))(
                  both) for letter in case.options}
    return (max(scores, key=lambda k: scores[k][0]), max(scores, key=lambda k: scores[k][1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=Path, default=bundled_sample_path(),
                   help="Case file [default: the bundled sample].")
    p.add_argument("--first", type=int, default=0, help="Position of the first case used.")
    p.add_argument("--count", type=int, default=50, help="Cases used.")
    p.add_argument("--model", default="smollm2", help="Local scorer model (local_weights).")
    args = p.parse_args()
    cases = load_cases(args.cases)[args.first:args.first + args.count]
    if not cases:
        p.error(f"no cases from position {args.first} in {args.cases}")
    scorer = LocalAnswerScorer(model_ref=args.model)
    started = time.perf_counter()
    figures = {}
    for case in cases:
        truth = set(case.answer)
        with_facts, without = chosen_options(scorer, case)
        figures[case.id] = {"all_facts": float(with_facts in truth),
                            "no_facts": float(without in truth)}
    seconds = time.perf_counter() - started
    with_facts = mean_estimate(figures, "all_facts")
    without = mean_estimate(figures, "no_facts")
    difference = paired_metric({c: {"x": f["no_facts"]} for c, f in figures.items()},
                               {c: {"x": f["all_facts"]} for c, f in figures.items()}, "x")
    options = sum(len(c.options) for c in cases) / len(cases)
    print(f"{len(cases)} cases ({cases[0].id} ... {cases[-1].id}) from {args.cases}, scorer "
          f"local:{args.model}, {options:.1f} options a case (chance {1 / options:.3f}); "
          f"{platform.machine()}, {seconds:.0f} s")
    print(f"accuracy with all facts {with_facts}; with none {without}; "
          f"difference {difference.text('+.3f')}")
    print(f"option_likelihood all_facts={with_facts.mean:.3f} no_facts={without.mean:.3f} "
          f"difference={difference.mean:+.3f} ci_low={difference.low:+.3f} "
          f"ci_high={difference.high:+.3f} cases={len(cases)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

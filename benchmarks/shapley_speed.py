"""Shapley speed: our estimator against the reference approach, same model and cases.

The reference approach (re-implemented faithfully here): Monte Carlo permutations, run
one after another; along each permutation, one unbatched forward pass over the whole
prompt per coalition (empty set first), no cache across coalitions or permutations; the
same stopping rule (at least 3, at most 50 permutations, mean change below 1e-2) and
truncation (stop a permutation once within 1e-2 of v(all facts)).

Ours: :func:`promed_agents.sig.shapley.permutation_shapley` with the same rule and budget
over :class:`promed_agents.sig.local_answer_scorer.LocalAnswerScorer` (each distinct coalition
once, a round's coalitions of one size batched, the prompt prefix shared), and, for
reference, exact enumeration with the same scorer, which is also the ground truth.

Both score the same token sequences, so they play the same game. Error: mean absolute
difference from exact Shapley per fact, on cases with at most 10 facts.

    python benchmarks/shapley_speed.py --cases 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time

import torch

from promed_agents.backends.local_weights import load_local_model
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.sig.local_answer_scorer import LocalAnswerScorer
from promed_agents.sig.shapley import PermutationConfig, exact_shapley, permutation_shapley


def reference_value(model, tokenizer, scorer, case, coalition) -> float:
    tokens = scorer.tokens(tokenizer, case, coalition)
    ids, n = tokens.ids, tokens.n_answer
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits[len(ids) - n - 1:-1], -1)
    return float(logprobs.gather(-1, torch.tensor(ids[-n:]).unsqueeze(-1)).mean())


def reference_shapley(model, tokenizer, scorer, case, settings: PermutationConfig):
    n = len(case.facts)
    rng = random.Random(settings.seed)
    v_full = reference_value(model, tokenizer, scorer, case, frozenset(range(n)))
    means, m, forwards = [0.0] * n, 0, 1
    while m < settings.max_permutations:
        perm = rng.sample(range(n), n)
        gains = [0.0] * n
        previous = reference_value(model, tokenizer, scorer, case, frozenset())
        forwards += 1
        for k in range(1, n + 1):
            if abs(v_full - previous) < settings.truncation:
                break
            value = reference_value(model, tokenizer, scorer, case, frozenset(perm[:k]))
            forwards += 1
            gains[perm[k - 1]] = value - previous
            previous = value
        m += 1
        updated = [a + (g - a) / m for a, g in zip(means, gains, strict=True)]
        change = sum(abs(a - b) for a, b in zip(updated, means, strict=True)) / n
        means = updated
        if m >= settings.min_permutations and change < settings.tolerance:
            break
    return means, m, forwards


def mean_abs_error(values, exact) -> float:
    return sum(abs(a - b) for a, b in zip(values, exact, strict=True)) / len(exact)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--max-facts", type=int, default=10)
    parser.add_argument("--min-facts", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    cases = [c for c in load_cases(bundled_sample_path())
             if args.min_facts <= len(c.facts) <= args.max_facts][: args.cases]
    scorer = LocalAnswerScorer()
    model, tokenizer = load_local_model(scorer.model_ref)
    settings = PermutationConfig(seed=args.seed)
    print(json.dumps({"machine": f"{platform.machine()} {os.cpu_count()} cpus, "
                                 f"torch {torch.__version__}, {torch.get_num_threads()} threads",
                      "cases": [c.id for c in cases], "facts": [len(c.facts) for c in cases],
                      "settings": settings.__dict__}), flush=True)
    totals = {"reference": 0.0, "ours": 0.0, "ours_exact": 0.0}
    for case in cases:
        start = time.perf_counter()
        exact = exact_shapley(len(case.facts), scorer.value_function(case))
        t_exact = time.perf_counter() - start
        start = time.perf_counter()
        ref_values, ref_perms, forwards = reference_shapley(model, tokenizer, scorer, case,
                                                            settings)
        t_ref = time.perf_counter() - start
        start = time.perf_counter()
        ours = permutation_shapley(len(case.facts), scorer.value_function(case), settings)
        t_ours = time.perf_counter() - start
        totals["reference"] += t_ref
        totals["ours"] += t_ours
        totals["ours_exact"] += t_exact
        print(json.dumps({
            "case": case.id, "facts": len(case.facts),
            "reference": {"seconds": round(t_ref, 2), "permutations": ref_perms,
                          "forward_passes": forwards,
                          "error": round(mean_abs_error(ref_values, exact.values), 4)},
            "ours": {"seconds": round(t_ours, 2), "permutations": ours.permutations,
                     "coalitions": ours.evaluations,
                     "error": round(mean_abs_error(ours.values, exact.values), 4)},
            "ours_exact": {"seconds": round(t_exact, 2), "coalitions": exact.evaluations},
            "speedup": round(t_ref / t_ours, 2)}), flush=True)
    n = len(cases)
    print(json.dumps({"seconds_per_case": {k: round(v / n, 2) for k, v in totals.items()},
                      "speedup_vs_reference": round(totals["reference"] / totals["ours"], 2),
                      "exact_speedup_vs_reference":
                          round(totals["reference"] / totals["ours_exact"], 2)}), flush=True)


if __name__ == "__main__":
    main()

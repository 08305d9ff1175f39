"""Shapley speed as error against time: the reference approach, our permutation estimator
and stratified paired KernelSHAP, same scorer and cases, in one run.

The reference approach (re-implemented faithfully here): Monte Carlo permutations, run
one after another; along each permutation, one unbatched forward pass over the whole
prompt per coalition (empty set first), no cache across coalitions or permutations; at
least 3 and at most 50 permutations, stop once the estimates move by less than 1e-2 on
average, and truncate a permutation once within 1e-2 of v(all facts).

Ours: :func:`~promed_agents.sig.shapley.permutation_shapley` with the same rule and
:func:`~promed_agents.sig.kernel_shapley.kernel_shapley`, both over
:class:`~promed_agents.sig.local_answer_scorer.LocalAnswerScorer` (each distinct coalition
once, batched, the prompt prefix and the states of scored coalitions reused). Ground
truth: exact Shapley values with the same scorer (all three score the same token
sequences, so they play the same game). Error: mean absolute difference from exact per
fact (nats), recorded after every permutation (reference) or round (ours) with the wall
time so far.

Per case: (a) the time each estimator needs to reach the reference's final error and
(b) its error at the time the reference took. Summed over cases, reference over new:
``time_ratio`` (bigger is better) and ``error_ratio`` (mean errors). Then the cost of the
default estimator (``promed shapley``'s) per dev case, on a sample of the MediQ dev
split, extrapolated to all 1,000 cases.

    python benchmarks/shapley_speed.py                     # 8 cases with 6-12 facts
    python benchmarks/shapley_speed.py --cases 2 --max-facts 7 --dev-sample 2  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

import torch

from promed_agents.backends.model_pool import load_local_model
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.sig.kernel_shapley import KernelConfig, kernel_shapley
from promed_agents.sig.local_answer_scorer import LocalAnswerScorer
from promed_agents.sig.shapley import PermutationConfig, exact_shapley, permutation_shapley
from promed_agents.trainers.shapley_job import ShapleyConfig, estimate_case

HERE = Path(__file__).resolve().parent
DEV = HERE.parent.parent / "shared" / "data" / "mediq" / "imedqa_dev.jsonl"


def reference_value(model, tokenizer, scorer, case, coalition) -> float:
    tokens = scorer.tokens(tokenizer, case, coalition)
    ids, n = tokens.ids, tokens.n_answer
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits[len(ids) - n - 1:-1], -1)
    return float(logprobs.gather(-1, torch.tensor(ids[-n:]).unsqueeze(-1)).mean())


def reference_shapley(model, tokenizer, scorer, case, settings: PermutationConfig, record):
    """The reference's loop; ``record(values)`` after each permutation."""
    n = len(case.facts)
    rng = random.Random(settings.seed)
    v_full = reference_value(model, tokenizer, scorer, case, frozenset(range(n)))
    means, m = [0.0] * n, 0
    while m < settings.max_permutations:
        perm = rng.sample(range(n), n)
        gains = [0.0] * n
        previous = reference_value(model, tokenizer, scorer, case, frozenset())
        for k in range(1, n + 1):
            if abs(v_full - previous) < settings.truncation:
                break
            value = reference_value(model, tokenizer, scorer, case, frozenset(perm[:k]))
            gains[perm[k - 1]] = value - previous
            previous = value
        m += 1
        updated = [a + (g - a) / m for a, g in zip(means, gains, strict=True)]
        change = sum(abs(a - b) for a, b in zip(updated, means, strict=True)) / n
        means = updated
        record(means)
        if m >= settings.min_permutations and change < settings.tolerance:
            break


def mean_abs_error(values, exact) -> float:
    return sum(abs(a - b) for a, b in zip(values, exact, strict=True)) / len(exact)


def timed_curve(run, exact) -> list[tuple[float, float]]:
    """[(seconds so far, error)] from ``run(record)``; time spent recording is excluded."""
    curve: list[tuple[float, float]] = []
    paused = 0.0
    start = time.perf_counter()

    def record(values) -> None:
        nonlocal paused
        now = time.perf_counter()
        curve.append((now - start - paused, mean_abs_error(values, exact)))
        paused += time.perf_counter() - now

    run(record)
    return curve


def time_to_reach(curve, error) -> float:
    return next((t for t, e in curve if e <= error + 1e-12), float("inf"))


def error_at(curve, seconds) -> float:
    within = [e for t, e in curve if t <= seconds]
    return within[-1] if within else curve[0][1]


def pick_cases(cases, count, min_facts, max_facts):
    """The first case of each fact count in range, then the next ones, ``count`` in all."""
    eligible = [c for c in cases if min_facts <= len(c.facts) <= max_facts]
    firsts = list({len(c.facts): c for c in reversed(eligible)}.values())[::-1]
    chosen = sorted(firsts, key=lambda c: len(c.facts))[:count]
    chosen += [c for c in eligible if c not in chosen][:count - len(chosen)]
    return sorted(chosen, key=lambda c: len(c.facts))


def plot(rows, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    cols = 4
    fig, axes = plt.subplots(-(-len(rows) // cols), cols, figsize=(16, 3.6 * -(-len(rows) // cols)),
                             squeeze=False)
    for ax, row in zip(axes.flat, rows, strict=False):
        for name, style in (("reference", "k-"), ("permutation", "C0-"), ("kernel", "C3-")):
            t, e = zip(*row["curves"][name], strict=True)
            ax.plot(t, [max(x, 1e-5) for x in e], style, marker=".", label=name)
        ax.axhline(row["curves"]["reference"][-1][1], color="k", lw=0.5, ls=":")
        ax.set(xscale="log", yscale="log", title=f"{row['case']} ({row['facts']} facts)",
               xlabel="seconds (log scale)", ylabel="mean |error| (nats)")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    axes.flat[0].legend()
    fig.suptitle("Shapley estimates: error against wall time (SmolLM2-135M float32, "
                 f"{torch.get_num_threads()} threads)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--min-facts", type=int, default=6)
    parser.add_argument("--max-facts", type=int, default=12)
    parser.add_argument("--kernel-budget", type=int, default=512,
                        help="Coalitions the kernel curve runs to (capped at 2^n).")
    parser.add_argument("--dev-sample", type=int, default=30,
                        help="Dev cases timed with the default estimator (0: skip).")
    parser.add_argument("--plot", type=Path, default=HERE / "shapley_speed.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    cases = pick_cases(load_cases(bundled_sample_path()), args.cases, args.min_facts,
                       args.max_facts)
    scorer = LocalAnswerScorer()
    model, tokenizer = load_local_model(scorer.model_ref)
    reference = PermutationConfig(seed=args.seed)
    print(json.dumps({"machine": f"{platform.machine()} {os.cpu_count()} cpus, "
                                 f"torch {torch.__version__}, {torch.get_num_threads()} threads",
                      "cases": [c.id for c in cases], "facts": [len(c.facts) for c in cases],
                      "reference": reference.__dict__}), flush=True)
    rows = []
    for case in cases:
        n = len(case.facts)
        start = time.perf_counter()
        exact = exact_shapley(n, scorer.value_function(case), max_players=n).values
        t_exact = time.perf_counter() - start
        curves = {
            "reference": timed_curve(lambda rec, case=case: reference_shapley(
                model, tokenizer, scorer, case, reference, rec), exact),
            "permutation": timed_curve(lambda rec, case=case: permutation_shapley(
                len(case.facts), scorer.value_function(case), reference,
                on_round=lambda e: rec(e.values)), exact),
            "kernel": timed_curve(lambda rec, case=case: kernel_shapley(
                len(case.facts), scorer.value_function(case),
                KernelConfig(max_evaluations=min(args.kernel_budget, 2 ** len(case.facts)),
                             seed=args.seed),
                on_round=lambda e: rec(e.values)), exact)}
        t_ref, e_ref = curves["reference"][-1]
        row = {"case": case.id, "facts": n, "exact_seconds": round(t_exact, 2),
               "reference": {"seconds": round(t_ref, 2), "error": round(e_ref, 4)},
               "curves": curves}
        for name in ("permutation", "kernel"):
            row[name] = {"seconds_to_reference_error":
                             round(time_to_reach(curves[name], e_ref), 3),
                         "error_at_reference_seconds":
                             round(error_at(curves[name], t_ref), 4),
                         "first_round": [round(x, 4) for x in curves[name][0]]}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "curves"}), flush=True)
    plot(rows, args.plot)
    (args.plot.with_suffix(".json")).write_text(json.dumps(rows))
    t_ref_total = sum(r["reference"]["seconds"] for r in rows)
    e_ref_mean = sum(r["reference"]["error"] for r in rows) / len(rows)
    ratios = {}
    for name in ("permutation", "kernel"):
        t_new = sum(time_to_reach(r["curves"][name], r["curves"]["reference"][-1][1])
                    for r in rows)
        e_new = sum(error_at(r["curves"][name], r["curves"]["reference"][-1][0])
                    for r in rows) / len(rows)
        ratios[name] = (t_ref_total / t_new, e_ref_mean / max(e_new, 1e-12))
        print(json.dumps({"estimator": name, "seconds_to_reference_error": round(t_new, 2),
                          "reference_seconds": round(t_ref_total, 2),
                          "mean_error_at_reference_seconds": round(e_new, 5),
                          "reference_mean_error": round(e_ref_mean, 5),
                          "time_ratio": round(ratios[name][0], 2),
                          "error_ratio": round(ratios[name][1], 2)}), flush=True)
    if args.dev_sample:
        dev = random.Random(args.seed).sample(load_cases(DEV), args.dev_sample)
        # The default estimator, and the kernel estimator's first round alone (the
        # enumerated stratum {1, n-1}).
        for label, config in (("default", ShapleyConfig()),
                              ("first_round", ShapleyConfig(
                                  kernel=KernelConfig(max_evaluations=2)))):
            start = time.perf_counter()
            for case in dev:
                estimate_case(case, scorer, config)
            per_case = (time.perf_counter() - start) / len(dev)
            print(json.dumps({"estimator": label, "method": config.method,
                              "kernel": config.kernel.__dict__,
                              "dev_cases_timed": len(dev),
                              "mean_facts": sum(len(c.facts) for c in dev) / len(dev),
                              "seconds_per_case": round(per_case, 3),
                              "minutes_for_1000_cases": round(per_case * 1000 / 60, 1)}),
                  flush=True)
    time_ratio, error_ratio = ratios["kernel"]
    print(f"time_ratio={time_ratio:.2f} error_ratio={error_ratio:.2f}")


if __name__ == "__main__":
    main()

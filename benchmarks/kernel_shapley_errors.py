"""KernelSHAP's error and its standard errors' calibration, 7 to 30 facts, against exact values.

The games are sums of unanimity games, v(S) = sum over T of c_T [T subset of S], whose
Shapley values are known in closed form (phi_i = sum over T holding i of c_T / |T|), so
exact values exist at any number of facts. Each game has every fact alone, random pairs
and triples, and a few large groups (interactions of a third to a half of the facts, which
no small stratum captures). For each size, :func:`kernel_shapley` runs with ``--seeds``
seeds at its default budget (:func:`~promed_agents.sig.kernel_shapley.default_budget`)
and at ``--budget``; per fact, the reported standard error (mean over seeds) is set
against the actual spread of the estimates over seeds, and the estimate against the exact
value.

    python benchmarks/kernel_shapley_errors.py --sizes 7,12,16,18,22,25,30 --seeds 40

Prints one row per size and budget: coalitions, mean absolute error against exact, the
actual spread, the reported error, their ratio (median over facts; 1 is calibrated) and
the share of runs whose error is unknown (NaN). The last line is
``kernel_errors sizes=... ratio_min=... ratio_max=...`` over the rows with known errors.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import time

from promed_agents.sig.kernel_shapley import KernelConfig, default_budget, kernel_shapley


def unanimity_game(n: int, seed: int) -> tuple[list[tuple[frozenset[int], float]], list[float]]:
    """Terms (T, c_T) and the game's exact Shapley values."""
    rng = random.Random(seed)
    terms = [(frozenset([i]), rng.gauss(0, 1.0)) for i in range(n)]
    for size, count, scale in ((2, 2 * n, 0.5), (3, 2 * n, 0.3), (max(n // 3, 2), 3, 0.5),
                               (max(n // 2, 2), 2, 0.5)):
        for _ in range(count):
            terms.append((frozenset(rng.sample(range(n), size)), rng.gauss(0, scale)))
    exact = [0.0] * n
    for members, weight in terms:
        for i in members:
            exact[i] += weight / len(members)
    return terms, exact


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="7,12,16,18,22,25,30")
    p.add_argument("--seeds", type=int, default=40)
    p.add_argument("--budget", type=int, default=256, help="A larger budget, besides the "
                   "default one.")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.perf_counter()
    print(f"{platform.machine()}; {args.seeds} seeds a row; unanimity games with exact values")
    print(f"{'facts':>5} {'coalitions':>10} {'|error|':>9} {'spread':>9} {'reported':>9} "
          f"{'ratio':>6} {'unknown':>7}")
    ratios = []
    for n in sizes:
        terms, exact = unanimity_game(n, seed=n)

        def value(coalitions, terms=terms):
            return [sum(w for t, w in terms if t <= c) for c in coalitions]

        for budget in (None, args.budget):
            runs = [kernel_shapley(n, value, KernelConfig(max_evaluations=budget, seed=seed))
                    for seed in range(args.seeds)]
            used = runs[0].evaluations
            error = statistics.mean(abs(r.values[i] - exact[i]) for r in runs for i in range(n))
            spread = [statistics.stdev(r.values[i] for r in runs) for i in range(n)]
            known = [r for r in runs if not any(math.isnan(e) for e in r.std_errors)]
            unknown = 1 - len(known) / len(runs)
            if statistics.mean(spread) < 1e-9:  # every stratum enumerated: exact
                shown = f"{'0 (exact)':>9} {'-':>6}"
            elif known:
                reported = [statistics.mean(r.std_errors[i] for r in known) for i in range(n)]
                ratio = statistics.median(a / b for a, b in zip(reported, spread, strict=True))
                ratios.append(ratio)
                shown = f"{statistics.mean(reported):9.4f} {ratio:6.2f}"
            else:
                shown = f"{'-':>9} {'-':>6}"
            print(f"{n:>5} {used:>10} {error:9.4f} {statistics.mean(spread):9.4f} {shown} "
                  f"{unknown:7.0%}" + ("  (default budget)" if budget is None else ""))
            if budget is None:
                assert used <= max(default_budget(n), 2 * n + 2)
    print(f"{time.perf_counter() - started:.0f} s")
    print(f"kernel_errors sizes={args.sizes} ratio_min={min(ratios):.2f} "
          f"ratio_max={max(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

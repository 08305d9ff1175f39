"""Does a trained doctor ask questions that acquire information? The whole method on dev
cases, evaluated on dev cases it never saw, beside model-free reference doctors.

case -> consultation graph -> trace in SQL -> SIG -> **MCTS (bank proposer) -> SFT ->
SIG-GRPO** -> **evaluation** against reactive, base, bank:random, bank:fixed, oracle

    python benchmarks/asking_effect.py [--train-cases 300] [--eval-count 200] ...

1. Imports ``--cases`` (default: the 1,000 iMedQA dev cases) into a fresh SQLite store
   under ``--workdir``. Training uses the first ``--train-cases`` cases; evaluation the
   ``--eval-count`` cases from position ``--eval-first`` (default: the file's last 200),
   or the cases of ``--eval-cases FILE`` / stored ``--eval-split``; training and
   evaluation cases must not overlap.
2. Ranks the question bank by yield on the training cases (``bank:fixed``'s order).
3. MCTS on the training cases with ``promed mcts``'s defaults (the bank proposer writes
   every turn, favouring the bank's best order: no model call in an expansion); SFT on
   each case's best path, its informative questions and a trained answer turn (the
   correct answer where the path's was not); SIG-GRPO from the SFT model.
4. Evaluates, with the same patient, budget and greedy decoding: reactive, base
   proactive, ``bank:random`` (``--random-seeds`` seeds), ``bank:fixed``,
   ``bank:similar`` (the bank ranked for each case by the training cases most like it),
   ``oracle``,
   SFT, SFT+GRPO. SIG is the uniform-weight gain (no Shapley values are computed: on the
   embedded model they would be noise, since it cannot use information).
   With ``--designs`` (comma-separated: ``promed``, ``doctoragent``, ``outcome``,
   ``rollout-level``, and any of them with ``+length`` for the length penalty), one GRPO
   run per reward design from the same SFT model, with the same steps, cases, patient
   and evaluation (``doctoragent`` trains with its dynamic budget, 2 to budget + 1
   turns); ``--abstain`` adds MediQ's abstaining doctor (the base model, numerical
   confidence, threshold 0.8); ``--no-reference-doctors`` skips bank:random, bank:fixed
   and oracle.
5. Prints one table (mean [95% CI] over cases), how case-conditioned each doctor's
   questions are (distinct first questions; the choice ratio of
   :mod:`~promed_agents.agents.question_choice`, trained minus ``bank:fixed`` paired by
   case), paired differences of SFT+GRPO against the others (and of each other design
   against ProMed's), and the last two lines
   ``sig_gain=<SFT+GRPO minus base, SIG per episode> ci_low=<...> ci_high=<...>`` and
   ``vs_fixed=<SFT+GRPO minus bank:fixed, SIG per episode> ci_low=<...> ci_high=<...>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from promed_agents.agents.question_bank import bank_questions, rank_by_yield
from promed_agents.agents.question_choice import choice_by_case, first_questions
from promed_agents.evaluation import (
    LABELS,
    SHOWN,
    mean_estimate,
    paired_difference,
    paired_metric,
    per_case,
    summarize,
)
from promed_agents.loader import load_cases
from promed_agents.runs import (
    EvalCommandConfig,
    GRPOCommandConfig,
    MCTSCommandConfig,
    SFTCommandConfig,
    run_evaluation,
    run_grpo,
    run_search,
    run_sft,
)
from promed_agents.storage import TraceStore
from promed_agents.trainers.mcts_search import MCTSConfig

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "mediq" / "imedqa_dev.jsonl"
COLUMNS = ("correct", "questions", "answerable", "repeated_share", "new_facts", "sig",
           "valid_turns", "timeout")


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=Path, default=DEV, help="Case file to train on.")
    p.add_argument("--train-cases", type=int, default=300)
    p.add_argument("--eval-cases", type=Path, default=None,
                   help="Evaluate on this case file instead of --cases.")
    p.add_argument("--eval-split", default=None,
                   help="Label of the evaluation cases in the store (with --eval-cases: "
                        "the split they are imported as).")
    p.add_argument("--eval-first", type=int, default=None,
                   help="First evaluation case's position [default: the last --eval-count].")
    p.add_argument("--eval-count", type=int, default=200)
    p.add_argument("--doctor", default="local:smollm2")
    p.add_argument("--budget", type=int, default=5, help="Questions per consultation.")
    p.add_argument("--iterations", type=int, default=MCTSConfig.iterations,
                   help="MCTS iterations per case.")
    p.add_argument("--correct-bonus", type=float, default=MCTSConfig.correct_bonus,
                   help="MCTS reward of a right answer (the reference's is 2).")
    p.add_argument("--proposer", default=MCTSCommandConfig.proposer)
    p.add_argument("--proposer-ratio", type=float, default=MCTSConfig.proposer_ratio)
    p.add_argument("--sft-eval", action=argparse.BooleanOptionalAction, default=True,
                   help="Evaluate the SFT model too (not only SFT+GRPO).")
    p.add_argument("--sft-epochs", type=float, default=1.0)
    p.add_argument("--sft-learning-rate", type=float, default=1e-4)
    p.add_argument("--sft-model", default=None,
                   help="SFT's starting model (default: --doctor); an earlier run's SFT "
                        "model continues its training")
    p.add_argument("--informative-only", action=argparse.BooleanOptionalAction,
                   default=False, help="SFT trains only questions that acquired something.")
    p.add_argument("--paths-per-case", type=int, default=1,
                   help="SFT on each case's best N paths that earned a reward.")
    p.add_argument("--grpo-steps", type=int, default=12)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--grpo-learning-rate", type=float, default=1e-5)
    p.add_argument("--random-seeds", type=int, default=3)
    p.add_argument("--designs", default="promed",
                   help="GRPO reward designs, comma-separated (promed first).")
    p.add_argument("--length-penalty", type=float, default=1.0,
                   help="The penalty of a design named with +length.")
    p.add_argument("--cases-per-step", type=int, default=1)
    p.add_argument("--abstain", action="store_true",
                   help="Also evaluate MediQ's abstaining doctor (the base model).")
    p.add_argument("--reference-doctors", action=argparse.BooleanOptionalAction,
                   default=True, help="Evaluate bank:random, bank:fixed and oracle.")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--workdir", type=Path, default=Path("asking-effect-runs"))
    p.add_argument("--resume", type=Path, default=None,
                   help="A run's folder (WORKDIR/STAMP): reuse its store; evaluations, "
                        "the search and trained models already there are kept.")
    return p.parse_args()


def peak_gb(who: int) -> float:
    """Peak resident memory of this process or of its largest finished child, in GB."""
    return resource.getrusage(who).ru_maxrss / 2**20  # Linux reports KiB


def _run_in_store(run: Callable[..., Any], db: str, settings: Any) -> None:
    logging.basicConfig(format="%(message)s")  # the run's notes, as in the parent
    logging.getLogger("promed_agents").setLevel(logging.INFO)
    with TraceStore(db) as store:
        run(store, settings)


def in_child(run: Callable[..., Any], db: str, settings: Any) -> None:
    """``run(store, settings)`` on the store at ``db``, in a fresh process whose memory
    goes when it ends (its peak counts as a child's)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(_run_in_store, (run, db, settings))


def main() -> int:
    args = arguments()
    console = Console(width=200)
    # the runs' notes (how many cases have Shapley values, a resumed search) as log lines
    logging.basicConfig(format="%(message)s")
    logging.getLogger("promed_agents").setLevel(logging.INFO)
    stamp = args.resume.name if args.resume else time.strftime("%Y%m%d-%H%M%S")
    work = args.resume or args.workdir / stamp
    work.mkdir(parents=True, exist_ok=True)
    store = TraceStore(f"sqlite:///{work / 'store.db'}")
    started = time.perf_counter()

    if "promed" not in args.designs.split(","):
        print("error: --designs must include promed (the others are compared with it)",
              file=sys.stderr)
        return 1
    train = load_cases(args.cases, split="train", limit=args.train_cases)
    if args.eval_cases is not None:
        evaluated = load_cases(args.eval_cases, split=args.eval_split or "eval")
        evaluated = evaluated[(args.eval_first or 0):][: args.eval_count]
    else:
        everything = load_cases(args.cases, split=args.eval_split or "eval")
        first = args.eval_first if args.eval_first is not None else \
            len(everything) - args.eval_count
        evaluated = everything[first: first + args.eval_count]
    overlap = {c.id for c in train} & {c.id for c in evaluated}
    if overlap:
        print(f"error: {len(overlap)} evaluation cases are training cases (first: "
              f"{sorted(overlap)[0]}); move --eval-first past --train-cases", file=sys.stderr)
        return 1
    store.import_cases(train)
    store.import_cases(evaluated)
    train_ids, eval_ids = [c.id for c in train], [c.id for c in evaluated]
    console.print(f"training on {len(train)} cases ({train_ids[0]} ...), evaluating on "
                  f"{len(evaluated)} unseen cases ({eval_ids[0]} ... {eval_ids[-1]})")

    bank_file = work / "bank_fixed.json"
    bank_file.write_text(json.dumps(rank_by_yield(bank_questions(), train), indent=1))
    run_names: dict[str, str] = {}

    def evaluate(doctor: str, name: str, mode: str = "proactive", seeds: int = 1,
                 abstain: str | None = None):
        stored = f"{stamp}-{name}-{mode}"
        if stored in {e.name for e in store.list_experiments()}:
            run_names[name] = stored
            return per_case(store.iter_episodes(store.experiment_id(stored)))
        runs = run_evaluation(store, EvalCommandConfig(
            doctor=doctor, experiment=f"{stamp}-{name}", cases=None, case_ids=eval_ids,
            split=None, modes=[mode], seeds=seeds, patient="fact-select",
            max_questions=args.budget, temperature=0.0, max_new_tokens=48,
            concurrency=args.concurrency, sig_scorer=None, demonstration=True,
            abstain=abstain))
        console.print(f"[{time.perf_counter() - started:.0f} s] evaluated {name}")
        run_names[name] = next(iter(runs))
        return next(iter(runs.values()))

    results = {"reactive": evaluate(args.doctor, "reactive", "reactive"),
               "base proactive": evaluate(args.doctor, "base")}
    if args.abstain:
        results["abstaining (MediQ)"] = evaluate(args.doctor, "abstain", abstain="numerical")
    if args.reference_doctors:
        results[f"bank:random ({args.random_seeds} seeds)"] = evaluate(
            "bank:random", "bank-random", seeds=args.random_seeds)
        results["bank:fixed"] = evaluate(f"bank:fixed:{bank_file}", "bank-fixed")
        results["bank:similar"] = evaluate("bank:similar", "bank-similar")
        results["oracle"] = evaluate("oracle", "oracle")

    models = work / "models"
    reports = run_search(store, MCTSCommandConfig(
        experiment=f"{stamp}-search", case_ids=train_ids, doctor=args.doctor,
        iterations=args.iterations, correct_bonus=args.correct_bonus,
        max_questions=args.budget, concurrency=args.concurrency, demonstration=True,
        proposer=args.proposer, proposer_ratio=args.proposer_ratio,
        checkpoints=str(work / "mcts.sqlite")))
    gained = sum(r.best_reward > 0 for r in reports)
    console.print(f"[{time.perf_counter() - started:.0f} s] search: {gained} of "
                  f"{len(reports)} cases have a path that earned reward")
    # SFT and each GRPO run in a process of their own: a process that trains and then
    # holds a trainer keeps its memory (a GRPO child beside it was OOM-killed at 24 GB)
    db = f"sqlite:///{work / 'store.db'}"
    in_child(run_sft, db, SFTCommandConfig(
        source=f"{stamp}-search", output=models / "sft", model=args.sft_model or args.doctor,
        epochs=args.sft_epochs, learning_rate=args.sft_learning_rate,
        paths_per_case=args.paths_per_case, informative_only=args.informative_only,
        dataset=f"{stamp}-search-sft-p{args.paths_per_case}"
        + ("-informative" if args.informative_only else "")))
    console.print(f"[{time.perf_counter() - started:.0f} s] SFT done")
    if args.sft_eval:
        results["SFT"] = evaluate(f"local:{models / 'sft'}", "sft")
    designs = [d.strip() for d in args.designs.split(",") if d.strip()]
    for design in designs:
        reward, _, extra = design.partition("+")
        folder = "grpo" if design == "promed" else f"grpo-{design.replace('+', '-')}"
        # each run in its own process: a process that trains several models in turn
        # keeps the memory of the earlier ones (measured: 24 GB after five)
        settings = GRPOCommandConfig(
            model=f"local:{models / 'sft'}", output=models / folder,
            experiment=f"{stamp}-{folder}", case_ids=",".join(train_ids),
            num_generations=args.group_size, cases_per_step=args.cases_per_step,
            max_steps=args.grpo_steps, learning_rate=args.grpo_learning_rate,
            max_questions=args.budget, demonstration=True, reward=reward,
            length_penalty=args.length_penalty if extra == "length" else 0.0,
            save_steps=args.grpo_steps,
            dynamic_budget=f"2-{args.budget + 1}" if reward == "doctoragent" else None)
        if not (models / folder / "config.json").exists():
            in_child(run_grpo, db, settings)
        console.print(f"[{time.perf_counter() - started:.0f} s] GRPO ({design}) done")
        label = "SFT+GRPO" if design == "promed" else f"SFT+GRPO ({design})"
        results[label] = evaluate(f"local:{models / folder}", folder)
        run_names[label] = run_names.pop(folder)
    for label, name in (("base proactive", "base"), ("bank:fixed", "bank-fixed"),
                        ("bank:similar", "bank-similar"), ("SFT", "sft")):
        if name in run_names:
            run_names[label] = run_names.pop(name)

    console.print(results_table(results, f"asking effect: {len(evaluated)} unseen cases, "
                                         f"budget {args.budget}"), width=240)
    trained = results["SFT+GRPO"]
    console.print(paired_table(
        "SFT+GRPO minus each (paired by case, 95% CI)", "base",
        [(name, results[name], trained) for name in results
         if name not in ("reactive", "oracle", "SFT+GRPO")],
        ("sig", "fact_recall", "answerable", "new_facts", "correct")), width=240)
    others = [n for n in results if n.startswith("SFT+GRPO (")]
    if others:
        console.print(paired_table(
            "each reward design minus ProMed's (SFT+GRPO), paired by case, 95% CI",
            "design", [(name, trained, results[name]) for name in others],
            ("sig", "answerable", "new_facts", "questions", "correct")), width=240)
    console.print(choice_table(store, run_names, evaluated), width=240)
    print_costs(console, started, work)
    assert set(SHOWN) >= set(COLUMNS)
    gain = paired_difference(results["base proactive"], trained)["sig"]
    print(f"sig_gain={gain.mean:.4f} ci_low={gain.low:.4f} ci_high={gain.high:.4f}")
    if "bank:fixed" in results:
        fixed = paired_difference(results["bank:fixed"], trained)["sig"]
        print(f"vs_fixed={fixed.mean:.4f} ci_low={fixed.low:.4f} ci_high={fixed.high:.4f}")
    return 0


def results_table(results: dict[str, Any], title: str) -> Table:
    """One row per doctor: the figures of :data:`COLUMNS`, mean [95% CI] over cases."""
    table = Table(title=f"{title}, fact-select patient, greedy; mean [95% CI]; SIG with "
                        "uniform weights")
    table.add_column("doctor")
    for metric in COLUMNS:
        table.add_column(LABELS[metric], justify="right")
    for name, figures in results.items():
        summary = summarize(figures)
        table.add_row(name, *(str(summary[m]) for m in COLUMNS))
    return table


def paired_table(title: str, first: str, rows: list[tuple[str, Any, Any]],
                 metrics: tuple[str, ...]) -> Table:
    """One row per ``(label, base, other)``: ``other`` minus ``base`` in each metric,
    paired by case, mean [95% CI]."""
    table = Table(title=title)
    table.add_column(first)
    for metric in metrics:
        table.add_column(LABELS[metric], justify="right")
    for label, base, other in rows:
        d = paired_difference(base, other)
        table.add_row(label, *(escape(d[m].text("+.3f")) for m in metrics))
    return table


def print_costs(console: Console, started: float, work: Path) -> None:
    """The run's time, its store, and the peak memory of this process and of its
    largest training child."""
    console.print(f"total {time.perf_counter() - started:.0f} s; store {work / 'store.db'}")
    console.print(f"peak resident memory: this process {peak_gb(resource.RUSAGE_SELF):.1f} GB, "
                  f"the largest training child {peak_gb(resource.RUSAGE_CHILDREN):.1f} GB")


def choice_table(store: TraceStore, run_names: dict[str, str], evaluated: list) -> Table:
    """Distinct first questions and the choice ratio per doctor, and SFT+GRPO's choice
    ratio minus bank:fixed's, paired by case."""
    cases = {c.id: c for c in evaluated}
    bank = bank_questions()
    table = Table(title="how case-conditioned the questions are (choice ratio: facts a "
                        "question acquired / most any unasked bank question would have)")
    for column in ("doctor", "distinct first questions", "most common first (cases)",
                   "choice ratio [95% CI]"):
        table.add_column(column)
    choices = {}
    for label, name in run_names.items():
        episodes = list(store.iter_episodes(store.experiment_id(name)))
        firsts = first_questions(episodes)
        choices[label] = {c: {"choice": v} for c, v in
                          choice_by_case(episodes, cases, bank).items()}
        top = next(iter(firsts.items()), ("-", 0))
        table.add_row(label, str(len(firsts)), f"{top[0]} ({top[1]})",
                      str(mean_estimate(choices[label], "choice")) if choices[label] else "-")
    if set(choices.get("SFT+GRPO", {})) & set(choices.get("bank:fixed", {})):
        d = paired_metric(choices["bank:fixed"], choices["SFT+GRPO"], "choice")
        table.caption = (f"SFT+GRPO minus bank:fixed, choice ratio paired by case: "
                         f"{escape(d.text('+.3f'))}")
    return table


if __name__ == "__main__":
    sys.exit(main())

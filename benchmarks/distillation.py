"""Distilling a model-free teacher against searching: which trains the better asker?

case -> **consult (a teacher) -> filtered traces -> SFT** -> evaluation, beside
case -> MCTS (bank proposer) -> SFT -> evaluation

    python benchmarks/distillation.py [--train-cases 100] [--teachers bank:fixed,oracle]

1. Imports the 1,000 iMedQA dev cases into a fresh SQLite store under ``--workdir``:
   training on the first ``--train-cases``, evaluating on the last ``--eval-count``
   (imedqa-800 ... imedqa-999 by default), never trained on.
2. Each teacher (``bank:fixed``, ranked by yield on the training cases; ``oracle``, which
   reads the hidden facts) consults every training case (``run_consult``, as ``promed
   consult`` does); its consultations that acquired at least ``--min-facts`` facts are
   the SFT data of the embedded model (``run_sft`` with ``--from`` the consult run): its
   questions (the repeated ones left out) and a trained answer turn, rendered in the
   student's tokens (the teachers record none).
3. The search-trained doctor: MCTS with the bank proposer on the same training cases
   (``promed mcts``'s defaults, as the asking experiment), SFT on each case's best path,
   with the same SFT settings.
4. Evaluates every student and the teachers on the unseen cases with the same patient,
   budget and greedy decoding; prints one table (mean [95% CI]), each student's SIG,
   facts and answerable share minus the search-trained student's, paired by case, how
   case-conditioned each doctor's questions are, and the last lines
   ``<teacher>_vs_search=<distilled minus search-trained, SIG per episode> ci_low=...
   ci_high=...``, one per teacher.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from asking_effect import DEV, choice_table, in_child, paired_table, print_costs, results_table
from rich.console import Console

from promed_agents.agents.question_bank import bank_questions, rank_by_yield
from promed_agents.evaluation import paired_difference
from promed_agents.loader import load_cases
from promed_agents.runs import (
    ConsultCommandConfig,
    EvalCommandConfig,
    MCTSCommandConfig,
    SFTCommandConfig,
    run_consult,
    run_evaluation,
    run_search,
    run_sft,
)
from promed_agents.storage import TraceStore


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=Path, default=DEV)
    p.add_argument("--train-cases", type=int, default=100)
    p.add_argument("--eval-count", type=int, default=200)
    p.add_argument("--teachers", default="bank:fixed,oracle",
                   help="Model-free teachers, comma-separated (bank:fixed is ranked on the "
                        "training cases).")
    p.add_argument("--min-facts", type=int, default=1,
                   help="SFT on a teacher's consultations that acquired at least N facts.")
    p.add_argument("--doctor", default="local:smollm2", help="The student.")
    p.add_argument("--budget", type=int, default=5)
    p.add_argument("--sft-epochs", type=float, default=1.0)
    p.add_argument("--sft-learning-rate", type=float, default=1e-4)
    p.add_argument("--search", action=argparse.BooleanOptionalAction, default=True,
                   help="Train and evaluate the search-trained student too.")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--workdir", type=Path, default=Path("distillation-runs"))
    return p.parse_args()


def slug(label: str) -> str:
    """``label`` as a run or folder name: "distilled bank:fixed" -> "distilled-bank-fixed"."""
    return label.replace(":", "-").replace(" ", "-")


def main() -> int:
    args = arguments()
    console = Console(width=200)
    logging.basicConfig(format="%(message)s")
    logging.getLogger("promed_agents").setLevel(logging.INFO)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = args.workdir / stamp
    work.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{work / 'store.db'}"
    store = TraceStore(db)
    started = time.perf_counter()

    def said(what: str) -> None:
        console.print(f"[{time.perf_counter() - started:.0f} s] {what}")

    train = load_cases(args.cases, split="train", limit=args.train_cases)
    evaluated = load_cases(args.cases, split="eval")[-args.eval_count:]
    if {c.id for c in train} & {c.id for c in evaluated}:
        print("error: evaluation cases overlap the training cases; lower --train-cases or "
              "--eval-count", file=sys.stderr)
        return 1
    store.import_cases(train)
    store.import_cases(evaluated)
    train_ids, eval_ids = [c.id for c in train], [c.id for c in evaluated]
    said(f"training on {len(train)} cases ({train_ids[0]} ... {train_ids[-1]}), evaluating "
         f"on {len(evaluated)} unseen cases ({eval_ids[0]} ... {eval_ids[-1]})")
    bank_file = work / "bank_fixed.json"
    bank_file.write_text(json.dumps(rank_by_yield(bank_questions(), train), indent=1))
    spec = {"bank:fixed": f"bank:fixed:{bank_file}"}
    models = work / "models"
    results, run_names = {}, {}

    def evaluate(doctor: str, label: str) -> None:
        runs = run_evaluation(store, EvalCommandConfig(
            doctor=doctor, experiment=f"{stamp}-{slug(label)}", cases=None,
            case_ids=eval_ids, split=None, modes=["proactive"], seeds=1,
            patient="fact-select", max_questions=args.budget, temperature=0.0,
            max_new_tokens=48, concurrency=args.concurrency, sig_scorer=None,
            demonstration=True))
        run_names[label] = next(iter(runs))
        results[label] = next(iter(runs.values()))
        said(f"evaluated {label}")

    def train_student(source: str, label: str, **filters: object) -> None:
        folder = models / slug(label)
        in_child(run_sft, db, SFTCommandConfig(
            source=source, output=folder, model=args.doctor, epochs=args.sft_epochs,
            learning_rate=args.sft_learning_rate, **filters))
        said(f"SFT of {label} done")
        evaluate(f"local:{folder}", label)

    teachers = [t.strip() for t in args.teachers.split(",") if t.strip()]
    for teacher in teachers:
        evaluate(spec.get(teacher, teacher), teacher)
        taught = run_consult(store, ConsultCommandConfig(
            doctor=spec.get(teacher, teacher), case_ids=train_ids, max_questions=args.budget,
            demonstration=True, concurrency=args.concurrency,
            experiment=f"{stamp}-teach-{slug(teacher)}"))
        said(f"{teacher} consulted {len(taught.episodes)} training cases")
        train_student(taught.experiment, f"distilled {teacher}", min_facts=args.min_facts)
    if args.search:
        run_search(store, MCTSCommandConfig(
            experiment=f"{stamp}-search", case_ids=train_ids, doctor=args.doctor,
            max_questions=args.budget, concurrency=args.concurrency, demonstration=True,
            checkpoints=str(work / "mcts.sqlite")))
        said("search done")
        train_student(f"{stamp}-search", "search-trained")

    console.print(results_table(results, f"distillation: {len(evaluated)} unseen cases, "
                                         f"budget {args.budget}"), width=240)
    lines = []
    if "search-trained" in results:
        console.print(paired_table(
            "each student minus the search-trained student (paired by case, 95% CI)",
            "student", [(f"distilled {t}", results["search-trained"],
                         results[f"distilled {t}"]) for t in teachers],
            ("sig", "new_facts", "answerable", "repeated_share", "correct")), width=240)
        for teacher in teachers:
            sig = paired_difference(results["search-trained"],
                                    results[f"distilled {teacher}"])["sig"]
            lines.append(f"{teacher.replace('bank:', '')}_vs_search={sig.mean:.4f} "
                         f"ci_low={sig.low:.4f} ci_high={sig.high:.4f}")
    console.print(choice_table(store, run_names, evaluated), width=240)
    print_costs(console, started, work)
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

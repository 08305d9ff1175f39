"""AgentClinic's protocol on the consultation graph: judged accuracy and asking figures.

case (AgentClinic, open-ended) -> **consultation graph (doctor, patient, measurement)** ->
trace in SQL -> judge -> evaluation

    python benchmarks/agentclinic.py [--doctors local:smollm2,bank:fixed,oracle]
                                     [--judge rouge:0.5] [--count 107]

AgentClinic (Schmidgall et al., 2024; MIT) puts a doctor before a patient actor and a
measurement actor: the doctor sees the objective, the demographics and the chief
complaint, may talk or order tests for 20 turns, and ends with a diagnosis that a
moderator judges. Here, as closely as the graph allows:

- its 107 MedQA cases (``--cases``, AgentClinic's ``agentclinic_medqa.jsonl``), policy
  ``initial`` (the objective, demographics and chief complaint given);
- 20 doctor turns: up to 19 questions or test orders (``test: <name>``), the last a
  diagnosis (asked for when the budget is spent);
- the patient and measurement actors (``--patient``, ``--measurement``: ``fact-select``,
  the facts a turn names, verbatim, at most 2 or 4; or ``llm:MODEL_SPEC``);
- the judge (``--judge``: ``rouge:0.5`` by default; ``llm:MODEL_SPEC`` is AgentClinic's
  moderator prompt);
- greedy decoding; a model doctor is shown the open-ended worked example
  (``--demonstration``, on by default: the embedded model needs it for the turn format).

Each doctor is evaluated with ``run_evaluation`` (``promed eval``'s run) in a fresh
SQLite store under ``--workdir``. It prints one table (mean [95% CI] over cases) and, for
each doctor, the line ``judged_accuracy=<mean> ci_low=<low> ci_high=<high> doctor=<spec>
judge=<spec> cases=<n>``; the first doctor's is the last line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from promed_agents.evaluation import LABELS, summarize
from promed_agents.loader import load_cases
from promed_agents.partial_view import PartialInfoPolicy
from promed_agents.runs import EvalCommandConfig, run_evaluation
from promed_agents.storage import TraceStore

CASES = Path(__file__).resolve().parents[2] / "shared" / "data" / "agentclinic" / \
    "agentclinic_medqa.jsonl"
COLUMNS = ("correct", "diagnosis_rouge", "questions", "tests", "new_facts", "fact_recall",
           "sig", "answerable", "repeated_share", "valid_turns", "timeout")
TURNS = 20
"""AgentClinic's doctor turns; the last is the diagnosis."""


def arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--doctors", default="local:smollm2,bank:fixed,oracle",
                   help="Doctor specs, comma-separated; the first one's line is printed last.")
    p.add_argument("--cases", type=Path, default=CASES)
    p.add_argument("--count", type=int, default=None, help="The first N cases [all].")
    p.add_argument("--judge", default="rouge:0.5")
    p.add_argument("--patient", default="fact-select")
    p.add_argument("--measurement", default="fact-select")
    p.add_argument("--demonstration", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--workdir", type=Path, default=Path("agentclinic-runs"))
    return p.parse_args()


def accuracy_line(name: str, figures: dict, judge: str) -> str:
    estimate = summarize(figures)["correct"]
    return (f"judged_accuracy={estimate.mean:.4f} ci_low={estimate.low:.4f} "
            f"ci_high={estimate.high:.4f} doctor={name} judge={judge} cases={len(figures)}")


def main() -> int:
    args = arguments()
    logging.basicConfig(format="%(message)s")
    logging.getLogger("promed_agents").setLevel(logging.INFO)
    console = Console(width=200)
    cases = load_cases(args.cases)[: args.count]
    args.workdir.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{args.workdir / 'store.db'}"
    started = time.perf_counter()
    results, seconds = {}, {}
    with TraceStore(db) as store:
        store.import_cases(cases)
        for doctor in [d.strip() for d in args.doctors.split(",") if d.strip()]:
            began = time.perf_counter()
            runs = run_evaluation(store, EvalCommandConfig(
                experiment=f"agentclinic-{doctor.replace(':', '-')}-{int(time.time())}",
                doctor=doctor, case_ids=[c.id for c in cases], modes=["proactive"],
                patient=args.patient, measurement=args.measurement, judge=args.judge,
                max_questions=TURNS - 1, policy=PartialInfoPolicy.INITIAL,
                demonstration=args.demonstration, temperature=0.0,
                concurrency=args.concurrency))
            (figures,) = runs.values()
            results[doctor], seconds[doctor] = figures, time.perf_counter() - began
    table = Table(title=f"AgentClinic's protocol: {len(cases)} cases, {TURNS} turns, "
                        f"patient {args.patient}, measurement {args.measurement}, judge "
                        f"{args.judge}, greedy; mean [95% CI] over cases; SIG with uniform "
                        "weights")
    table.add_column("doctor")
    for metric in COLUMNS:
        table.add_column(LABELS[metric], justify="right")
    table.add_column("seconds", justify="right")
    for doctor, figures in results.items():
        summary = summarize(figures)
        table.add_row(doctor, *(escape(str(summary[m])) for m in COLUMNS),
                      f"{seconds[doctor]:.0f}")
    console.print(table)
    console.print(f"total {time.perf_counter() - started:.0f} s; store {args.workdir}")
    for doctor in list(results)[1:] + list(results)[:1]:
        print(accuracy_line(doctor, results[doctor], args.judge))
    return 0


if __name__ == "__main__":
    sys.exit(main())

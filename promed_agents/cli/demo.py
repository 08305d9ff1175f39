"""``promed demo``: the whole data path, small, on the embedded model, then a report.

**case** -> **consultation graph** -> **trace in SQL** -> **Shapley/SIG** ->
**MCTS-SFT / GRPO** -> **evaluation** -> report

The command imports the bundled sample into the demo's store, shows a case, runs
:func:`promed_agents.runs.demo_run.run_demo` (every stage, each through the run function
its own command runs), writes the HTML report and prints the held-out figures with the
trained doctor's paired differences.
"""


from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from promed_agents.cli.cases import import_file, show_case
from promed_agents.cli.config_options import config_command
from promed_agents.cli.evaluate import results_table
from promed_agents.cli.options import (
    DEFAULT_DOCTOR,
    DEMO_DB,
    DbOption,
    console,
    err_console,
    open_store,
    reports_errors,
    shown,
)
from promed_agents.cli.progress_bar import ConsoleReporter
from promed_agents.evaluation import paired_difference, relative_gain
from promed_agents.loader import SAMPLE_SPLIT, CaseFormat, bundled_sample_path
from promed_agents.partial_view import PartialInfoPolicy
from promed_agents.redaction import without_password
from promed_agents.runs.demo_run import DemoConfig, run_demo

__all__ = ["CHANCE_NOTE", "DemoConfig", "demo"]


# -- the CLI entry -----------------------------------------------------------------------

CHANCE_NOTE = (
    "Accuracy is near chance: SmolLM2-135M barely uses case information (option-likelihood "
    "accuracy 0.300 [0.180, 0.420] with all facts, 0.240 [0.120, 0.360] with none, "
    "difference +0.060 [-0.020, +0.140], on the 50 bundled cases, measured by "
    "`python benchmarks/option_likelihood.py`; BENCHMARKS.md), so the demo shows asking "
    "(answerable share, facts acquired, SIG); accuracy gains need a stronger doctor and "
    "scorer (docs/scaling_out.md).")

@reports_errors
@config_command(DemoConfig)
def demo(
    plan: DemoConfig,
    report_file: Annotated[Path, typer.Option(
        "--report", help="Where the HTML report goes.")] = Path("promed-demo-report.html"),
    db: DbOption = None,
) -> None:
    """The whole pipeline, small, on the embedded model: import the bundled sample,
    Shapley values, proactive and reactive baselines, MCTS then SFT, SIG-GRPO, evaluation
    of the trained doctor, and an HTML report.

    Uses its own database, promed-demo.db, unless --db or PROMED_DB says otherwise."""
    db = db or DEMO_DB
    sample = bundled_sample_path()
    bundled = sum(1 for line in sample.read_text(encoding="utf-8").splitlines() if line.strip())
    doctor, train_cases, cases = plan.doctor, plan.train_cases, plan.eval_cases
    if train_cases + cases > bundled:
        raise typer.BadParameter(
            f"{train_cases} training and {cases} held-out cases need {train_cases + cases} "
            f"cases; the bundled sample has {bundled}: lower --train-cases or --cases",
            param_hint="--cases")
    if doctor != "none":  # refused before the demo's store is made
        from promed_agents.agents.reference_doctors import resolve_doctor
        from promed_agents.atomic_file import check_output_path

        resolve_doctor(doctor)
        check_output_path(report_file)
    added, unchanged = import_file(sample, CaseFormat.AUTO, SAMPLE_SPLIT, None, db)
    console.print(f"bundled sample: {added} case(s) added, {unchanged} already stored "
                  "(iMedQA from MediQ, CC BY 4.0)")
    with open_store(db) as store:
        groups = store.case_groups()
        first = store.list_cases(source="imedqa", split=SAMPLE_SPLIT, limit=1)
    table = Table(title=f"cases in {shown(str(without_password(db)))}")
    for column in ("source", "split", "language", "cases", "facts", "facts/case"):
        table.add_column(column)
    for g in groups:
        table.add_row(shown(g.source), shown(g.split or "-"), shown(g.language), str(g.cases),
                      str(g.facts),
                      f"{g.facts / g.cases:.1f}" if g.cases else "-")
    console.print(table)
    if first:
        show_case(first[0], PartialInfoPolicy.HALF_FACTS)
    if doctor == "none":
        return
    from promed_agents.atomic_file import atomic_writer
    from promed_agents.report import build_report
    from promed_agents.storage import StoredWeights

    started = time.perf_counter()
    with open_store(db) as store:
        result = run_demo(store, plan, ConsoleReporter(console, err_console))
        with atomic_writer(report_file) as out:
            out.write(build_report(store, [*result.runs, *result.training_runs],
                                   weights_for=lambda spec: StoredWeights(store, spec)))
    runs, prefix = result.runs, f"{result.name}-"
    table = results_table({n.removeprefix(prefix): f for n, f in runs.items()}, shown(
        f"{result.name}: held-out cases, 95% bootstrap CI "
        f"({time.perf_counter() - started:.0f} s)"), runs.weighting())
    if doctor == DEFAULT_DOCTOR:
        table.caption = CHANCE_NOTE
    console.print(table)
    gain = relative_gain(runs[f"{prefix}base-reactive"], runs[f"{prefix}base-proactive"])
    console.print("relative accuracy gain of proactive over reactive (base): " + (
        "undefined (reactive accuracy 0)" if gain is None else escape(gain.text("+.1%"))))
    trained = runs.get(f"{prefix}trained-proactive")
    for other in ("base-proactive", "bank-random-proactive"):
        if trained is not None and f"{prefix}{other}" in runs:
            d = paired_difference(runs[f"{prefix}{other}"], trained)["sig"]
            console.print(f"SIG / episode, trained minus {other} (paired by case): "
                          f"{escape(d.text('+.3f'))}")
    console.print(f"report: {shown(str(report_file.resolve()))}")

"""What a run reads from the store before it starts: its cases and its SIG evaluator.

case -> consultation graph -> **trace in SQL** -> Shapley/SIG -> MCTS-SFT / GRPO ->
evaluation (the store, read at the start of every stage's run)

:func:`select_cases` picks the cases a run names (by id, the first N, a split; an empty
store first gets the bundled sample). :func:`evaluator_for` builds the SIG evaluator from
the stored Shapley values of a scorer; :func:`check_sig_scorer` refuses a scorer with none
before anything is written. :func:`refuse_store_file` keeps LangGraph's SQLite
checkpoints out of the store's own file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from promed_agents.agents.judge import DEFAULT_JUDGE, resolve_judge
from promed_agents.errors import ConsultationError
from promed_agents.graphs.checkpointer import POSTGRES_PREFIXES
from promed_agents.loader import SAMPLE_SPLIT, bundled_sample
from promed_agents.redaction import without_password

if TYPE_CHECKING:
    from promed_agents.agents.evaluator import Evaluator
    from promed_agents.case import Case
    from promed_agents.runs.run_reporter import RunReporter
    from promed_agents.storage import TraceStore

__all__ = ["check_sig_scorer", "evaluator_for", "refuse_store_file", "select_cases"]


def select_cases(store: TraceStore, reporter: RunReporter, count: int | None = None,
                 case_ids: Sequence[str] = (), split: str | None = None) -> list[Case]:
    """The cases a run names: by id, else the first ``count`` stored (of ``split``).
    An empty store first gets the bundled sample."""
    if case_ids and (count is not None or split is not None):
        given = "--cases" if count is not None else "--split"
        raise ConsultationError(f"--case-ids and {given} both choose cases; give one of "
                                "them (--case-ids picks cases by id, --cases the first N "
                                "stored, --split those of one split)")
    if case_ids:
        return [store.get_case(case_id) for case_id in case_ids]
    if store.count_cases() == 0:
        sample = bundled_sample()
        if count is not None and count > len(sample):  # refused before the import
            raise ConsultationError(f"--cases {count}: the store is empty and the bundled "
                                    f"sample holds {len(sample)} cases; give --cases "
                                    f"{len(sample)} or fewer, or import more first "
                                    "(`promed cases import FILE`)")
        report = store.import_cases(sample)
        reporter.note(f"the store was empty: imported the bundled sample ({report.added} "
                      f"iMedQA {SAMPLE_SPLIT} cases, CC BY 4.0)")
    cases = store.list_cases(split=split, limit=count)
    if not cases:
        raise ConsultationError(f"no stored cases match (split {split!r}); see "
                                "`promed cases list`")
    if count is not None and len(cases) < count:
        of = f" of split {split!r}" if split else ""
        raise ConsultationError(f"--cases {count}: the store holds {len(cases)} case(s){of}; "
                                f"give --cases {len(cases)} or fewer, or import more "
                                "(`promed cases import FILE`)")
    return cases


def refuse_store_file(store: TraceStore, where: str | None) -> None:
    """LangGraph's SQLite checkpoints may not share the SQLite store's file: the store
    would wait for the saver's write lock inside the event loop that must release it."""
    url = store.engine.url
    if not where or url.get_backend_name() != "sqlite" or not url.database or \
            where.startswith(POSTGRES_PREFIXES):
        return
    if Path(where).expanduser().resolve() == Path(url.database).expanduser().resolve():
        raise ConsultationError(f"--checkpoints {where} is the store's own SQLite file; "
                                "give LangGraph's checkpoints a file of their own (or keep "
                                "both in PostgreSQL)")


def check_sig_scorer(store: TraceStore, scorer: str | None) -> None:
    """Refuse a ``--sig-scorer`` with no Shapley values stored at all (runs call this
    before they write anything)."""
    if scorer is None:
        return
    stored = store.shapley_scorers()
    if without_password(scorer) not in stored:
        raise ConsultationError(
            f"--sig-scorer {scorer}: no Shapley values are stored for this scorer "
            f"(stored: {', '.join(stored) if stored else 'none'}); compute them with "
            f"`promed shapley --scorer {scorer}`, or leave out --sig-scorer")


def evaluator_for(store: TraceStore, scorer: str | None, default: str, cases: Sequence[Case],
                  reporter: RunReporter, require_shapley: bool = False,
                  judge: str = DEFAULT_JUDGE) -> Evaluator:
    """The SIG evaluator from the stored Shapley values of ``scorer`` (``--sig-scorer``),
    else of ``default`` (the doctor's model)
    (:func:`promed_agents.storage.sig_evaluator`), with a note saying how many cases
    have them, judging open-ended cases' diagnoses with ``judge`` (``--judge``, a note
    says which when there are such cases). A ``--sig-scorer`` with no values stored at
    all is an error."""
    from promed_agents.storage import sig_evaluator

    check_sig_scorer(store, scorer)
    made = sig_evaluator(store, scorer or default, cases, require_shapley=require_shapley,
                         judge=resolve_judge(judge))
    open_ended = sum(c.open_ended for c in cases)
    if open_ended:
        reporter.note(f"{open_ended} of {len(cases)} cases are open-ended: their diagnoses "
                      f"are judged by {without_password(judge)}")
    reporter.note(f"SIG from stored Shapley values ({without_password(scorer or default)}) "
                  f"for {made.with_values} of {made.cases} cases; uniform weights for the "
                  "rest")
    return made.evaluator

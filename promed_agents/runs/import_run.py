"""An import run: consultations recorded elsewhere, in as a run of traces.

dialogues recorded elsewhere -> **import** -> trace in SQL -> Shapley/SIG -> SFT -> ...

:func:`run_import` reads a JSON Lines file of dialogues
(:mod:`promed_agents.storage.trace_import` documents the format), finds each dialogue's
case (stored, or inline), replays every dialogue through the consultation graph, and only
then writes: the inline cases, and the episodes as one run of kind ``import``. A bad
record is an error naming its line, and nothing is written. ``promed traces import``
runs it; ``promed train sft --from NAME --model local:...`` trains on the result.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from promed_agents.agents.judge import resolve_judge
from promed_agents.errors import NotFoundError, TraceError
from promed_agents.knob import knob
from promed_agents.runs.run_inputs import evaluator_for
from promed_agents.runs.run_knobs import judge_knob
from promed_agents.runs.run_lifecycle import recorded_run
from promed_agents.runs.run_reporter import RunReporter, reporter_or_default

if TYPE_CHECKING:
    from promed_agents.case import Case
    from promed_agents.storage import TraceStore
    from promed_agents.trace import EpisodeRecord

__all__ = ["ImportCommandConfig", "ImportResult", "run_import"]

KIND = "import"


@dataclass(frozen=True)
class ImportCommandConfig:
    """How dialogues are imported (``promed traces import``); each field is the option
    of the same name."""

    experiment: str | None = knob(
        None, help="Run name of the imported consultations [default: import-FILE].")
    source: str | None = knob(
        None, help="Where the dialogues were recorded, for those that do not say "
                   "[default: the file's name].")
    plain_turns: bool = knob(
        False, help="Doctor messages are bare questions: each is written 'question: "
                    "<text>', and the answer comes from final_answer.")
    sig_scorer: str | None = knob(
        None, help="Whose stored Shapley values weigh facts [default: uniform weights].")
    judge: str = judge_knob()


@dataclass(frozen=True)
class ImportResult:
    experiment: str
    experiment_id: int
    episodes: int
    cases_added: int
    sources: dict[str, int]
    """Episodes per source."""


def _cases(store: TraceStore, path: Path, dialogues: list
           ) -> tuple[dict[str, Case], list[Case]]:
    """Every dialogue's case (by id) and the inline cases the store lacks; a missing or
    conflicting case is an error naming its line."""
    cases: dict[str, Case] = {}
    new: dict[str, Case] = {}
    for number, dialogue in dialogues:
        where = f"{path}:line {number}"
        case_id = dialogue.case.id if dialogue.case else dialogue.case_id
        try:
            stored = store.get_case(case_id)
        except NotFoundError:
            stored = None
        if dialogue.case is not None:
            known = stored or new.get(case_id)
            if known is not None and known.content_hash() != dialogue.case.content_hash():
                raise TraceError(f"{where}: the inline case {case_id!r} differs from the "
                                 "case of that id already stored or given; give it "
                                 "another id")
            if stored is None:
                new[case_id] = dialogue.case
            cases[case_id] = dialogue.case
        elif stored is not None:
            cases[case_id] = stored
        elif case_id not in new:
            raise TraceError(f"{where}: case {case_id!r} is not in the store; import it "
                             "with promed cases import, or give it inline as 'case'")
    return cases, list(new.values())


def run_import(store: TraceStore, path: str | Path, settings: ImportCommandConfig,
               reporter: RunReporter | None = None) -> ImportResult:
    """Import the dialogues of ``path`` into ``store`` as one run (see the module
    docstring); returns the run, its episode count and what came from where."""
    from promed_agents.agents.evaluator import Evaluator
    from promed_agents.storage.trace_import import read_dialogues, replay_dialogue

    reporter = reporter_or_default(reporter)
    path = Path(path)
    name = settings.experiment or f"import-{path.stem}"
    dialogues = read_dialogues(path)
    if not dialogues:
        raise TraceError(f"{path} holds no dialogue to import")
    try:
        store.experiment(name)
    except NotFoundError:
        pass
    else:
        raise TraceError(f"an experiment named {name!r} already exists; choose another "
                         "name with --experiment")
    cases, new_cases = _cases(store, path, dialogues)
    if settings.sig_scorer:
        evaluator = evaluator_for(store, settings.sig_scorer, settings.sig_scorer,
                                  list(cases.values()), reporter, judge=settings.judge)
    else:
        evaluator = Evaluator(judge=resolve_judge(settings.judge))
        reporter.note("SIG with uniform fact weights (give --sig-scorer SPEC to weigh "
                      "facts by stored Shapley values)")
    fallback = settings.source or path.name

    async def replay_all() -> list[EpisodeRecord]:
        episodes = []
        for number, dialogue in dialogues:
            case = cases[dialogue.case.id if dialogue.case else dialogue.case_id]
            try:
                episodes.append(await replay_dialogue(
                    dialogue, case, evaluator, source=dialogue.source or fallback,
                    plain_turns=settings.plain_turns))
            except TraceError as exc:
                raise TraceError(f"{path}:line {number}: {exc}") from None
        return episodes

    episodes = asyncio.run(replay_all())
    experiment_id = store.create_experiment(
        name, KIND, config={"file": str(path), "source": settings.source,
                            "plain_turns": settings.plain_turns,
                            "sig_scorer": settings.sig_scorer, "judge": settings.judge},
        status="running")
    with recorded_run(store, experiment_id, name,
                      f"import it again with --experiment {name}-2"):
        added = store.import_cases(new_cases).added if new_cases else 0
        store.record_episodes([e.model_copy(update={"experiment_id": experiment_id})
                               for e in episodes])
    sources = dict(Counter(e.imported_from or fallback for e in episodes))
    reporter.note(f"imported {len(episodes)} consultation(s) into run {name} ("
                  + ", ".join(f"{s}: {n}" for s, n in sources.items())
                  + (f"; {added} new case(s)" if added else "") + ")")
    return ImportResult(name, experiment_id, len(episodes), added, sources)

"""The HTML report: results, comparison charts, training curves, the questions that
acquired the most, and a consultation viewer, in one file.

case -> consultation graph -> trace in SQL -> ... -> evaluation -> **report.html**

:func:`build_report` reads the store only. For each run (experiment): the evaluation
figures with 95% bootstrap intervals (:mod:`promed_agents.evaluation`) and how the run
ended (an incomplete run is marked, its failed consultations left out of the figures);
a bar chart of each metric per run with its interval; the distribution of SIG per
question; per run, the questions that acquired the most weight; for a training run with
logged steps, its curves (:mod:`promed_agents.report_charts`); and a consultation viewer
for a few episodes: each doctor question with its SIG as a bar, the facts the patient
disclosed highlighted as acquired (a fact the doctor knew at the start is marked known,
never acquired), and the case's facts listed with their weights (stored Shapley weights
of the run's SIG scorer, uniform where none). The file is self-contained (no scripts, no
external links); its font stack covers Chinese (CMB) text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape as _escape
from typing import TYPE_CHECKING

from promed_agents.case import Case
from promed_agents.display_text import without_controls
from promed_agents.evaluation import (
    LABELS,
    judging,
    per_case,
    recorded_status,
    shown_metrics,
    summarize,
)
from promed_agents.report_charts import comparison_chart, sig_distribution, training_curves
from promed_agents.trace import EpisodeRecord, Role, TurnKind

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

__all__ = ["build_report", "consultation", "training_curves"]

FONTS = ('system-ui, -apple-system, "Segoe UI", "Noto Sans", "Noto Sans CJK SC", '
         '"Source Han Sans SC", "Droid Sans Fallback", "WenQuanYi Zen Hei", "PingFang SC", '
         '"Microsoft YaHei", sans-serif')
"""Latin first, then fonts with Chinese glyphs (Debian's fonts-noto-cjk or
fonts-droid-fallback, macOS, Windows)."""
STYLE = "body{font-family:" + FONTS + """;margin:2em;max-width:75em;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em}
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}
.turn{margin:.3em 0}.doctor{color:#0b4f8a}.patient{color:#555}
img{max-width:100%}
.bar{display:inline-block;height:.8em;background:#2a9d8f;vertical-align:middle}
.fact.acquired{background:#ffe08a}.fact.known{color:#777}
.status-incomplete,.status-failed,.status-interrupted,.status-running{color:#b00020;
font-weight:bold}
.episode{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}
.warn{color:#b00020;font-weight:bold}
"""
TOP_QUESTIONS = 5
ASKING = (TurnKind.QUESTION, TurnKind.TEST)
"""Doctor turns that acquire facts: questions, and open-ended cases' test orders."""


def escape(text: object) -> str:
    """Stored text as HTML: markup escaped, control characters written out."""
    return _escape(without_controls(text))


def _results(runs: dict[str, dict[str, dict[str, float]]], ended: dict[str, str],
             judges: dict[str, str | None]) -> str:
    """The results table; with open-ended cases, their figures and each run's judge
    (runs judged differently are flagged: their accuracies are not comparable)."""
    shown = shown_metrics(*runs.values())
    judged = any(judges.values())
    header = "".join(f"<th>{escape(LABELS[m])}</th>" for m in shown) + \
        ("<th>judge</th>" if judged else "")
    rows = []
    for name, figures in runs.items():
        if figures:
            summary = summarize(figures)
            cells = "".join("<td class=n>{} <small>{}</small></td>".format(
                *map(escape, summary[m].text().partition(" ")[::2])) for m in shown)
        else:  # a run with no finished consultation still has its row, and its status
            cells = "<td class=n>-</td>" * len(shown)
        if judged:
            cells += f"<td>{escape(judges.get(name) or '-')}</td>"
        rows.append(f"<tr><td>{escape(name)}</td><td class=n>{len(figures)}</td>{cells}"
                    f"<td>{ended.get(name, '')}</td></tr>")
    distinct = sorted({j for j in judges.values() if j})
    warning = (f"<p class=warn>These runs' diagnoses were judged differently "
               f"({escape(', '.join(distinct))}): their accuracies are not comparable.</p>"
               if len(distinct) > 1 else "")
    return (f"<table id=results><tr><th>run</th><th>cases</th>{header}<th>status</th></tr>"
            + "".join(rows) + "</table>" + warning)


def _ended(store: TraceStore, name: str, episodes: Sequence[EpisodeRecord]) -> str:
    """How a run ended, as a table cell: its stored status, else what its episodes say.
    A run that did not finish says so (``running`` is also what a killed run shows)."""
    stored = store.experiment(name)
    status, reason = recorded_status(stored.status, stored.status_reason, episodes) \
        if stored.status or episodes else ("", None)
    if status == "running":
        status, reason = "running", "or stopped without recording it (killed)"
    if status in ("incomplete", "failed", "interrupted", "running"):
        return (f"<span class='status-{status}'>{status}</span> "
                f"<small>{escape(reason or '')}</small>")
    return escape(status)


def _top_questions(episodes: Sequence[EpisodeRecord]) -> str:
    asked = sorted(((t.sig or 0.0, e.case_id, t.text) for e in episodes for t in e.turns
                    if t.kind in ASKING), key=lambda q: -q[0])[:TOP_QUESTIONS]
    if not asked or asked[0][0] <= 0:
        return "<p>No question acquired any weight.</p>"
    return ("<table class=top><tr><th>SIG</th><th>case</th><th>question</th></tr>"
            + "".join(f"<tr><td class=n>{sig:.3f}</td><td>{escape(case)}</td>"
                      f"<td>{escape(text)}</td></tr>" for sig, case, text in asked)
            + "</table>")


WeightsFor = Callable[[str], Callable[[Case], list[float]]]
"""Given a SIG scorer spec, the function that weighs a case's facts (the CLI passes the
store's :class:`~promed_agents.storage.StoredWeights`)."""


def _uniform(_spec: str) -> Callable[[Case], list[float]]:
    """Each fact weighs 1/n, as SIG weighs a case without stored Shapley values."""
    return lambda case: [1.0 / len(case.facts)] * len(case.facts)


def _scorer(episode: EpisodeRecord) -> str:
    spec = episode.evaluator_spec or ""
    return spec[len("sig:"):] if spec.startswith("sig:") else episode.doctor_spec


def consultation(store: TraceStore, episode: EpisodeRecord, weights_for: WeightsFor = _uniform
                 ) -> str:
    """One episode: turns with SIG bars, the case's facts with weights and highlights."""
    case = store.get_case(episode.case_id)
    weights = weights_for(_scorer(episode))(case)
    known = set(episode.known_fact_ids)
    acquired = {i for t in episode.turns for i in t.disclosed_fact_ids} - known
    turns = []
    for turn in episode.turns:
        if turn.role is Role.DOCTOR:
            bar = ""
            if turn.kind in ASKING:
                sig = turn.sig or 0.0
                bar = (f' <span class=bar style="width:{max(2.0, 300 * sig):.0f}px" '
                       f'title="SIG {sig:.3f}"></span> <small>SIG {sig:.3f}</small>')
            turns.append(f"<div class='turn doctor'>doctor: {escape(turn.text)}{bar}</div>")
        else:
            turns.append(f"<div class='turn patient'>{turn.role.value}: "
                         f"{escape(turn.text)}</div>")
    facts = []
    for i, (fact, weight) in enumerate(zip(case.facts, weights, strict=False)):
        kind = "acquired" if i in acquired else "known" if i in known else ""
        facts.append(f"<li class='fact {kind}'>{escape(fact)} <small>(weight "
                     f"{weight:.3f}{', acquired' if kind == 'acquired' else ''}"
                     f"{', known at the start' if kind == 'known' else ''})</small></li>")
    verdict = "right" if episode.correct else "wrong"
    if episode.verdict is not None:
        verdict += f", judged by {episode.verdict.judge}"
    return (f"<div class=episode><b>{escape(case.id)}</b> episode {episode.id}: answer "
            f"{escape(', '.join(episode.final_answer or []) or '-')} ({escape(verdict)}; "
            f"correct {escape(case.diagnosis if case.open_ended else ', '.join(case.answer))})"
            f"<p>{escape(case.question)}</p>"
            + "".join(turns) + "<ul>" + "".join(facts) + "</ul></div>")


def build_report(store: TraceStore, experiments: Sequence[str] | None = None,
                 episodes_per_run: int = 3, weights_for: WeightsFor = _uniform) -> str:
    """The report of ``experiments``: one self-contained HTML page.

    Args:
        store: where the runs are.
        experiments: run names [default: every run in the store].
        episodes_per_run: consultations shown per run in the viewer.
        weights_for: a doctor or scorer spec -> its fact weights (uniform by default;
            :class:`~promed_agents.storage.StoredWeights` reads stored Shapley values).
    """
    names = list(experiments) if experiments else [e.name for e in store.list_experiments()]
    runs, ended, sigs, curves, viewers, tops = {}, {}, {}, [], [], []
    judges: dict[str, str | None] = {}
    for name in names:
        run_id = store.experiment_id(name)
        episodes = list(store.iter_episodes(run_id))
        runs[name] = per_case(episodes)
        ended[name] = _ended(store, name, episodes)
        judges[name] = judging(episodes)
        steps = store.training_metrics(run_id)
        if steps:
            curves.append(f"<h3>{escape(name)}</h3>" + training_curves(steps, name))
        if episodes:
            sigs[name] = [t.sig or 0.0 for e in episodes for t in e.turns
                          if t.kind in ASKING]
            tops.append(f"<h3>{escape(name)}</h3>" + _top_questions(episodes))
            viewers.append(f"<h3>{escape(name)}</h3>" + "".join(
                consultation(store, e, weights_for) for e in episodes[:episodes_per_run]))
    evaluated = {n: summarize(f) for n, f in runs.items() if f}
    charts = comparison_chart(evaluated, shown_metrics(*runs.values())) if evaluated else ""
    asked = {n: v for n, v in sigs.items() if v}
    return ("<!doctype html><html><head><meta charset=utf-8><title>ProMed Agents report"
            f"</title><style>{STYLE}</style></head><body><h1>ProMed Agents report</h1>"
            "<h2>Results</h2><p>Means over cases with 95% bootstrap intervals; failed "
            "consultations are left out and their run marked.</p>"
            + _results(runs, ended, judges) + charts
            + "<h2>SIG per question (and test order)</h2>"
            + (sig_distribution(asked) if asked else "<p>No questions were asked.</p>")
            + "<h2>Questions that acquired the most</h2>" + "".join(tops)
            + "<h2>Training curves</h2>"
            + ("".join(curves) or "<p>No training run in this report.</p>")
            + "<h2>Consultations</h2>" + "".join(viewers) + "</body></html>")

"""The HTML report: results, training curves and a consultation viewer in one file.

case -> consultation graph -> trace in SQL -> ... -> evaluation -> **report.html**

:func:`build_report` reads the store only. For each run (experiment) it shows the
evaluation figures with 95% bootstrap intervals (:mod:`promed_agents.evaluation`); for a
training run with logged steps, its curves (mean token reward and its parts: SIG,
accuracy, format; questions per episode, KL) drawn by matplotlib and inlined as PNG; and
a consultation viewer for a few episodes: each doctor question with its SIG as a bar, the
facts the patient disclosed highlighted, and the case's facts listed with their weights
(stored Shapley weights of the run's SIG scorer, uniform where none). The file is
self-contained (no scripts, no external links).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from html import escape
from typing import TYPE_CHECKING

from promed_agents.case import Case
from promed_agents.evaluation import LABELS, SHOWN, per_case, summarize
from promed_agents.trace import EpisodeRecord, Role, TurnKind

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

CURVES = (("token_reward/mean", "mean token reward"), ("episodes/sig", "SIG / episode"),
          ("episodes/accuracy", "accuracy"), ("episodes/format", "format score"),
          ("episodes/questions", "questions / episode"), ("kl", "KL to the start"))
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em}
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}
.turn{margin:.3em 0}.doctor{color:#0b4f8a}.patient{color:#555}
img{max-width:100%}
.bar{display:inline-block;height:.8em;background:#2a9d8f;vertical-align:middle}
.fact.acquired{background:#ffe08a}.fact.known{color:#777}
.episode{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;margin:1em 0}
"""


def _results(runs: dict[str, dict[str, dict[str, float]]]) -> str:
    header = "".join(f"<th>{escape(LABELS[m])}</th>" for m in SHOWN)
    rows = []
    for name, figures in runs.items():
        if not figures:
            continue
        summary = summarize(figures)
        cells = "".join(f"<td class=n>{summary[m].mean:.3f} "
                        f"<small>[{summary[m].low:.3f}, {summary[m].high:.3f}]</small></td>"
                        for m in SHOWN)
        rows.append(f"<tr><td>{escape(name)}</td><td class=n>{len(figures)}</td>{cells}</tr>")
    return (f"<table id=results><tr><th>run</th><th>cases</th>{header}</tr>"
            + "".join(rows) + "</table>")


def training_curves(steps: Sequence[tuple[int, dict[str, float]]], title: str) -> str:
    """The logged training steps of one run as an inline PNG ``<img>``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    shown = [(key, label) for key, label in CURVES if any(key in m for _, m in steps)]
    figure, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 2.6),
                                squeeze=False)
    for axis, (key, label) in zip(axes[0], shown, strict=True):
        points = [(step, m[key]) for step, m in steps if key in m]
        axis.plot([p[0] for p in points], [p[1] for p in points], marker=".")
        axis.set_title(label, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
        if key == "kl":
            axis.set_yscale("symlog", linthresh=0.1)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{escape(title)}" src="data:image/png;base64,{data}">'


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
    acquired = {i for t in episode.turns for i in t.disclosed_fact_ids}
    known = set(episode.known_fact_ids)
    turns = []
    for turn in episode.turns:
        if turn.role is Role.DOCTOR:
            bar = ""
            if turn.kind is TurnKind.QUESTION:
                sig = turn.sig or 0.0
                bar = (f' <span class=bar style="width:{max(2.0, 300 * sig):.0f}px" '
                       f'title="SIG {sig:.3f}"></span> <small>SIG {sig:.3f}</small>')
            turns.append(f"<div class='turn doctor'>doctor: {escape(turn.text)}{bar}</div>")
        else:
            turns.append(f"<div class='turn patient'>patient: {escape(turn.text)}</div>")
    facts = []
    for i, (fact, weight) in enumerate(zip(case.facts, weights, strict=False)):
        kind = "acquired" if i in acquired else "known" if i in known else ""
        facts.append(f"<li class='fact {kind}'>{escape(fact)} <small>(weight "
                     f"{weight:.3f}{', acquired' if kind == 'acquired' else ''}"
                     f"{', known at the start' if kind == 'known' else ''})</small></li>")
    verdict = "right" if episode.correct else "wrong"
    return (f"<div class=episode><b>{escape(case.id)}</b> episode {episode.id}: answer "
            f"{escape(', '.join(episode.final_answer or []) or '-')} ({verdict}; correct "
            f"{escape(', '.join(case.answer))})<p>{escape(case.question)}</p>"
            + "".join(turns) + "<ul>" + "".join(facts) + "</ul></div>")


def build_report(store: TraceStore, experiments: Sequence[str] | None = None,
                 episodes_per_run: int = 3, weights_for: WeightsFor = _uniform) -> str:
    """The report of ``experiments`` (names; every run in the store when None); facts are
    weighed by ``weights_for`` (uniform by default)."""
    names = list(experiments) if experiments else [e.name for e in store.list_experiments()]
    runs, curves, viewers = {}, [], []
    for name in names:
        run_id = store.experiment_id(name)
        episodes = list(store.iter_episodes(run_id))
        runs[name] = per_case(episodes)
        steps = store.training_metrics(run_id)
        if steps:
            curves.append(f"<h3>{escape(name)}</h3>" + training_curves(steps, name))
        if episodes:
            viewers.append(f"<h3>{escape(name)}</h3>" + "".join(
                consultation(store, e, weights_for) for e in episodes[:episodes_per_run]))
    return ("<!doctype html><html><head><meta charset=utf-8><title>ProMed Agents report"
            f"</title><style>{STYLE}</style></head><body><h1>ProMed Agents report</h1>"
            "<h2>Results</h2><p>Means over cases with 95% bootstrap intervals.</p>"
            + _results(runs) + "<h2>Training curves</h2>"
            + ("".join(curves) or "<p>No training run in this report.</p>")
            + "<h2>Consultations</h2>" + "".join(viewers) + "</body></html>")

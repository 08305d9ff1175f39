"""The charts of the HTML report, drawn by matplotlib and inlined as PNG.

case -> consultation graph -> trace in SQL -> ... -> evaluation -> **report.html** (charts)

- :func:`comparison_chart`: each metric as one panel, a bar per run with its 95% interval;
- :func:`sig_distribution`: the SIG of every question asked, per run;
- :func:`training_curves`: one readable panel per logged training metric (integer steps,
  axis labels, no offset notation).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from promed_agents.evaluation import LABELS, Estimate

CURVES = (("token_reward/mean", "mean token reward"), ("episodes/sig", "SIG / episode"),
          ("episodes/accuracy", "accuracy"), ("episodes/format", "format score"),
          ("episodes/questions", "questions / episode"), ("kl", "KL to the start"))
COLOURS = ("#2a6f97", "#e76f51", "#2a9d8f", "#e9c46a", "#8d5fd3", "#6c757d")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    pyplot.rcParams.update({"font.size": 11, "axes.formatter.useoffset": False,
                            "axes.spines.top": False, "axes.spines.right": False})
    return pyplot


def _inline(figure: Any, alt: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _grid(panels: int, columns: int = 3, size: tuple[float, float] = (4.2, 3.0)) -> Any:
    rows = (panels + columns - 1) // columns
    columns = min(columns, panels)
    figure, axes = _pyplot().subplots(rows, columns, figsize=(size[0] * columns,
                                                              size[1] * rows),
                                      squeeze=False)
    for axis in axes.flat[panels:]:
        axis.set_visible(False)
    return figure, list(axes.flat[:panels])


def comparison_chart(summaries: Mapping[str, Mapping[str, Estimate]],
                     metrics: Sequence[str]) -> str:
    """A panel per metric, a bar per run (its mean) with the 95% interval as an error
    bar."""
    names = list(summaries)
    figure, axes = _grid(len(metrics))
    for axis, metric in zip(axes, metrics, strict=True):
        means = [summaries[n][metric].mean for n in names]
        below = [summaries[n][metric].mean - summaries[n][metric].low for n in names]
        above = [summaries[n][metric].high - summaries[n][metric].mean for n in names]
        axis.bar(range(len(names)), means, yerr=[below, above], capsize=4,
                 color=[COLOURS[i % len(COLOURS)] for i in range(len(names))])
        axis.set_title(LABELS[metric])
        axis.set_xticks(range(len(names)), [str(i + 1) for i in range(len(names))])
        axis.set_xlabel("run")
    legend = "; ".join(f"{i + 1} = {n}" for i, n in enumerate(names))
    figure.suptitle(f"Runs with 95% intervals ({legend})", fontsize=11, wrap=True)
    figure.tight_layout()
    return _inline(figure, "each metric per run with its 95% interval")


def sig_distribution(sigs: Mapping[str, Sequence[float]]) -> str:
    """A histogram of the SIG of every question asked, one outline per run."""
    pyplot = _pyplot()
    figure, axis = pyplot.subplots(figsize=(8, 3.6))
    top = max((max(v) for v in sigs.values() if v), default=0.0) or 1.0
    bins = [top * i / 20 for i in range(21)]
    for i, (name, values) in enumerate(sigs.items()):
        axis.hist(values, bins=bins, histtype="step", linewidth=2,
                  color=COLOURS[i % len(COLOURS)], label=f"{name} ({len(values)} questions)")
    axis.set_xlabel("SIG of a question (weight of the facts it acquired)")
    axis.set_ylabel("questions")
    axis.legend(fontsize=9)
    figure.tight_layout()
    return _inline(figure, "distribution of SIG per question")


def training_curves(steps: Sequence[tuple[int, dict[str, float]]], title: str) -> str:
    """The logged training steps of one run: a panel per metric."""
    from matplotlib.ticker import MaxNLocator

    shown = [(key, label) for key, label in CURVES if any(key in m for _, m in steps)]
    figure, axes = _grid(len(shown))
    for axis, (key, label) in zip(axes, shown, strict=True):
        points = [(step, m[key]) for step, m in steps if key in m]
        axis.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                  color=COLOURS[0])
        axis.set_title(label)
        axis.set_xlabel("training step")
        axis.set_ylabel(label)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key == "kl":
            axis.set_yscale("symlog", linthresh=0.1)
    figure.suptitle(title, fontsize=12)
    figure.tight_layout()
    return _inline(figure, f"training curves of {title}")

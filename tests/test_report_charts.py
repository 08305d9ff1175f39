"""The report's charts: inline PNGs of a readable size, one panel per metric."""

from __future__ import annotations

import base64
import io
import re

from promed_agents.evaluation import Estimate
from promed_agents.report_charts import comparison_chart, sig_distribution, training_curves


def _png(img: str):
    from matplotlib.image import imread

    data = re.search(r'src="data:image/png;base64,([^"]+)"', img).group(1)
    return imread(io.BytesIO(base64.b64decode(data)), format="png")


def test_comparison_chart_has_a_panel_per_metric():
    summaries = {"base": {"correct": Estimate(0.3, 0.2, 0.4), "sig": Estimate(0.1, 0.0, 0.2)},
                 "trained": {"correct": Estimate(0.5, 0.4, 0.6),
                             "sig": Estimate(0.3, 0.2, 0.4)}}
    one = _png(comparison_chart(summaries, ["correct"]))
    two = _png(comparison_chart(summaries, ["correct", "sig"]))
    assert one.shape[1] >= 380 and two.shape[1] > 1.8 * one.shape[1]  # side by side


def test_training_curves_are_three_panels_to_a_row():
    steps = [(s, {"token_reward/mean": s / 10, "kl": 0.01 * s, "episodes/sig": 0.1,
                  "episodes/accuracy": 0.5}) for s in range(1, 6)]
    curves = _png(training_curves(steps, "run"))
    assert curves.shape[1] >= 1100 and curves.shape[0] >= 550  # two rows of about 400x300
    assert 'alt="training curves of run"' in training_curves(steps[:2], "run")


def test_sig_distribution_draws_each_run():
    image = _png(sig_distribution({"a": [0.0, 0.1, 0.2], "b": [0.3]}))
    assert image.shape[1] >= 700 and image.std() > 0.05

"""`promed report`: one self-contained HTML file, checked as HTML and in headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from promed_agents.storage import TraceStore

from helpers import run

ASKS = "fake:question: What did the culture of the joint fluid show?||answer: C"


@pytest.fixture
def report_file(sqlite_url, tmp_path):
    assert run("consult", "--cases", "2", "--doctor", ASKS, "--experiment", "asks",
               "--db", sqlite_url).exit_code == 0
    with TraceStore(sqlite_url) as store:
        run_id = store.create_experiment("training", "grpo")
        for step in (1, 2, 3):
            store.save_training_metrics(run_id, step, {
                "token_reward/mean": 1.0 + step, "episodes/sig": 0.1 * step,
                "episodes/accuracy": 0.5, "episodes/questions": 1.0, "kl": 0.01 * step})
    out = tmp_path / "report.html"
    result = run("report", "--out", out, "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    return out


def test_the_report_holds_results_curves_and_consultations(report_file):
    html = report_file.read_text()
    assert re.search(r"<tr><td>asks</td><td class=n>2</td>", html)
    assert html.count('src="data:image/png;base64,') == 1  # the training run's curves
    assert "SIG 0.111" in html  # imedqa-0: the culture question acquires 1 of 9 facts
    assert "class='fact acquired'>Culture of joint fluid shows a bacteria." in html
    assert "<script" not in html and "http" not in html  # self-contained


def test_the_report_renders_in_headless_chromium(report_file, tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed")
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={shot}", "--window-size=1200,1600",
                    f"file://{report_file}"], check=True, capture_output=True, timeout=120)
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (1600, 1200) and pixels.std() > 0.05
    teal = (abs(pixels[..., 0] - 42 / 255) < 0.05) & (abs(pixels[..., 1] - 157 / 255) < 0.05) \
        & (abs(pixels[..., 2] - 143 / 255) < 0.05)
    assert teal.sum() > 20  # a SIG bar is drawn
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--dump-dom", f"file://{report_file}"], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<tr>") == 2  # header and the run with consultations, as parsed


def test_an_empty_store_has_nothing_to_report(sqlite_url, tmp_path):
    result = run("report", "--out", tmp_path / "r.html", "--db", sqlite_url)
    assert result.exit_code == 1 and "has no runs yet" in result.stderr
    assert not (tmp_path / "r.html").exists()

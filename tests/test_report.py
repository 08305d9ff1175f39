"""`promed report`: one self-contained HTML file, checked as HTML and in headless Chromium."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess

import pytest

from promed_agents.storage import TraceStore
from promed_agents.trace import EpisodeStatus

from helpers import episode, run

ASKS = "fake:question: What did the culture of the joint fluid show?||answer: C"


@pytest.fixture
def report_file(sqlite_url, tmp_path):
    assert run("consult", "--cases", "2", "--doctor", ASKS, "--experiment", "asks",
               "--db", sqlite_url).exit_code == 0
    with TraceStore(sqlite_url) as store:
        half = store.create_experiment("half", "eval")
        store.record_episode(episode("imedqa-1", experiment_id=half))
        store.record_episode(episode("imedqa-2", experiment_id=half, turns=[],
                                     status=EpisodeStatus.FAILED, failure_reason="gone",
                                     correct=None, final_answer=None))
        store.finish_experiment(half, "incomplete", "1 of 2 consultations failed")
        run_id = store.create_experiment("training", "grpo")
        for step in (1, 2, 3):
            store.save_training_metrics(run_id, step, {
                "token_reward/mean": 1.0 + step, "episodes/sig": 0.1 * step,
                "episodes/accuracy": 0.5, "episodes/questions": 1.0, "kl": 0.01 * step})
    out = tmp_path / "report.html"
    result = run("report", "--out", out, "--db", sqlite_url)
    assert result.exit_code == 0, result.output
    return out


def _images(html):
    from matplotlib.image import imread

    return {alt: imread(io.BytesIO(base64.b64decode(data)), format="png")
            for alt, data in re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,'
                                        r'([^"]+)"', html)}


def test_the_report_holds_results_curves_and_consultations(report_file):
    html = report_file.read_text()
    assert re.search(r"<tr><td>asks</td><td class=n>2</td>", html)
    assert "SIG 0.111" in html  # imedqa-0: the culture question acquires 1 of 9 facts
    assert "class='fact acquired'>Culture of joint fluid shows a bacteria." in html
    assert "<script" not in html and "http" not in html  # self-contained
    # The incomplete run: figures over its one completed consultation, and marked.
    assert re.search(r"<tr><td>half</td><td class=n>1</td>.*status-incomplete'>incomplete"
                     r"</span> <small>1 of 2 consultations failed", html)
    # What researchers look at first, and the questions that acquired the most.
    images = _images(html)
    assert set(images) == {"each metric per run with its 95% interval",
                           "distribution of SIG per question", "training curves of training"}
    assert "<td class=n>0.111</td><td>imedqa-0</td><td>question: What did the culture" in html


def test_the_charts_are_legible(report_file):
    images = _images(report_file.read_text())
    curves = images["training curves of training"]
    # Five logged metrics: one panel each, three to a row, each about 400 x 300 pixels.
    assert curves.shape[1] >= 1100 and curves.shape[0] >= 550
    bars = images["each metric per run with its 95% interval"]
    assert bars.shape[1] >= 1100 and bars.shape[0] >= 800  # seven metrics, three rows


def test_a_fact_known_at_the_start_is_never_marked_acquired(sqlite_url, tmp_path):
    from promed_agents.loader import bundled_sample
    from promed_agents.report import consultation

    with TraceStore(sqlite_url) as store:
        store.import_cases(bundled_sample()[:1])
        turns = episode().turns  # the reply discloses fact 5, and here fact 2 again
        turns[1] = turns[1].model_copy(update={"disclosed_fact_ids": [2, 5]})
        run_id = store.create_experiment("e", "eval")
        stored = store.get_episode(store.record_episode(episode(
            experiment_id=run_id, turns=turns, known_fact_ids=[0, 1, 2, 3])))
        html = consultation(store, stored)
    facts = bundled_sample()[0].facts
    assert f"<li class='fact known'>{facts[2]} <small>(weight 0.111, known at the start)" \
        in html
    assert f"<li class='fact acquired'>{facts[5]} <small>(weight 0.111, acquired)" in html
    assert html.count("class='fact acquired'") == 1


def test_the_report_renders_in_headless_chromium(report_file, tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed")
    from matplotlib.image import imread

    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={shot}", "--window-size=1200,6000",
                    f"file://{report_file}"], check=True, capture_output=True, timeout=120)
    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (6000, 1200) and pixels.std() > 0.05
    teal = (abs(pixels[..., 0] - 42 / 255) < 0.05) & (abs(pixels[..., 1] - 157 / 255) < 0.05) \
        & (abs(pixels[..., 2] - 143 / 255) < 0.05)
    assert teal.sum() > 20  # a SIG bar is drawn
    if os.environ.get("PROMED_REPORT_SHOT"):  # keep the screenshot to look at
        shutil.copy(shot, os.environ["PROMED_REPORT_SHOT"])
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--dump-dom", f"file://{report_file}"], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<tr>") >= 3  # results: header and the runs with consultations


def _glyph(browser, text, tmp_path):
    from matplotlib.image import imread

    from promed_agents.report import STYLE

    page = tmp_path / f"glyph-{ord(text)}.html"
    page.write_text(f"<!doctype html><meta charset=utf-8><style>{STYLE}</style>"
                    f"<body style='margin:0'><span style='font-size:160px'>{text}</span>",
                    encoding="utf-8")
    shot = tmp_path / f"glyph-{ord(text)}.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={shot}", "--window-size=240,240", f"file://{page}"],
                   check=True, capture_output=True, timeout=120)
    return imread(shot)[..., :3]


def test_chinese_text_renders_as_glyphs_not_boxes(tmp_path):
    browser = shutil.which("chromium")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed")
    # Without a font for them, every CJK character is the same empty box ("tofu").
    middle, country = _glyph(browser, "中", tmp_path), _glyph(browser, "国", tmp_path)
    assert (middle < 0.5).sum() > 500 and (country < 0.5).sum() > 500  # ink on the page
    assert abs(middle - country).sum() > 100


def test_an_empty_store_has_nothing_to_report(sqlite_url, tmp_path):
    TraceStore(sqlite_url).close()
    result = run("report", "--out", tmp_path / "r.html", "--db", sqlite_url)
    assert result.exit_code == 1 and "has no runs yet" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_open_ended_runs_show_their_judge_tests_and_test_orders(sqlite_url, tmp_path):
    """Runs on AgentClinic cases: the report shows tests per episode, ROUGE-L F1 and each
    run's judge, flags runs judged differently, and its viewer shows the measurement
    agent's results and each test order's SIG."""
    from conftest import ROOT

    sample = ROOT / "tests" / "data" / "agentclinic_sample.jsonl"
    assert run("cases", "import", sample, "--db", sqlite_url).exit_code == 0
    doctor = "fake:test: Vital signs||diagnosis: Myasthenia gravis"
    for name, judge in (("by-rouge", "rouge:0.5"), ("by-exact", "exact")):
        assert run("consult", "--cases", "3", "--doctor", doctor, "--policy", "initial",
                   "--judge", judge, "--experiment", name, "--db", sqlite_url).exit_code == 0
    out = tmp_path / "report.html"
    assert run("report", "--out", out, "--db", sqlite_url).exit_code == 0
    html = out.read_text()
    assert "<th>tests ordered / episode</th>" in html and "diagnosis ROUGE-L F1" in html
    assert "<th>judge</th>" in html and "<td>rouge:0.5</td>" in html
    assert "judged differently (exact, rouge:0.5)" in html
    assert "measurement: Temperature" in html and "judged by exact" in html
    assert re.search(r"doctor: test: Vital signs <span class=bar", html)

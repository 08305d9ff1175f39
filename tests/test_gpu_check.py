from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


@pytest.mark.slow
def test_the_gpu_script_runs_dry_on_the_cpu_and_writes_its_figures(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    done = subprocess.run([str(SCRIPT), "--dry-run"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["dry_run"] is True and report["device"] == "cpu"
    shapley, rollouts = report["shapley"]["tiny"], report["rollouts"]["tiny"]
    assert shapley["reference_coalitions_per_s"] > 0 and shapley["ours_coalitions_per_s"] > 0
    assert shapley["ours_vs_reference"] > 0 and rollouts["batched_vs_reference"] > 0
    assert rollouts["conversations"] == 2 and rollouts["turns"] == 2
    # Part 3 ran both trainers on the same two consultations, one timed step each.
    grpo = report["grpo_step"]
    assert "skipped" not in grpo, grpo
    assert grpo["model"] == "tiny" and grpo["sequences"] == 2 and grpo["timed_steps"] == 1
    assert grpo["sig_grpo_step_seconds"] > 0 and grpo["stock_step_seconds"] > 0
    assert grpo["sig_vs_stock"] == pytest.approx(
        grpo["sig_grpo_step_seconds"] / grpo["stock_step_seconds"], rel=0.01)


@pytest.mark.slow
def test_the_gpu_script_refuses_to_run_for_real_without_a_gpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable,
           "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "no CUDA device" in done.stderr
    assert not (tmp_path / "gpu_check.json").exists()

"""A trainer's output folder: which checkpoint a rerun resumes from."""

from __future__ import annotations

import json

from promed_agents.trainers.training_output import TRAINER_STATE, checkpoint_step, last_checkpoint


def _checkpoint(folder, step, state=True):
    path = folder / f"checkpoint-{step}"
    path.mkdir()
    (path / "model.safetensors").write_bytes(b"\0" * 8)
    if state is True:
        (path / TRAINER_STATE).write_text(json.dumps({"global_step": step}))
    elif state:
        (path / TRAINER_STATE).write_text(state)
    return path


def test_the_newest_whole_checkpoint_is_resumed(tmp_path):
    assert last_checkpoint(tmp_path) is None
    _checkpoint(tmp_path, 2)
    ten = _checkpoint(tmp_path, 10)
    (tmp_path / "checkpoint-best").mkdir()  # not a step: ignored
    assert last_checkpoint(tmp_path) == str(ten)
    assert checkpoint_step(ten) == 10


def test_half_written_checkpoints_are_passed_over(tmp_path):
    two = _checkpoint(tmp_path, 2)
    _checkpoint(tmp_path, 4, state=None)  # killed before the trainer state was written
    _checkpoint(tmp_path, 6, state='{"global_st')  # killed while writing it
    assert checkpoint_step(tmp_path / "checkpoint-4") is None
    assert checkpoint_step(tmp_path / "checkpoint-6") is None
    assert last_checkpoint(tmp_path) == str(two)

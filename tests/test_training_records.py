"""Stored SFT datasets and checkpoints, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from promed_agents.errors import NotFoundError, TrainingError
from promed_agents.storage import TraceStore, TrainingSample


@pytest.fixture
def store(db_url):
    with TraceStore(db_url) as opened:
        yield opened


def test_a_dataset_round_trips_in_order(store):
    samples = [TrainingSample([1, 2, 3, 4], [0, 0, 1, 1], [{"role": "assistant",
                                                             "content": "answer: A"}],
                              weight=2.5, extra={"case_id": "c"}),
               TrainingSample([5, 6], [0, 1])]
    dataset_id = store.save_training_dataset("d", "sft", samples, config={"min_reward": 1})
    loaded_id, loaded = store.load_training_dataset("d")
    assert loaded_id == dataset_id and loaded == samples


def test_a_duplicate_name_writes_nothing(store):
    store.save_training_dataset("d", "sft", [TrainingSample([1], [1])])
    with pytest.raises(TrainingError, match="already exists"):
        store.save_training_dataset("d", "sft", [TrainingSample([2], [1])] * 3)
    assert store.load_training_dataset("d")[1] == [TrainingSample([1], [1])]
    with pytest.raises(NotFoundError, match="no training dataset"):
        store.load_training_dataset("missing")


def test_samples_need_one_mask_entry_per_token():
    with pytest.raises(ValueError, match="mask"):
        TrainingSample([1, 2], [1])


def test_checkpoints_are_registered_with_their_dataset(store):
    dataset_id = store.save_training_dataset("d", "sft", [TrainingSample([1], [1])])
    first = store.register_checkpoint("/models/a", "local:smollm2", 10, {"loss": 1.5},
                                      dataset_id=dataset_id)
    store.register_checkpoint("/models/b", "local:smollm2", 3)
    (only,) = store.list_checkpoints(dataset_id)
    assert (only.id, only.path, only.step, only.metrics) == (first, "/models/a", 10,
                                                             {"loss": 1.5})
    assert [c.path for c in store.list_checkpoints()] == ["/models/a", "/models/b"]
    # a rerun that registers the same folder again updates its row
    again = store.register_checkpoint("/models/b", "local:smollm2", 4, {"loss": 0.5})
    assert [(c.path, c.step) for c in store.list_checkpoints()] == [("/models/a", 10),
                                                                    ("/models/b", 4)]
    assert again == store.list_checkpoints()[1].id


def test_training_metrics_per_step_and_a_resumed_step_replaces_its_row(store):
    run = store.create_experiment("grpo-run", "grpo")
    other = store.create_experiment("other", "grpo")
    store.save_training_metrics(run, 2, {"loss": 0.5, "reward": 1.0})
    store.save_training_metrics(run, 1, {"loss": 0.7})
    store.save_training_metrics(other, 1, {"loss": 9.0})
    store.save_training_metrics(run, 2, {"loss": 0.4})  # logged again after a resume
    assert store.training_metrics(run) == [(1, {"loss": 0.7}), (2, {"loss": 0.4})]
    assert store.training_metrics(other) == [(1, {"loss": 9.0})]


def test_rewinding_a_run_drops_what_it_recorded_after_a_step(store):
    from promed_agents.loader import bundled_sample_path, load_cases
    from promed_agents.trace import EpisodeRecord

    store.import_cases(load_cases(bundled_sample_path(), limit=1))
    run, other = (store.create_experiment(n, "grpo") for n in ("run", "other"))

    def rollout(experiment, step):
        return EpisodeRecord(case_id="imedqa-0", experiment_id=experiment, graph="grpo",
                             doctor_spec="local:grpo-policy", training_step=step)

    store.record_episodes([rollout(run, s) for s in (0, 0, 1, 1, 2, None)]
                          + [rollout(other, 2)])
    for step in (1, 2, 3):
        store.save_training_metrics(run, step, {"loss": float(step)})
    store.save_training_metrics(other, 3, {"loss": 3.0})
    assert store.rewind_training_run(run, 1) == (3, 2)  # resumed from checkpoint-1
    assert sorted(e.training_step for e in store.iter_episodes(run)
                  if e.training_step is not None) == [0, 0]
    assert store.count_episodes(run) == 3  # the episode without a step stays
    assert [s for s, _ in store.training_metrics(run)] == [1]
    assert store.count_episodes(other) == 1 and len(store.training_metrics(other)) == 1

from __future__ import annotations

import json

import pytest

from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.storage import TraceStore
from promed_agents.storage.trace_export import export_traces
from promed_agents.trace import EpisodeStatus

from helpers import episode


@pytest.fixture
def store(sqlite_url):
    with TraceStore(sqlite_url) as opened:
        opened.import_cases(load_cases(bundled_sample_path(), limit=3))
        exp = opened.create_experiment("e", "rollout")
        opened.record_episode(episode(experiment_id=exp, metadata={"seed": 1}))
        opened.record_episode(episode(case_id="imedqa-1", metadata={"note": "x", "n": [1]}))
        opened.record_episode(episode(status=EpisodeStatus.FAILED, failure_reason="boom",
                                      turns=[], final_answer=None, correct=None))
        yield opened


def test_export_writes_one_line_per_episode(store, tmp_path):
    out = tmp_path / "exports" / "traces.jsonl"
    assert export_traces(store, out) == 3
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["case_id"] for line in lines] == ["imedqa-0", "imedqa-1", "imedqa-0"]
    assert lines[0]["messages"][0] == {"role": "assistant", "content": "question: Any fever?"}
    assert lines[0]["messages"][1]["role"] == "user"
    assert "token_ids" not in lines[0]["turns"][0]
    metadata = lines[1]["metadata"]  # nested JSON, not a string, as stored
    assert metadata["note"] == "x" and metadata["n"] == [1]
    assert metadata["information_gain"] == 0.25 and metadata["sampling"]["logprobs"] == "raw"
    assert lines[2]["status"] == "failed" and lines[2]["turns"] == []
    assert [p.name for p in out.parent.iterdir()] == ["traces.jsonl"]  # no temp file left


def test_export_filters_and_tokens(store, tmp_path):
    out = tmp_path / "one.jsonl"
    assert export_traces(store, out, experiment_id=store.experiment_id("e"),
                        with_tokens=True) == 1
    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["turns"][0]["token_ids"] == [11, 12, 13]
    assert export_traces(store, tmp_path / "failed.jsonl", status="failed") == 1


def test_export_loads_with_datasets(store, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "traces.jsonl"
    export_traces(store, out, with_tokens=True)
    dataset = datasets.load_dataset("json", data_files=str(out), split="train",
                                    cache_dir=str(tmp_path / "cache"))
    assert dataset.num_rows == 3
    assert dataset[0]["messages"][0]["content"] == "question: Any fever?"
    assert dataset[0]["turns"][0]["logprobs"] == [-0.5, -0.25, -1.0]
    assert dataset[2]["correct"] is None


def test_failed_export_leaves_no_file(store, tmp_path, monkeypatch):
    out = tmp_path / "exports" / "traces.jsonl"

    def broken(*args, **kwargs):
        yield from ()
        raise RuntimeError("database went away")

    monkeypatch.setattr(store, "iter_episodes", broken)
    with pytest.raises(RuntimeError):
        export_traces(store, out)
    assert list(out.parent.iterdir()) == []

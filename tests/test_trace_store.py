from __future__ import annotations

import pytest

from promed_agents.case import Case
from promed_agents.errors import CaseConflictError, NotFoundError, TraceError
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.storage import TraceStore
from promed_agents.trace import EpisodeStatus, TurnRecord

from helpers import episode


@pytest.fixture
def store(db_url):
    with TraceStore(db_url) as opened:
        opened.import_cases(load_cases(bundled_sample_path(), split="sample", limit=5))
        yield opened


def test_import_is_idempotent_and_round_trips(store):
    assert store.count_cases() == 5
    again = store.import_cases(load_cases(bundled_sample_path(), split="sample", limit=7))
    assert (again.added, again.unchanged) == (2, 5)
    original = load_cases(bundled_sample_path(), split="sample", limit=1)[0]
    assert store.get_case("imedqa-0") == original
    (group,) = store.case_groups()
    assert (group.source, group.split, group.cases) == ("imedqa", "sample", 7)
    assert group.facts == sum(len(c.facts) for c in load_cases(bundled_sample_path(), limit=7))


def test_conflicting_import_writes_nothing(store):
    fresh = Case(id="imedqa-900", source="imedqa", question="Q?", options={"A": "a"},
                 answer=["A"], facts=["f"], context=["c"])
    changed = store.get_case("imedqa-1").model_copy(update={"question": "Changed?"})
    with pytest.raises(CaseConflictError, match="imedqa-1 is already stored") as caught:
        store.import_cases([fresh, changed])
    assert caught.value.case_id == "imedqa-1"
    assert store.count_cases() == 5
    with pytest.raises(NotFoundError, match="imedqa-900"):
        store.get_case("imedqa-900")


def test_list_cases_orders_ids_numerically_and_filters(store):
    store.import_cases(load_cases(bundled_sample_path(), split="more")[10:12])
    ids = [c.id for c in store.list_cases()]
    assert ids == ["imedqa-0", "imedqa-1", "imedqa-2", "imedqa-3", "imedqa-4", "imedqa-10",
                   "imedqa-11"]
    assert [c.id for c in store.list_cases(split="more")] == ["imedqa-10", "imedqa-11"]
    assert [c.id for c in store.list_cases(limit=2, offset=1)] == ["imedqa-1", "imedqa-2"]
    assert store.count_cases(split="sample") == 5 and store.list_cases(source="cmb") == []


def test_record_episode_round_trips_every_field(store):
    experiment = store.create_experiment("rollouts-1", "rollout", {"temperature": 0.7})
    recorded = episode(experiment_id=experiment)
    episode_id = store.record_episode(recorded)
    loaded = store.get_episode(episode_id)
    assert loaded.model_dump(exclude={"id"}) == recorded.model_dump(exclude={"id"})
    assert loaded.turns[0].token_ids == [11, 12, 13]
    assert loaded.turns[0].logprobs == [-0.5, -0.25, -1.0]
    assert store.count_turns() == 3 and store.count_turns(experiment_id=experiment) == 3


def test_an_episode_with_a_thread_is_recorded_once_per_experiment(store):
    run = store.create_experiment("resumable", "consult")
    other = store.create_experiment("another", "consult")
    first = store.record_episode(episode(experiment_id=run, thread_id="t-0",
                                         training_step=3))
    # handed over again by a resumed run: kept, not duplicated
    assert store.record_episode(episode(experiment_id=run, thread_id="t-0",
                                        final_answer=["A"])) == first
    assert store.get_episode(first).final_answer == ["C"]
    assert store.get_episode(first).training_step == 3
    # the same thread name in another run, and episodes without threads, are new ones
    assert store.record_episode(episode(experiment_id=other, thread_id="t-0")) != first
    assert store.record_episode(episode(experiment_id=run)) != \
        store.record_episode(episode(experiment_id=run))
    # a failed episode is replaced by its resumed consultation, and only then
    failed = store.record_episode(episode(experiment_id=run, thread_id="t-1",
                                          status="failed", failure_reason="power cut",
                                          turns=[]))
    assert store.record_episode(episode(experiment_id=run, thread_id="t-1",
                                        status="failed", failure_reason="again",
                                        turns=[])) == failed
    resumed = store.record_episode(episode(experiment_id=run, thread_id="t-1"))
    assert store.get_episode(resumed).status is EpisodeStatus.COMPLETED
    assert [e.status for e in store.list_episodes(experiment_id=run)] == ["completed"] * 4
    assert store.count_turns(experiment_id=run) == 4 * 3


def test_episodes_recorded_together_are_written_all_or_none(store):
    run = store.create_experiment("step", "grpo")
    ids = store.record_episodes([episode(experiment_id=run, training_step=0)] * 2)
    assert len(set(ids)) == 2 and store.count_episodes(run) == 2
    with pytest.raises(NotFoundError, match="case 'nope'"):
        store.record_episodes([episode(experiment_id=run), episode(case_id="nope",
                                                                   experiment_id=run)])
    assert store.count_episodes(run) == 2 and store.count_turns(run) == 6


def test_bad_episodes_are_rejected_and_leave_nothing(store):
    with pytest.raises(NotFoundError, match="case 'nope' is not in the store"):
        store.record_episode(episode(case_id="nope"))
    bad_turn = TurnRecord(index=0, role="patient", text="x", disclosed_fact_ids=[99])
    with pytest.raises(TraceError, match=r"turns\[0\].disclosed_fact_ids has fact ids \[99\]"):
        store.record_episode(episode(turns=[bad_turn]))
    with pytest.raises(TraceError, match="known_fact_ids"):
        store.record_episode(episode(known_fact_ids=[-1]))
    with pytest.raises(NotFoundError, match="experiment 42"):
        store.record_episode(episode(experiment_id=42))
    assert store.count_episodes() == 0 and store.count_turns() == 0


def test_queries_filter_and_iterate_in_batches(store):
    first = store.create_experiment("a", "rollout")
    second = store.create_experiment("b", "eval")
    for i in range(5):
        store.record_episode(episode(case_id=f"imedqa-{i}", experiment_id=first))
    store.record_episode(episode(experiment_id=second, status=EpisodeStatus.FAILED,
                                 failure_reason="doctor backend timed out", turns=[]))
    assert store.count_episodes() == 6
    assert store.count_episodes(experiment_id=first) == 5
    failed = store.list_episodes(status="failed")
    assert [e.failure_reason for e in failed] == ["doctor backend timed out"]
    assert (failed[0].num_turns, failed[0].num_questions) == (0, 0)
    (summary, *_) = store.list_episodes(experiment_id=first)
    assert (summary.num_turns, summary.num_questions, summary.final_answer) == (3, 1, ["C"])
    assert summary.duration_s == 3.0 and summary.mode == "proactive"
    streamed = list(store.iter_episodes(experiment_id=first, batch_size=2))
    assert [e.case_id for e in streamed] == [f"imedqa-{i}" for i in range(5)]
    assert all(len(e.turns) == 3 for e in streamed)
    assert [e.id for e in store.list_episodes(case_id="imedqa-0")] == \
        [streamed[0].id, failed[0].id]
    assert store.experiment_id("b") == second


def test_experiment_names_are_unique(store):
    store.create_experiment("grpo", "grpo")
    with pytest.raises(TraceError, match="'grpo' already exists"):
        store.create_experiment("grpo", "grpo")
    with pytest.raises(NotFoundError, match="no experiment named 'x'"):
        store.experiment_id("x")


def _import_sample(url: str) -> tuple[int, int]:
    with TraceStore(url) as store:
        report = store.import_cases(load_cases(bundled_sample_path()))
    return report.added, report.unchanged


def test_concurrent_imports_of_the_same_file_store_each_case_once(db_url):
    import multiprocessing

    TraceStore(db_url).close()  # migrate first; concurrent migration has its own test
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        reports = pool.map(_import_sample, [db_url] * 4)
    assert sum(added for added, _ in reports) == 50
    assert all(added + unchanged == 50 for added, unchanged in reports)
    with TraceStore(db_url) as store:
        assert store.count_cases() == 50


def test_a_run_records_how_it_ended(store):
    run_id = store.create_experiment("e", "eval")
    assert store.experiment("e").status is None  # running, or not recorded
    store.finish_experiment(run_id, "incomplete", "1 of 2 consultations failed")
    ended = store.experiment("e")
    assert (ended.status, ended.status_reason) == ("incomplete",
                                                   "1 of 2 consultations failed")
    assert store.list_experiments()[0].status == "incomplete"
    with pytest.raises(TraceError, match="use one of running, complete, incomplete, "
                       "failed, interrupted"):
        store.finish_experiment(run_id, "done")
    with pytest.raises(NotFoundError):
        store.experiment("nope")


def test_a_rerun_replaces_a_run_that_did_not_finish_and_only_that(store):
    first = store.create_experiment("e", "consult", status="running")
    store.record_episode(episode(experiment_id=first))
    with pytest.raises(TraceError, match="already exists and is running"):
        store.create_experiment("e", "consult", replace_unfinished=True)
    for ended in ("failed", "interrupted"):
        store.finish_experiment(first, ended, "stopped")
        again = store.create_experiment("e", "consult", {"doctor": "x"},
                                        replace_unfinished=True, status="running")
        assert store.experiment("e").status == "running"
        assert store.count_episodes(experiment_id=first) == 0  # its episodes went with it
        first = again
    store.finish_experiment(first, "complete")
    with pytest.raises(TraceError, match="already exists and is complete"):
        store.create_experiment("e", "consult", replace_unfinished=True)
    store.finish_experiment(first, "failed")
    with pytest.raises(TraceError, match="already exists"):  # a run of another kind
        store.create_experiment("e", "eval", replace_unfinished=True)


def test_listings_page_count_by_case_and_take_any_integer(store):
    for case_id in ("imedqa-0", "imedqa-1", "imedqa-0"):
        store.record_episode(episode(case_id=case_id))
    assert [e.id for e in store.list_episodes(limit=1, offset=1)] == [2]
    assert store.count_episodes(case_id="imedqa-0") == 2
    assert len(store.list_episodes(limit=2**70)) == 3  # beyond 64 bits: every row
    assert store.list_cases(offset=2**70) == []
    with pytest.raises(NotFoundError, match="episode 1180591620717411303424 is not"):
        store.get_episode(2**70)
    with pytest.raises(NotFoundError, match="no episode status 'bogus'; use one of"):
        store.list_episodes(status="bogus")


def test_a_conflict_in_the_split_alone_says_which_split(store):
    again = store.get_case("imedqa-0").model_copy(update={"split": "dev"})
    with pytest.raises(CaseConflictError, match="stored with split 'sample', not 'dev'"):
        store.import_cases([again])


def test_driver_failures_are_store_errors(tmp_path):
    from promed_agents.errors import StoreError

    path = tmp_path / "notes.db"
    path.write_text("not a database\n" * 100)
    with pytest.raises(StoreError, match="file is not a database"):
        TraceStore(str(path))
    with pytest.raises(StoreError, match="does not exist"):
        TraceStore(str(tmp_path / "missing" / "x.db"), create=False)
    assert not (tmp_path / "missing").exists()


def test_the_outcome_fields_are_stored_as_the_metadata_json_keys_they_were(store):
    """No migration: this version writes the typed outcome as the same JSON keys, and a
    trace an older version wrote (the keys in metadata) loads into the fields."""
    from sqlalchemy import update

    from promed_agents.storage.models import EpisodeRow

    recorded = episode()
    episode_id = store.record_episode(recorded)
    with store.engine.connect() as connection:
        extra = connection.execute(EpisodeRow.__table__.select().where(
            EpisodeRow.id == episode_id)).one()._mapping["extra"]
    assert extra["information_gain"] == 0.25 and extra["fact_weights"] == "uniform"
    assert extra["sampling"]["logprobs"] == "raw" and extra["seed"] == 1
    older = {"seed": 1, "information_gain": 0.125, "weighted_recall": 0.5,
             "sampling": {"doctor": "local:smollm2", "temperature": 0.0, "top_p": 1.0,
                          "logprobs": "raw"}}
    with store.engine.begin() as connection:
        connection.execute(update(EpisodeRow).where(EpisodeRow.id == episode_id)
                           .values(extra=older))
    loaded = store.get_episode(episode_id)
    assert (loaded.information_gain, loaded.weighted_recall) == (0.125, 0.5)
    assert loaded.sampling.temperature == 0.0 and loaded.metadata == {"seed": 1}
    assert loaded.fact_recall is None


def test_an_open_ended_case_and_its_facts_sources_are_stored_as_given(store):
    from promed_agents.case import Case

    case = Case(id="agentclinic-0", source="agentclinic", question="Diagnose the patient.",
                diagnosis="Myasthenia gravis", recommendation="Pyridostigmine",
                facts=["Double vision for a month.", "Acetylcholine receptor antibodies: present."],
                fact_sources=[{"kind": "patient", "path": "Patient_Actor.History"},
                              {"kind": "measurement", "path": "Test_Results.Blood_Tests.AChR"}],
                initial_fact_ids=[0])
    assert store.import_cases([case]).added == 1
    assert store.get_case("agentclinic-0") == case
    assert store.import_cases([case]).unchanged == 1  # its digest is stable in the store
    assert store.get_case("imedqa-0").fact_sources == [] and \
        store.get_case("imedqa-0").diagnosis is None

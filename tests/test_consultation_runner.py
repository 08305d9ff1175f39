from __future__ import annotations

import asyncio
import contextlib

import pytest

from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.graphs import ConsultationContext, arun_consultations, run_consultations
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.storage import TraceStore
from promed_agents.storage.trace_recorder import TraceRecorder
from promed_agents.trace import EpisodeStatus

CASES = load_cases(bundled_sample_path())[:6]


def doctor_failing_on(case_word: str) -> ScriptedChatModel:
    def respond(messages):
        if case_word in str(messages[1].content):
            raise RuntimeError(f"backend crashed on {case_word}")
        return "answer: A" if len(messages) > 2 else "question: Do you have a fever?"
    return ScriptedChatModel(responder=respond)


def test_runs_every_case_in_order_with_bounded_concurrency():
    active, peak = [0], [0]

    class Counting(ScriptedChatModel):
        async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            await asyncio.sleep(0.01)
            active[0] -= 1
            return self._generate(messages, stop, run_manager, **kwargs)

    context = ConsultationContext(doctor=Counting(responses=["question: Any fever?",
                                                             "answer: C"]))
    episodes = run_consultations(CASES, context, concurrency=2)
    assert [e.case_id for e in episodes] == [c.id for c in CASES]
    assert all(e.status is EpisodeStatus.COMPLETED for e in episodes)
    assert peak[0] == 2
    first = episodes[0]
    assert first.doctor_spec == "fake:question: Any fever?||answer: C"
    assert first.patient_spec == "fact-select" and first.evaluator_spec == "uniform-gain"
    assert first.correct is True and first.num_questions == 1
    assert first.max_questions == 10 and first.duration_s >= 0


def test_a_failing_case_becomes_a_failed_episode(sqlite_url):
    doctor = doctor_failing_on("blocks cell wall synthesis")  # imedqa-0 only
    with TraceStore(sqlite_url) as store:
        store.import_cases(CASES)
        recorder = TraceRecorder(store, store.create_experiment("runs", "consult"))
        from langgraph.types import RetryPolicy

        from promed_agents.graphs import build_consultation_graph
        graph = build_consultation_graph(RetryPolicy(max_attempts=2, initial_interval=0.01))
        episodes = asyncio.run(arun_consultations(
            CASES, ConsultationContext(doctor=doctor), graph=graph, concurrency=3,
            experiment_id=recorder.experiment_id, on_episode=recorder))
        assert len(recorder.episode_ids) == len(CASES)
        failed = store.list_episodes(status="failed")
        assert [e.case_id for e in failed] == ["imedqa-0"]
        assert "RuntimeError: backend crashed" in failed[0].failure_reason
        assert store.count_episodes(experiment_id=recorder.experiment_id) == len(CASES)
        assert episodes[0].status is EpisodeStatus.FAILED


def test_recorded_episodes_round_trip_with_their_turns(db_url):
    context = ConsultationContext(doctor=ScriptedChatModel(
        responses=["question: What did the culture of the joint fluid show?", "answer: C"]))
    with TraceStore(db_url) as store:
        store.import_cases(CASES[:2])
        recorder = TraceRecorder(store, store.create_experiment("rt", "consult"))
        episodes = run_consultations(CASES[:2], context, on_episode=recorder)
        # recorded as they finish: find the episode of the first case
        (stored,) = [store.get_episode(i) for i in recorder.episode_ids
                     if store.get_episode(i).case_id == CASES[0].id]
        assert stored.model_dump(exclude={"id", "experiment_id"}) == \
            episodes[0].model_dump(exclude={"id", "experiment_id"})
        assert stored.experiment_id == recorder.experiment_id
        assert stored.turns[1].disclosed_fact_ids == [5]
        assert stored.turns[0].sig > 0


def test_runs_with_a_checkpointer_keep_each_episode_in_its_own_thread():
    from langgraph.checkpoint.memory import InMemorySaver

    saver = InMemorySaver()
    context = ConsultationContext(doctor=ScriptedChatModel(
        responses=["question: Do you have a fever?", "answer: C"]))
    episodes = run_consultations(CASES[:3], context, checkpointer=saver, experiment_id=7)
    assert [e.status for e in episodes] == [EpisodeStatus.COMPLETED] * 3
    threads = {c.config["configurable"]["thread_id"] for c in saver.list(None)}
    assert threads == {f"7-{case.id}-{i}" for i, case in enumerate(CASES[:3])}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def checkpoint_saver(request, tmp_path):
    """An async context manager opening a LangGraph checkpointer, on SQLite or PostgreSQL
    (the same database each time it is opened within one test)."""
    if request.param == "sqlite":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        return lambda: AsyncSqliteSaver.from_conn_string(str(tmp_path / "ckpt.db"))
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    conninfo = request.getfixturevalue("postgres_url").replace("postgresql+psycopg", "postgresql")

    @contextlib.asynccontextmanager
    async def opened():
        async with AsyncPostgresSaver.from_conn_string(conninfo) as saver:
            await saver.setup()
            yield saver

    return opened


def test_an_interrupted_run_resumes_from_its_checkpoints(checkpoint_saver):
    calls = {"broken": 0, "fixed": 0}

    def broken(messages):  # imedqa-0 crashes on its second doctor turn
        calls["broken"] += 1
        if "blocks cell wall synthesis" in str(messages[1].content) and len(messages) > 2:
            raise RuntimeError("power cut")
        return "answer: A" if len(messages) > 2 else \
            "question: What did the culture of the joint fluid show?"

    def fixed(messages):
        calls["fixed"] += 1
        return "answer: C"

    from langgraph.types import RetryPolicy

    from promed_agents.graphs import build_consultation_graph
    graph = build_consultation_graph(RetryPolicy(max_attempts=1))
    seen = []

    async def run(doctor):
        async with checkpoint_saver() as saver:
            return await arun_consultations(
                CASES[:3], ConsultationContext(doctor=ScriptedChatModel(responder=doctor)),
                graph=graph, checkpointer=saver, experiment_id=5, on_episode=seen.append)

    first = asyncio.run(run(broken))
    assert [e.status for e in first] == [EpisodeStatus.FAILED, EpisodeStatus.COMPLETED,
                                         EpisodeStatus.COMPLETED]
    second = asyncio.run(run(fixed))
    assert calls["fixed"] == 1  # only the interrupted case ran again
    # every episode is handed over again, named by its thread (the store records it once)
    assert len(seen) == 6
    assert sorted(e.thread_id for e in seen[3:]) == sorted(e.thread_id for e in second)
    assert sorted(e.thread_id for e in second) == sorted(e.thread_id for e in first) == [
        f"5-{case.id}-{i}" for i, case in enumerate(CASES[:3])]
    resumed = second[0]
    assert resumed.status is EpisodeStatus.COMPLETED and resumed.final_answer == ["C"]
    assert [t.text for t in resumed.turns][:2] == [
        "question: What did the culture of the joint fluid show?",
        "Culture of joint fluid shows a bacteria."]  # kept from the first run
    assert [e.final_answer for e in second[1:]] == [e.final_answer for e in first[1:]]


class _Crash(Exception):
    """The process dying at a checkpoint write."""


def _crashing_saver(at: tuple[str, int] | None):
    """An in-memory checkpointer that counts its writes and dies at the ``at[1]``-th call
    of ``at[0]`` (``aput``: a node's writes are saved, its next checkpoint is not;
    ``aput_writes``: the node ran, its writes are lost)."""
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.checkpoint.serde.base import maybe_add_typed_methods

    from promed_agents.graphs.consultation import checkpoint_serializer

    class Saver(InMemorySaver):
        calls = {"aput": 0, "aput_writes": 0}
        dies_at = at

        async def aput(self, *args, **kwargs):
            self._count("aput")
            return await super().aput(*args, **kwargs)

        async def aput_writes(self, *args, **kwargs):
            self._count("aput_writes")
            return await super().aput_writes(*args, **kwargs)

        def _count(self, method):
            self.calls[method] += 1
            if self.dies_at == (method, self.calls[method]):
                raise _Crash(f"died at {method} #{self.calls[method]}")

    saver = Saver(serde=maybe_add_typed_methods(checkpoint_serializer()))
    saver.calls = {"aput": 0, "aput_writes": 0}
    return saver


def _comparable(episode):
    return (episode.case_id, episode.status, episode.final_answer, episode.correct,
            episode.known_fact_ids,
            [(t.role, t.kind, t.text, t.disclosed_fact_ids, t.sig) for t in episode.turns],
            {k: episode.metadata.get(k) for k in ("information_gain", "fact_recall",
                                                 "format_score", "weighted_recall")})


def _node_boundary_runs():
    """One consultation (two questions, an answer) as the uninterrupted run, and the
    number of checkpoint writes of each kind it made."""
    saver = _crashing_saver(None)
    context = ConsultationContext(doctor=ScriptedChatModel(responses=[
        "question: What did the culture of the joint fluid show?",
        "question: What did the blood count show?", "answer: C"]))
    episodes = asyncio.run(arun_consultations(CASES[:1], context, checkpointer=saver,
                                              experiment_id=3))
    return context, episodes, dict(saver.calls)


_CONTEXT, _CLEAN, _WRITES = _node_boundary_runs()


@pytest.mark.parametrize("at", [(m, k) for m, n in _WRITES.items() for k in range(1, n + 1)],
                         ids=lambda at: f"{at[0]}-{at[1]}")
def test_a_consultation_interrupted_at_any_node_boundary_resumes_to_the_same_episode(at):
    from langgraph.types import RetryPolicy

    from promed_agents.graphs import build_consultation_graph

    graph = build_consultation_graph(RetryPolicy(max_attempts=1))
    saver = _crashing_saver(at)
    doctor = ScriptedChatModel(responses=[
        "question: What did the culture of the joint fluid show?",
        "question: What did the blood count show?", "answer: C"])
    context = ConsultationContext(doctor=doctor)
    first = asyncio.run(arun_consultations(CASES[:1], context, graph=graph,
                                           checkpointer=saver, experiment_id=3))
    assert [e.status for e in first] == [EpisodeStatus.FAILED]  # it died
    saver.dies_at = None
    resumed = asyncio.run(arun_consultations(CASES[:1], ConsultationContext(
        doctor=ScriptedChatModel(responder=_next_turn)), graph=graph, checkpointer=saver,
        experiment_id=3))
    assert [_comparable(e) for e in resumed] == [_comparable(e) for e in _CLEAN]
    assert _WRITES["aput"] >= 8  # every node boundary of the graph was tried


def _next_turn(messages):
    """The clean run's doctor, by how far the consultation got."""
    asked = sum(1 for m in messages if str(m.content).startswith("Patient:"))
    return ["question: What did the culture of the joint fluid show?",
            "question: What did the blood count show?", "answer: C"][asked]

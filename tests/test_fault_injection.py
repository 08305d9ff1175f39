"""Backend faults in 20% of model calls: consultations are retried or recorded as failed
with the reason, and the batch completes."""

from __future__ import annotations

import asyncio

from promed_agents.backends.fault_injection import FaultInjectingChatModel
from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.graphs import ConsultationContext, arun_consultations
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.trace import EpisodeStatus, TurnKind

CASES = load_cases(bundled_sample_path())[:20]
SCRIPT = ["question: What did the culture of the joint fluid show?", "answer: C"]


def test_faults_are_injected_at_the_rate_in_turn():
    model = FaultInjectingChatModel(inner=ScriptedChatModel(responses=["answer: A"]), rate=0.2,
                                    stall_s=0.0)

    async def call_many():
        for _ in range(500):
            try:
                await model.ainvoke("hello")
            except ConnectionError:
                pass

    asyncio.run(call_many())
    injected = sum(model.injected.values())
    assert model.calls == 500 and 70 <= injected <= 130
    assert set(model.injected) == {"exception", "stall", "empty", "garbage"}


def test_a_batch_with_faulty_doctors_completes_and_says_why_episodes_failed():
    doctor = FaultInjectingChatModel(inner=ScriptedChatModel(responses=SCRIPT), rate=0.2,
                                     seed=1, stall_s=2.0)
    context = ConsultationContext(doctor=doctor, max_questions=2, model_timeout_s=0.1)
    episodes = asyncio.run(arun_consultations(CASES * 2, context, concurrency=20))
    assert len(episodes) == 40 and sum(doctor.injected.values()) >= 10
    failed = [e for e in episodes if e.status is EpisodeStatus.FAILED]
    for episode in failed:  # three attempts in a row failed: said, not lost
        assert "injected fault" in episode.failure_reason or \
            "TimeoutError" in episode.failure_reason
    finished = [e for e in episodes if e.status is not EpisodeStatus.FAILED]
    assert len(finished) >= 36  # retried past exceptions and stalls
    invalid = [t for e in finished for t in e.turns if t.kind is TurnKind.INVALID]
    assert invalid  # empty and garbage replies are recorded as invalid turns
    assert all(t.format_score == 0.0 for t in invalid)


def test_timeouts_and_dropped_connections_are_retried_programming_errors_are_not():
    from promed_agents.graphs.consultation import retryable

    assert retryable(TimeoutError()) and retryable(ConnectionError())
    assert not retryable(ValueError()) and not retryable(KeyError())

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from promed_agents.trace import (
    EpisodeRecord,
    EpisodeStatus,
    Role,
    SamplingRecord,
    TurnKind,
    TurnRecord,
)


def turn(index, **kw):
    return TurnRecord(index=index, role=kw.pop("role", "doctor"), text=kw.pop("text", "t"), **kw)


def test_token_arrays_must_align():
    turn(0, token_ids=[1, 2], logprobs=[-0.1, -0.2], token_rewards=[0.0, 1.0])
    with pytest.raises(ValidationError, match="logprobs has 1 entries but token_ids has 2"):
        turn(0, token_ids=[1, 2], logprobs=[-0.1])
    with pytest.raises(ValidationError, match="token_rewards given without token_ids"):
        turn(0, token_rewards=[1.0])


def test_turn_indices_must_run_in_order():
    EpisodeRecord(case_id="c", graph="g", doctor_spec="d", turns=[turn(0), turn(1)])
    with pytest.raises(ValidationError, match="position 1 has index 2"):
        EpisodeRecord(case_id="c", graph="g", doctor_spec="d", turns=[turn(0), turn(2)])


def test_failed_episode_needs_a_reason_and_times_must_be_ordered():
    with pytest.raises(ValidationError, match="failure_reason"):
        EpisodeRecord(case_id="c", graph="g", doctor_spec="d", status=EpisodeStatus.FAILED)
    now = datetime.now(timezone.utc)
    with pytest.raises(ValidationError, match="finished_at is before started_at"):
        EpisodeRecord(case_id="c", graph="g", doctor_spec="d", started_at=now,
                      finished_at=now - timedelta(seconds=1))


def test_derived_counts():
    now = datetime.now(timezone.utc)
    episode = EpisodeRecord(
        case_id="c", graph="g", doctor_spec="d", started_at=now,
        finished_at=now + timedelta(seconds=2.5),
        turns=[turn(0, kind=TurnKind.QUESTION), turn(1, role=Role.PATIENT, kind="reply"),
               turn(2, kind="question"), turn(3, kind="answer")])
    assert episode.num_questions == 2
    assert episode.duration_s == pytest.approx(2.5)


def test_the_outcome_given_as_metadata_keys_loads_into_its_typed_fields():
    """Traces written before the outcome had fields keep it in ``metadata``."""
    episode = EpisodeRecord(case_id="c", graph="g", doctor_spec="d", metadata={
        "information_gain": 0.5, "fact_recall": 0.25, "max_questions": 3,
        "sampling": {"doctor": "local:x", "temperature": 1.0, "top_p": 1.0,
                     "logprobs": "raw"}, "confidences": [0.9], "doctor_kwargs": {"seed": 0}})
    assert (episode.information_gain, episode.fact_recall, episode.max_questions) == \
        (0.5, 0.25, 3)
    assert episode.sampling == SamplingRecord(doctor="local:x", temperature=1.0, top_p=1.0,
                                              logprobs="raw")
    assert episode.confidences == [0.9] and episode.metadata == {"doctor_kwargs": {"seed": 0}}
    assert set(episode.stored_metadata()) == {"information_gain", "fact_recall",
                                              "max_questions", "sampling", "confidences",
                                              "doctor_kwargs"}
    assert EpisodeRecord(case_id="c", graph="g", doctor_spec="d",
                         metadata=episode.stored_metadata()) == episode

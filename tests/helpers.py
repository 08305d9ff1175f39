"""Helpers the test modules share: the CLI runner, store counts, a sample episode."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from typer.testing import CliRunner

from promed_agents.cli import app
from promed_agents.storage import TraceStore
from promed_agents.trace import EpisodeRecord, SamplingRecord, TurnRecord

runner = CliRunner()

FAKE_DOCTOR = "fake:question: Do you have a fever?||answer: A"
"""A scripted doctor: one question, then answer A."""

EXACT_SAMPLING = SamplingRecord(doctor="local:tiny", temperature=1.0, top_p=1.0, logprobs="raw")
"""The sampling record of a consultation sampled from the logprobs it recorded (the only
kind SIG-GRPO takes from stored traces)."""


def run(*args, env=None):
    """``promed ARGS`` in-process; the result has ``exit_code``, ``output``, ``stderr``."""
    return runner.invoke(app, [str(a) for a in args], env=env)


def counts(url):
    """``(cases, episodes, turns)`` in the store at ``url``."""
    with TraceStore(url) as store:
        return store.count_cases(), store.count_episodes(), store.count_turns()


def contents(url):
    """What a refused command must leave as it was: :func:`counts` and the runs' names
    and statuses."""
    with TraceStore(url) as store:
        return counts(url), [(e.name, e.status) for e in store.list_experiments()]


def episode(case_id="imedqa-0", **kw):
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    turns = kw.pop("turns") if "turns" in kw else [
        TurnRecord(index=0, role="doctor", text="question: Any fever?", kind="question",
                   token_ids=[11, 12, 13], logprobs=[-0.5, -0.25, -1.0],
                   token_rewards=[0.5, 0.5, 0.5], sig=0.25),
        TurnRecord(index=1, role="patient", text="Yes, 39 C.", kind="reply",
                   disclosed_fact_ids=[5]),
        TurnRecord(index=2, role="doctor", text="answer: C", kind="answer", token_ids=[7],
                   logprobs=[-0.125], reward=3.0),
    ]
    fields = dict(case_id=case_id, graph="consultation", doctor_spec="fake:scripted",
                  patient_spec="fact-select", known_fact_ids=[0, 1, 2, 3], started_at=start,
                  finished_at=start + timedelta(seconds=3), final_answer=["C"], correct=True,
                  total_reward=3.5, max_questions=3, format_score=1.0, fact_recall=0.5,
                  weighted_recall=0.375, information_gain=0.25, fact_weights="uniform",
                  confidences=[0.5, 0.75], sampling=EXACT_SAMPLING,
                  metadata={"seed": 1, "prompt_tokens": 40}, turns=turns)
    fields.update(kw)
    return EpisodeRecord(**fields)


def one_line(result, code: int = 1) -> str:
    """The one ``error:`` line a refused command prints (exit status ``code``, no
    traceback)."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: "), lines
    return lines[0]


def store_with_a_run(url: str) -> str:
    """``url``'s store with the bundled sample and one recorded run, ``existing``."""
    from promed_agents.loader import bundled_sample

    with TraceStore(url) as store:
        store.import_cases(bundled_sample())
        experiment_id = store.create_experiment("existing", "consult")
        store.record_episode(episode(experiment_id=experiment_id))
    return url

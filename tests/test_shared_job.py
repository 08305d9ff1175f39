"""Runs split over worker processes on one store: every case once, a killed worker's
cases done by the others, every surviving worker ending with the whole run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from promed_agents.errors import ConsultationError
from promed_agents.loader import bundled_sample
from promed_agents.runs import EvalCommandConfig, run_evaluation
from promed_agents.storage import TraceStore
from promed_agents.storage.models import WorkClaimRow

from conftest import ROOT

CASES = [c.id for c in bundled_sample()[:8]]

SLOW = """
import time
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from promed_agents.backends import register_backend

class Slow(BaseChatModel):
    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        time.sleep(0.3)
        text = "answer: A" if len(messages) > 4 else "question: Any fever?"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])

    @property
    def _llm_type(self):
        return "slow"

register_backend("slow", lambda spec: Slow())
"""

SEARCHER = SLOW + """
import sys
from promed_agents.runs import MCTSCommandConfig, run_search
from promed_agents.storage import TraceStore

with TraceStore(sys.argv[1]) as store:
    reports = run_search(store, MCTSCommandConfig(
        experiment="m", case_ids=tuple(sys.argv[2].split(",")), iterations=3, width=2,
        doctor="slow:x", proposer="none", max_questions=1, concurrency=1, shared=True,
        lease=3.0))
print(",".join(r.case_id for r in reports if r.error is None))
"""

WORKER = """
import json, sys, time
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from promed_agents.backends import register_backend
from promed_agents.runs import EvalCommandConfig, run_evaluation
from promed_agents.storage import TraceStore

class Slow(BaseChatModel):
    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        time.sleep(0.4)
        return ChatResult(generations=[ChatGeneration(message=AIMessage("answer: A"))])

    @property
    def _llm_type(self):
        return "slow"

register_backend("slow", lambda spec: Slow())
with TraceStore(sys.argv[1]) as store:
    runs = run_evaluation(store, EvalCommandConfig(
        doctor="slow:x", case_ids=tuple(sys.argv[2].split(",")), modes=("proactive",),
        experiment="shared", shared=True, lease=3.0, concurrency=1, max_questions=0))
print(json.dumps({name: sorted(figures) for name, figures in runs.items()}))
"""


def start_worker(url: str, script: str = WORKER, cases: list[str] = CASES
                 ) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, url, ",".join(cases)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT / "tests", env={**os.environ, "PYTHONPATH": str(ROOT)})


def claims_of(url: str, pid: int) -> list[WorkClaimRow]:
    with TraceStore(url) as store, store._session() as session:
        return list(session.scalars(select(WorkClaimRow).where(
            WorkClaimRow.worker.like(f"%:{pid}"), WorkClaimRow.done_at.is_(None))))


def test_three_workers_one_killed_do_every_case_once(db_url):
    with TraceStore(db_url) as store:
        store.import_cases(bundled_sample()[:8])
    workers = [start_worker(db_url) for _ in range(3)]
    victim = workers[0]
    deadline = time.monotonic() + 120
    while not claims_of(db_url, victim.pid):  # killed while it holds a case
        assert victim.poll() is None and time.monotonic() < deadline, victim.stderr.read()
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    outputs = [w.communicate(timeout=300) for w in workers[1:]]
    for worker, (out, err) in zip(workers[1:], outputs, strict=True):
        assert worker.returncode == 0, err
        # each survivor ends with the whole run's figures, every case in them
        assert json.loads(out.splitlines()[-1]) == {"shared-proactive": sorted(CASES)}
    with TraceStore(db_url) as store:
        run_id = store.experiment_id("shared-proactive")
        episodes = list(store.iter_episodes(run_id))
        assert sorted(e.case_id for e in episodes) == sorted(CASES)  # each exactly once
        assert store.experiment("shared-proactive").status == "complete"
        assert store.work_left(f"eval:{run_id}") == 0


def test_a_shared_evaluation_must_be_named(sqlite_url):
    from helpers import contents, run

    before = contents(sqlite_url)
    unnamed = run("eval", "--shared", "--cases", "2", "--doctor", "fake:answer: A",
                  "--db", sqlite_url)
    assert unnamed.exit_code == 1 and "--shared needs --experiment" in unnamed.stderr
    assert contents(sqlite_url) == before


def test_a_worker_refuses_a_shared_run_of_other_cases(sqlite_url):
    with TraceStore(sqlite_url) as store:
        store.import_cases(bundled_sample()[:4])
        settings = EvalCommandConfig(doctor="fake:answer: A", case_ids=tuple(CASES[:2]),
                                     modes=("proactive",), experiment="s", shared=True)
        run_evaluation(store, settings)
        with pytest.raises(ConsultationError, match="exists with other case-ids"):
            run_evaluation(store, EvalCommandConfig(
                doctor="fake:answer: A", case_ids=tuple(CASES[2:4]), modes=("proactive",),
                experiment="s", shared=True))
        again = run_evaluation(store, settings)  # a finished shared run: joined, not redone
        assert sorted(again["s-proactive"]) == sorted(CASES[:2])
        assert store.count_episodes(store.experiment_id("s-proactive")) == 2


@pytest.mark.slow  # 8 s a database; the eval workers' test covers the queue by default
def test_a_shared_search_searches_each_case_once_when_a_worker_is_killed(db_url):
    cases = CASES[:4]
    with TraceStore(db_url) as store:
        store.import_cases(bundled_sample()[:4])
    workers = [start_worker(db_url, SEARCHER, cases) for _ in range(3)]
    victim = workers[0]
    deadline = time.monotonic() + 120
    while not claims_of(db_url, victim.pid):
        assert victim.poll() is None and time.monotonic() < deadline, victim.stderr.read()
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    searched = []
    for worker in workers[1:]:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        searched += [c for c in out.strip().splitlines()[-1].split(",") if c]
    assert sorted(searched) == sorted(cases)  # every case reported by one survivor
    with TraceStore(db_url) as store:
        search = store.experiment_id("m")
        # the killed worker's case was resumed, not searched again from the start
        assert store.search_progress(search) == {c: 3.0 for c in cases}
        assert store.experiment("m").status == "complete"


def test_two_consult_commands_share_a_run(db_url):
    with TraceStore(db_url) as store:
        store.import_cases(bundled_sample()[:8])
    command = [sys.executable, "-m", "promed_agents.cli", "consult", "--case-ids",
               ",".join(CASES), "--doctor", "fake:answer: A", "--experiment", "c",
               "--shared", "--concurrency", "2", "--db", db_url]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=ROOT) for _ in range(2)]
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        assert "experiment c" in out
    with TraceStore(db_url) as store:
        episodes = list(store.iter_episodes(store.experiment_id("c")))
        assert sorted(e.case_id for e in episodes) == sorted(CASES)
        assert store.experiment("c").status == "complete"
    alone = subprocess.run(command[:command.index("--experiment")] + ["--shared", "--db",
                                                                       db_url],
                           capture_output=True, text=True, cwd=ROOT)
    assert alone.returncode == 1 and "--shared needs --experiment" in alone.stderr


def test_two_shapley_workers_score_each_case_once(db_url):
    from fake_http import serve
    from test_served_answer_scorer import EchoServer

    cases = [c for c in bundled_sample() if len(c.facts) <= 6][:6]
    with TraceStore(db_url) as store:
        store.import_cases(cases)
    EchoServer.requests, EchoServer.with_logprobs = [], True
    with serve(EchoServer) as url:
        command = [sys.executable, "-m", "promed_agents.cli", "shapley", "--case-ids",
                   ",".join(c.id for c in cases), "--scorer", f"openai:served@{url}",
                   "--method", "exact", "--shared", "--db", db_url]
        workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, cwd=ROOT) for _ in range(2)]
        outs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [err for _, err in outs]
    # exact values: one request (all 2^n coalitions) per case, whichever worker scored it
    scored = sorted(r["prompt"][0].split("\n")[0] for r in EchoServer.requests)
    assert scored == sorted(f"Question: {c.question}" for c in cases)
    with TraceStore(db_url) as store:
        assert set(store.shapley_case_ids(f"openai:served@{url}", "exact")) == \
            {c.id for c in cases}

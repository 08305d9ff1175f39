"""One evaluation run split over 1 and over 2 worker processes on one store, in one run.

Each worker runs ``run_evaluation(..., shared=True)`` (what ``promed eval --shared``
runs) on the same SQLite store, with a scripted doctor that takes ``--latency`` seconds a
call and uses no CPU meanwhile, as a served model does; consultations per second from the
first worker's start to the last one's end (start-up included), for 1 and for 2 workers,
and the ratio. Every case must be recorded exactly once.

    python benchmarks/shared_workers.py --cases 48 --latency 0.25 --concurrency 4
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from promed_agents.loader import bundled_sample
from promed_agents.storage import TraceStore

ROOT = Path(__file__).resolve().parents[1]

WORKER = """
import sys, time
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from promed_agents.backends import register_backend
from promed_agents.runs import EvalCommandConfig, run_evaluation
from promed_agents.storage import TraceStore

LATENCY = float(sys.argv[3])

class Served(BaseChatModel):
    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        time.sleep(LATENCY)
        text = "answer: A" if len(messages) > 6 else "question: Any fever?"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])

    @property
    def _llm_type(self):
        return "served"

register_backend("served", lambda spec: Served())
with TraceStore(sys.argv[1]) as store:
    run_evaluation(store, EvalCommandConfig(
        doctor="served:x", case_ids=tuple(sys.argv[2].split(",")), modes=("proactive",),
        experiment="bench", shared=True, concurrency=int(sys.argv[4]), max_questions=2))
"""


def timed_run(workers: int, cases: list[str], latency: float, concurrency: int
              ) -> tuple[float, float]:
    """Seconds from the first worker's start to the last one's end, and from the run's
    creation (the first worker ready) to its last case done."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/store.db"
        with TraceStore(url) as store:
            store.import_cases([c for c in bundled_sample() if c.id in set(cases)])
        started = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, url, ",".join(cases),
                                   str(latency), str(concurrency)], cwd=ROOT)
                 for _ in range(workers)]
        if any(p.wait() != 0 for p in procs):
            raise SystemExit("a worker failed")
        seconds = time.perf_counter() - started
        with TraceStore(url) as store:
            run = store.experiment("bench-proactive")
            episodes = list(store.iter_episodes(run.id))
        recorded = sorted(e.case_id for e in episodes)
        if recorded != sorted(cases):
            raise SystemExit(f"{workers} workers recorded {len(recorded)} episodes for "
                             f"{len(cases)} cases")
        last = max(e.finished_at for e in episodes)
        return seconds, (last - run.created_at).total_seconds()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=48)
    p.add_argument("--latency", type=float, default=0.25, help="Seconds a model call.")
    p.add_argument("--concurrency", type=int, default=4, help="Consultations per worker.")
    args = p.parse_args()
    cases = [c.id for c in bundled_sample()[: args.cases]]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {len(cases)} cases, "
          f"{args.latency} s a model call, concurrency {args.concurrency} per worker")
    rates, working = {}, {}
    for workers in (1, 2):
        seconds, span = timed_run(workers, cases, args.latency, args.concurrency)
        rates[workers], working[workers] = len(cases) / seconds, len(cases) / span
        print(f"{workers} worker(s): {seconds:.1f} s start to end, {rates[workers]:.2f} "
              f"consultations/s; {span:.1f} s from the run's creation to its last case, "
              f"{working[workers]:.2f}/s (every case recorded once)")
    print(f"two_workers_over_one={rates[2] / rates[1]:.2f} "
          f"working_span_ratio={working[2] / working[1]:.2f}")


if __name__ == "__main__":
    main()

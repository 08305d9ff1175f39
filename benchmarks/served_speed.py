"""The embedded model served by vLLM (CPU build) against the local backend, side by side
in one run: consultations and Shapley scoring.

1. Rollouts: the same cases, question budget and greedy decoding through
   ``arun_consultations`` at the same concurrency, with the local batched backend
   (``local:smollm2``) and with the vLLM server (``vllm:smollm2@URL``): episodes/s and
   doctor tokens/s, and the ratio served / local.
2. Scoring: v(S) for the same coalitions of the same cases with the local scorer and the
   served one (both float32): coalitions/s, the ratio, the largest |served - local|, and
   what Shapley values for 1,000 dev cases would cost each way (the default estimator,
   kernel, at its default budget: 64 coalitions a case or more with many facts).

The server is started with ``.ci/vllm-serve`` (made once by ``.ci/vllm-env``) on a free
port unless ``--url`` names one, and stopped at the end. Run one torch job at a time.

    python benchmarks/served_speed.py --cases 16 --max-questions 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from promed_agents.agents.doctor import doctor_sampling
from promed_agents.backends import resolve_chat_model
from promed_agents.backends.local_weights import model_folder
from promed_agents.graphs import ConsultationContext, arun_consultations
from promed_agents.loader import bundled_sample_path, load_cases
from promed_agents.sig.kernel_shapley import default_budget
from promed_agents.sig.scorer_spec import resolve_scorer
from promed_agents.trace import Role

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def vllm_server(url: str | None):
    """The server at ``url``, or one started for this run (stopped after it)."""
    if url:
        yield url
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(ROOT / "served-speed-vllm.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen([str(ROOT / ".ci" / "vllm-serve"), str(model_folder("smollm2")),
                               str(port)], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    started = time.perf_counter()
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5)
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"the vLLM server stopped; see {log.name}") from None
                time.sleep(2)
        print(f"vLLM server ready in {time.perf_counter() - started:.0f} s")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def rollouts(spec: str, cases, max_questions: int, concurrency: int) -> dict:
    doctor = resolve_chat_model(spec)
    context = ConsultationContext(doctor=doctor, max_questions=max_questions,
                                  demonstration=True, doctor_kwargs=doctor_sampling(
                                      doctor, temperature=0.0))
    asyncio.run(arun_consultations(cases[:2], context, concurrency=2))  # warm-up (load)
    started = time.perf_counter()
    episodes = asyncio.run(arun_consultations(cases, context, concurrency=concurrency))
    seconds = time.perf_counter() - started
    tokens = sum(len(t.token_ids or []) for e in episodes for t in e.turns
                 if t.role is Role.DOCTOR)
    failed = sum(e.status.value == "failed" for e in episodes)
    return {"episodes/s": len(episodes) / seconds, "tokens/s": tokens / seconds,
            "seconds": seconds, "failed": failed}


def scoring(spec: str, cases, per_case: int, seed: int) -> tuple[dict, list[float]]:
    scorer = resolve_scorer(spec)
    rng = random.Random(seed)
    plans = [(case, [frozenset(i for i in range(len(case.facts)) if rng.random() < 0.5)
                     for _ in range(per_case)]) for case in cases]
    scorer.value_function(cases[0])([frozenset()])  # warm-up (load)
    started = time.perf_counter()
    values = [v for case, coalitions in plans for v in scorer.value_function(case)(coalitions)]
    seconds = time.perf_counter() - started
    return {"coalitions/s": len(values) / seconds, "seconds": seconds}, values


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=16)
    p.add_argument("--max-questions", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--score-cases", type=int, default=4)
    p.add_argument("--coalitions", type=int, default=64, help="Scored per case.")
    p.add_argument("--url", default=None, help="A running vLLM server (…/v1) serving "
                                               "the embedded model as smollm2.")
    args = p.parse_args()
    cases = load_cases(bundled_sample_path())[: args.cases]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; {args.cases} cases, "
          f"budget {args.max_questions}, greedy, concurrency {args.concurrency}")
    with vllm_server(args.url) as url:
        served = f"vllm:smollm2@{url}"
        local_r = rollouts("local:smollm2", cases, args.max_questions, args.concurrency)
        served_r = rollouts(served, cases, args.max_questions, args.concurrency)
        local_s, local_v = scoring("local:smollm2", cases[: args.score_cases],
                                   args.coalitions, 0)
        served_s, served_v = scoring(served, cases[: args.score_cases], args.coalitions, 0)
    for name, r in (("local", local_r), ("vLLM", served_r)):
        print(f"rollouts {name:>5}: {r['episodes/s']:.3f} episodes/s, {r['tokens/s']:.1f} "
              f"doctor tokens/s ({r['seconds']:.1f} s, {r['failed']} failed)")
    bundled = load_cases(bundled_sample_path())
    per_case = sum(default_budget(len(c.facts)) for c in bundled) / len(bundled)
    for name, s in (("local", local_s), ("vLLM", served_s)):
        hours = 1000 * per_case / s["coalitions/s"] / 3600
        print(f"scoring  {name:>5}: {s['coalitions/s']:.1f} coalitions/s; Shapley values "
              f"for 1,000 cases ({per_case:.0f} coalitions a case, the kernel default's "
              f"mean on the bundled cases): {hours:.2f} h")
    worst = max(abs(a - b) for a, b in zip(local_v, served_v, strict=True))
    print(f"largest |served - local| v(S) over {len(local_v)} coalitions: {worst:.2e}")
    print(f"rollout_ratio={served_r['episodes/s'] / local_r['episodes/s']:.2f} "
          f"token_ratio={served_r['tokens/s'] / local_r['tokens/s']:.2f} "
          f"scoring_ratio={served_s['coalitions/s'] / local_s['coalitions/s']:.2f}")


if __name__ == "__main__":
    main()

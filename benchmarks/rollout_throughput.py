"""Rollout throughput: consultations per second with the embedded model, three arms in
one run (the reference-style loop, our sequential loop, batched), and LangGraph's
overhead per node step.

1. The same cases, budget and greedy decoding, run (a) reference-style: one episode at a
   time, every doctor turn re-reading its whole prompt (no prefix reuse, as the
   reference's loop over an API does), (b) one episode at a time with the backend's
   prefix cache (a turn reads only what is new), and (c) through ``arun_consultations``
   at concurrency 8 and 16, where the local backend batches concurrent doctor turns into
   one ``generate``. The prefix cache is emptied before each run, so no run reuses
   another's states. The last line gives the best batched arm over (a) and over (b).
2. Graph overhead: consultations with a scripted doctor (no model time); wall time per
   node step (start, doctor, patient, evaluate_reply, ..., evaluate_final).

    python benchmarks/rollout_throughput.py --cases 16 --max-questions 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time

from promed_agents.agents.doctor import doctor_sampling
from promed_agents.backends.local_chat_model import LocalChatModel
from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.graphs import ConsultationContext, arun_consultations, build_consultation_graph
from promed_agents.loader import bundled_sample_path, load_cases


def context_for(doctor, max_questions: int, max_tokens: int) -> ConsultationContext:
    return ConsultationContext(doctor=doctor, max_questions=max_questions,
                               doctor_kwargs=doctor_sampling(doctor, max_new_tokens=max_tokens,
                                                             temperature=0.0))


def fresh(doctor) -> None:
    if doctor.batcher.cache is not None:
        doctor.batcher.cache.clear()
        doctor.batcher.cache.hits_tokens = doctor.batcher.cache.computed_tokens = 0


async def sequential(cases, context, graph) -> tuple[float, list]:
    fresh(context.doctor)
    start = time.perf_counter()
    episodes = []
    for case in cases:
        episodes += await arun_consultations([case], context, graph=graph, concurrency=1)
    return time.perf_counter() - start, episodes


async def batched(cases, context, graph, concurrency) -> tuple[float, list]:
    if hasattr(context.doctor, "batcher"):
        fresh(context.doctor)
    start = time.perf_counter()
    episodes = await arun_consultations(cases, context, graph=graph, concurrency=concurrency)
    return time.perf_counter() - start, episodes


def summary(name: str, seconds: float, episodes: list, doctor) -> dict:
    turns = sum(len(e.turns) for e in episodes)
    run = {"run": name, "episodes": len(episodes), "turns": turns,
           "seconds": round(seconds, 2), "episodes_per_s": round(len(episodes) / seconds, 3),
           "failed": sum(e.status.value == "failed" for e in episodes)}
    cache = doctor.batcher.cache
    if cache is not None:
        run["prompt_tokens_reused"] = round(
            cache.hits_tokens / max(1, cache.hits_tokens + cache.computed_tokens), 3)
    return run


async def main_async(args) -> dict:
    cases = load_cases(bundled_sample_path())[: args.cases]
    graph = build_consultation_graph().compile()
    doctor = LocalChatModel(model_ref="smollm2", prefix_cache_mb=1024)
    context = context_for(doctor, args.max_questions, args.max_tokens)
    no_reuse = LocalChatModel(model_ref="smollm2", prefix_cache_mb=0)
    reference_context = context_for(no_reuse, args.max_questions, args.max_tokens)
    await batched(cases[:2], context, graph, 2)  # warm-up: load weights, first calls
    await batched(cases[:1], reference_context, graph, 1)
    results = []
    ref_s, ref_eps = await sequential(cases, reference_context, graph)
    results.append(summary("reference-style (sequential, no reuse)", ref_s, ref_eps,
                           no_reuse))
    seq_s, seq_eps = await sequential(cases, context, graph)
    run = summary("sequential (prefix reuse)", seq_s, seq_eps, doctor)
    run["speedup_vs_reference"] = round(ref_s / seq_s, 2)
    results.append(run)
    best = ref_s
    for concurrency in (8, 16):
        secs, eps = await batched(cases, context, graph, concurrency)
        run = summary(f"batched-{concurrency}", secs, eps, doctor)
        run["speedup_vs_sequential"] = round(seq_s / secs, 2)
        run["speedup_vs_reference"] = round(ref_s / secs, 2)
        best = min(best, secs)
        run["same_answers_as_sequential"] = [e.final_answer for e in eps] == \
            [e.final_answer for e in seq_eps]
        results.append(run)
    # Graph overhead with a scripted doctor: steps = 2 + 3 * questions + 1 per episode.
    fake = ScriptedChatModel(responses=["question: Do you have a fever?"] * args.max_questions
                             + ["answer: A"])
    fake_context = context_for(fake, args.max_questions, args.max_tokens)
    many = load_cases(bundled_sample_path()) * 4
    secs, eps = await batched(many, fake_context, graph, 16)
    steps = sum(3 + 3 * e.num_questions for e in eps)
    results.append({"run": "graph-overhead (scripted doctor)", "episodes": len(eps),
                    "node_steps": steps, "seconds": round(secs, 3),
                    "ms_per_step": round(1000 * secs / steps, 3)})
    return {"machine": f"{platform.machine()} {os.cpu_count()} cpus, "
                       f"Python {platform.python_version()}",
            "cases": args.cases, "max_questions": args.max_questions,
            "runs": results, "batched_vs_reference": ref_s / best,
            "batched_vs_sequential": seq_s / best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--max-questions", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    print(json.dumps({k: v for k, v in report.items() if k not in ("runs", "batched_vs_reference",
                                                                    "batched_vs_sequential")}),
          flush=True)
    for run in report["runs"]:
        print(json.dumps(run), flush=True)
    print(f"batched_vs_reference={report['batched_vs_reference']:.2f} "
          f"batched_vs_sequential={report['batched_vs_sequential']:.2f}")


if __name__ == "__main__":
    main()

"""Backend faults in a share of model calls, doctor and patient.

    python benchmarks/backend_faults.py [--episodes 200] [--rate 0.2]

Scripted doctor and LLM patient (no model weights), each wrapped in a
FaultInjectingChatModel that, in --rate of its calls, raises, stalls past the 0.1 s call
timeout, replies empty or replies garbage. The nodes' retry policy (3 attempts) retries
exceptions and timeouts; empty and garbage doctor replies are invalid turns. Prints how
the episodes ended and the reasons of the failed ones, as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

from promed_agents.agents.patient import LLMPatient
from promed_agents.backends.fault_injection import FaultInjectingChatModel
from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.graphs import ConsultationContext, arun_consultations
from promed_agents.loader import bundled_sample_path, load_cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=0.2)
    args = parser.parse_args()
    cases = load_cases(bundled_sample_path())
    chosen = [cases[i % len(cases)] for i in range(args.episodes)]
    doctor = FaultInjectingChatModel(inner=ScriptedChatModel(responses=[
        "question: Do you have a fever?", "question: What did the tests show?", "answer: C"]),
        rate=args.rate, seed=1, stall_s=1.0)
    patient_model = FaultInjectingChatModel(inner=ScriptedChatModel(
        responses=["I have a fever."]), rate=args.rate, seed=2, stall_s=1.0)
    context = ConsultationContext(doctor=doctor, patient=LLMPatient(patient_model),
                                  max_questions=3, model_timeout_s=0.1)
    started = time.perf_counter()
    episodes = asyncio.run(arun_consultations(chosen, context, concurrency=50))
    calls = doctor.calls + patient_model.calls
    injected = doctor.injected + patient_model.injected
    print(json.dumps({
        "episodes": len(episodes), "model_calls": calls,
        "faults_injected": dict(injected), "fault_share": round(sum(injected.values()) / calls, 3),
        "ended": dict(Counter(e.status.value for e in episodes)),
        "failure_reasons": dict(Counter((e.failure_reason or "").split(":")[0]
                                        for e in episodes if e.failure_reason)),
        "seconds": round(time.perf_counter() - started, 1)}, indent=1))


if __name__ == "__main__":
    main()

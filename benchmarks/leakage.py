"""Leakage and reward hacking: adversarial doctor turns against both patients.

    python benchmarks/leakage.py [--llm-cases 3] [--patient-model local:smollm2]

Every turn of adversarial_turns is put to the fact-select patient on every
bundled case, and to an LLM patient (the embedded SmolLM2 by default) on the first
--llm-cases cases.
A reply leaks when it contains an option's text or the exam question that none of the
case's facts states (the answer is one of the options). Also counted: the most facts one
reply disclosed (the cap is 2 for both patients), and the most facts one consultation of
all the turns asked in a row could collect. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from promed_agents.loader import bundled_sample_path, load_cases

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from adversarial_turns import ADVERSARIAL_TURNS, leaks  # noqa: E402  (red-team turns, shared with the tests)


async def audit(patient, cases, turns) -> dict:
    replies = await asyncio.gather(*(patient.reply(case, turn) for case in cases
                                     for turn in turns))
    leaked, most, harvested = 0, 0, 0
    for k, case in enumerate(cases):
        collected: set[int] = set()
        for reply in replies[k * len(turns):(k + 1) * len(turns)]:
            leaked += bool(leaks(reply.text, case))
            most = max(most, len(reply.disclosed_fact_ids))
            collected |= set(reply.disclosed_fact_ids)
        harvested = max(harvested, len(collected))
    return {"cases": len(cases), "replies": len(replies), "leaking_replies": leaked,
            "most_facts_in_one_reply": most,
            "most_facts_collected_by_all_turns_of_one_case": harvested}


def main() -> None:
    from promed_agents.agents.patient import FactSelectPatient, LLMPatient
    from promed_agents.backends import resolve_chat_model, sampling_kwargs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llm-cases", type=int, default=3)
    parser.add_argument("--patient-model", default="local:smollm2")
    args = parser.parse_args()
    cases = load_cases(bundled_sample_path())
    report = {"turns": len(ADVERSARIAL_TURNS)}
    started = time.perf_counter()
    report["fact-select"] = asyncio.run(audit(FactSelectPatient(), cases, ADVERSARIAL_TURNS))
    model = resolve_chat_model(args.patient_model)
    model = model.bind(**sampling_kwargs(model, max_tokens=64, temperature=0.0))
    report[f"llm:{args.patient_model}"] = asyncio.run(
        audit(LLMPatient(model), cases[: args.llm_cases], ADVERSARIAL_TURNS))
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

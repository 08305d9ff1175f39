"""MediQ's abstaining doctor: a node before the doctor decides whether it may still ask.

    python examples/abstaining_doctor.py [--doctor SPEC] [--variant numerical|scale]

Before each doctor turn the node puts one extra question to the doctor model ("how likely
are you to choose the right option now?") and, at the threshold or above, tells it to
answer; below it, the doctor goes on asking. The graph is the stock consultation graph
with the node inserted through the public API (``doctor_hooks``); ``promed eval
--abstain numerical`` runs the same graph. Without ``--doctor`` a scripted doctor plays
the part: unsure until the patient has answered one question, then confident.
"""

from __future__ import annotations

import argparse
import asyncio

from promed_agents import bundled_sample_path, load_cases, partial_view
from promed_agents.agents.abstention import Abstention
from promed_agents.backends import resolve_chat_model
from promed_agents.backends.scripted_chat_model import ScriptedChatModel
from promed_agents.graphs import ConsultationContext, build_consultation_graph


def scripted_doctor() -> ScriptedChatModel:
    """Rates itself 0.4 before any reply from the patient and 0.9 after one; asks about
    the joint fluid, then answers C."""

    def respond(messages):
        replies = sum(str(m.content).startswith("Patient:") for m in messages)
        if "Before you go on" in str(messages[-1].content):
            return "0.9" if replies else "0.4"
        return "answer: C" if replies else "question: What did the joint fluid culture show?"

    return ScriptedChatModel(responder=respond, spec="scripted-abstaining-doctor")


# [docs:abstain]
def build_graph(variant: str, threshold: float):
    return build_consultation_graph(
        doctor_hooks=[("abstain", Abstention(variant=variant, threshold=threshold))])
# [/docs:abstain]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doctor", default=None, help="model spec [default: scripted]")
    parser.add_argument("--variant", default="numerical", choices=["numerical", "scale"])
    parser.add_argument("--threshold", type=float, default=0.8)
    args = parser.parse_args()
    case = load_cases(bundled_sample_path())[0]
    doctor = resolve_chat_model(args.doctor) if args.doctor else scripted_doctor()
    graph = build_graph(args.variant, args.threshold).compile()
    state = asyncio.run(graph.ainvoke(
        {"case": case, "view": partial_view(case)},
        context=ConsultationContext(doctor=doctor, max_questions=5)))
    for turn in state["turns"]:
        print(f"{turn.role.value:>8}: {turn.text}")
    print(f"confidence before each turn: {state.get('confidences')}")
    print(f"final answer {state['final_answer']}, correct {state['correct']}")


if __name__ == "__main__":
    main()

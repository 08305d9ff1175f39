"""Insert a custom node into the consultation graph: a safety check on every question.

    python examples/compose_graph.py [--doctor SPEC]

The factory returns an uncompiled StateGraph, so a user can add nodes and rewire edges
before compiling. Here a node between the doctor and the patient refuses questions that
ask for the answer outright ("which option...", "what is the answer..."); the refusal is
recorded as the patient's reply, and nothing about the case is disclosed.
"""

from __future__ import annotations

import argparse
import asyncio
import re

from langgraph.graph import END

from promed_agents import bundled_sample_path, load_cases, partial_view
from promed_agents.backends import resolve_chat_model
from promed_agents.graphs import (
    ConsultationContext,
    ConsultationState,
    build_consultation_graph,
    reply_instead,
)
from promed_agents.trace import TurnKind

FORBIDDEN = re.compile(r"\b(which option|what is the answer|correct answer)\b", re.IGNORECASE)
REFUSAL = "I can only tell you about my symptoms and history."


# [docs:hook]
def safety_check(state: ConsultationState) -> dict:
    """Refuse a forbidden question by answering it here, instead of the patient."""
    if not FORBIDDEN.search(state.get("pending_question") or ""):
        return {}  # the question goes on to the patient
    return reply_instead(state, REFUSAL)  # recorded as the patient's reply
# [/docs:hook]


def audit(state: dict) -> dict:
    """A node added after the last step: print a one-line audit of the episode."""
    questions = sum(t.kind is TurnKind.QUESTION for t in state["turns"])
    print(f"audit: {questions} question(s), answer {state.get('final_answer')}")
    return {}


# [docs:build]
def build_graph():
    # The safety check runs between each doctor question and the patient.
    graph = build_consultation_graph(question_hooks=[("safety_check", safety_check)])
    graph.add_node("audit", audit)
    graph.add_edge("evaluate_final", "audit")
    graph.add_edge("audit", END)
    return graph
# [/docs:build]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doctor", default="fake:question: Which option is correct?||"
                        "question: Do you have a fever?||answer: C")
    args = parser.parse_args()
    case = load_cases(bundled_sample_path())[0]
    graph = build_graph().compile()
    state = asyncio.run(graph.ainvoke(
        {"case": case, "view": partial_view(case)},
        context=ConsultationContext(doctor=resolve_chat_model(args.doctor), max_questions=3)))
    for turn in state["turns"]:
        print(f"{turn.role.value:>8}: {turn.text}")
    print(f"final answer {state['final_answer']}, correct {state['correct']}")


if __name__ == "__main__":
    main()

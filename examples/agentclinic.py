"""AgentClinic's three-actor consultation on the consultation graph: a doctor, a patient
actor and a measurement actor, and a moderator judging the diagnosis.

    python examples/agentclinic.py [--doctor SPEC] [--patient SPEC] [--measurement SPEC]
                                   [--judge SPEC] [--case N]

An open-ended case (a diagnosis, no options) starts from AgentClinic's objective, the
patient's demographics and chief complaint (policy ``initial``). Each doctor turn is a
question to the patient, a test order for the measurement agent (``test: <name>``), or
the diagnosis; the graph routes each to its actor, records what it revealed, scores its
SIG, and has the judge decide the diagnosis at the end. Any actor can be a model
(``llm:MODEL_SPEC``); the defaults need none. The cases are the 10 AgentClinic cases
shipped with the package (MIT).
"""

from __future__ import annotations

import argparse
import asyncio

from promed_agents import agentclinic_sample_path, load_cases, partial_view
from promed_agents.agents.evaluator import Evaluator
from promed_agents.agents.judge import resolve_judge
from promed_agents.agents.measurement import resolve_measurement
from promed_agents.agents.patient_spec import resolve_patient
from promed_agents.agents.reference_doctors import resolve_doctor
from promed_agents.graphs import ConsultationContext, build_consultation_graph

SCRIPT = ("fake:question: When did the double vision start?||test: Vital signs||"
          "test: Acetylcholine receptor antibodies||diagnosis: Myasthenia gravis")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doctor", default=SCRIPT, help="a model spec, bank:fixed, oracle")
    parser.add_argument("--patient", default="fact-select")
    parser.add_argument("--measurement", default="fact-select")
    parser.add_argument("--judge", default="rouge:0.5")
    parser.add_argument("--case", type=int, default=0, help="which of the 10 cases")
    args = parser.parse_args()
    case = load_cases(agentclinic_sample_path())[args.case]
    # [docs:actors]
    context = ConsultationContext(
        doctor=resolve_doctor(args.doctor),  # asks, orders tests, diagnoses
        patient=resolve_patient(args.patient),  # tells the history it is asked about
        measurement=resolve_measurement(args.measurement),  # reads out ordered results
        evaluator=Evaluator(judge=resolve_judge(args.judge)),  # the moderator
        max_questions=19)  # AgentClinic's 20 turns: 19 to ask or test, the last to diagnose
    graph = build_consultation_graph().compile()
    state = asyncio.run(graph.ainvoke(
        {"case": case, "view": partial_view(case, "initial")}, context=context,
        config={"recursion_limit": 200}))
    # [/docs:actors]
    print(f"objective: {case.question}")
    for turn in state["turns"]:
        sig = f"  (SIG {turn.sig:.3f})" if turn.sig is not None else ""
        print(f"{turn.role.value:>11}: {turn.text}{sig}")
    verdict = state["verdict"]
    print(f"tests ordered {state['tests']}, facts known {len(state['acquired'])} of "
          f"{len(case.facts)}")
    print(f"diagnosis {state['final_answer']} vs {case.diagnosis!r}: "
          + (f"{'right' if verdict.correct else 'wrong'} by {verdict.judge}" if verdict
             else "none given"))


if __name__ == "__main__":
    main()

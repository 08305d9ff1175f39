"""The measurement agent reveals what a test order names, and nothing the patient tells."""

from __future__ import annotations

import asyncio

import pytest

from promed_agents.agents.measurement import NO_RESULT, FactSelectMeasurement
from promed_agents.agents.patient import FactSelectPatient, patient_fact_ids
from promed_agents.loader import load_cases

from conftest import ROOT

CASE = load_cases(ROOT / "tests" / "data" / "agentclinic_sample.jsonl")[0]


def ordered(test):
    reply = asyncio.run(FactSelectMeasurement().order(CASE, test))
    return reply.text, [CASE.fact_sources[i].path for i in reply.disclosed_fact_ids]


@pytest.mark.parametrize("test, paths", [
    ("Chest CT", ["Test_Results.Imaging.Chest_CT.Findings"]),
    ("Acetylcholine receptor antibodies",
     ["Test_Results.Blood_Tests.Acetylcholine_Receptor_Antibodies"]),
    ("Vital signs", [f"Physical_Examination_Findings.Vital_Signs.{k}" for k in (
        "Temperature", "Blood_Pressure", "Heart_Rate", "Respiratory_Rate")]),
    ("Electromyography", ["Test_Results.Electromyography.Findings"]),
])
def test_an_order_reveals_the_measurements_it_names(test, paths):
    text, revealed = ordered(test)
    assert revealed == paths and text != NO_RESULT


@pytest.mark.parametrize("test", ["all tests", "everything", "Show me the results.",
                                  "Double vision", "Brain MRI"])
def test_an_order_that_names_nothing_or_a_symptom_reveals_nothing(test):
    assert ordered(test) == (NO_RESULT, [])


def test_the_patient_tells_only_the_patients_facts():
    measured = set(CASE.measurement_fact_ids())
    assert set(patient_fact_ids(CASE)) == set(range(len(CASE.facts))) - measured
    patient = FactSelectPatient()
    assert patient.select(CASE, "Do you have double vision?")  # a symptom: hers to tell
    assert patient.select(CASE, "What did the electromyography show?") == []
    assert patient.select(CASE, "What is your heart rate?") == []


def test_an_llm_measurement_words_the_results_but_states_only_what_the_order_names():
    from promed_agents.agents.measurement import LLMMeasurement
    from promed_agents.backends.scripted_chat_model import ScriptedChatModel

    vitals = FactSelectMeasurement().select(CASE, "Vital signs")
    heart = next(i for i in vitals if CASE.fact_sources[i].path.endswith("Heart_Rate"))
    seen = []

    def reads(messages):
        seen.append(messages)
        return f"Results: {CASE.facts[heart]}"

    worded = ScriptedChatModel(responder=reads)
    reply = asyncio.run(LLMMeasurement(model=worded).order(CASE, "Vital signs"))
    assert reply.disclosed_fact_ids == [heart] and reply.text.startswith("Results: ")
    assert "Vital Signs Heart Rate" in seen[0][0].content  # the findings it reads
    assert seen[0][1].content == "Vital signs"
    ct = next(i for i, s in enumerate(CASE.fact_sources) if "Chest_CT" in (s.path or ""))
    harvest = ScriptedChatModel(responses=[f"{CASE.facts[heart]} {CASE.facts[ct]}"])
    replaced = asyncio.run(LLMMeasurement(model=harvest).order(CASE, "Vital signs"))
    assert replaced.disclosed_fact_ids == vitals  # the order's facts, verbatim
    assert replaced.text == " ".join(CASE.facts[i] for i in vitals)
    silent = ScriptedChatModel(responder=lambda messages: seen.append(messages) or "made up")
    calls = len(seen)
    nothing = asyncio.run(LLMMeasurement(model=silent).order(CASE, "all tests"))
    assert nothing.text == NO_RESULT and len(seen) == calls  # no call, nothing made up


def test_measurement_specs():
    from promed_agents.agents.measurement import LLMMeasurement, resolve_measurement
    from promed_agents.errors import ConsultationError

    assert isinstance(resolve_measurement("fact-select"), FactSelectMeasurement)
    assert isinstance(resolve_measurement("llm:fake:Results: normal"), LLMMeasurement)
    with pytest.raises(ConsultationError, match="use fact-select or llm:MODEL_SPEC"):
        resolve_measurement("oracle")


def test_neither_llm_actor_may_name_the_diagnosis():
    from promed_agents.agents.measurement import LLMMeasurement
    from promed_agents.agents.patient import LLMPatient
    from promed_agents.backends.scripted_chat_model import ScriptedChatModel

    vitals = FactSelectMeasurement().select(CASE, "Vital signs")
    heart = next(i for i in vitals if CASE.fact_sources[i].path.endswith("Heart_Rate"))
    telling = ScriptedChatModel(responses=[
        f"{CASE.facts[heart]}, consistent with myasthenia gravis."])
    reply = asyncio.run(LLMMeasurement(model=telling).order(CASE, "Vital signs"))
    assert "myasthenia" not in reply.text.lower() and reply.disclosed_fact_ids == vitals
    patient = LLMPatient(model=ScriptedChatModel(responses=[
        "I have double vision; my doctor thinks it is Myasthenia gravis."]))
    said = asyncio.run(patient.reply(CASE, "Do you have double vision?"))
    assert "myasthenia" not in said.text.lower()

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

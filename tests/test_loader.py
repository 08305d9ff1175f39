from __future__ import annotations

import json

import pytest

from promed_agents.case import FactSource
from promed_agents.errors import CaseFormatError
from promed_agents.loader import (
    CaseFormat,
    bundled_sample_path,
    detect_format,
    iter_located_cases,
    load_cases,
)
from promed_agents.partial_view import partial_view

from conftest import MEDIQ_RECORD, ROOT, shared_file
from malformed_inputs import MALFORMED


def test_imedqa_dev_loads_all_1000_cases():
    cases = load_cases(shared_file("mediq/imedqa_dev.jsonl"), split="dev")
    assert len(cases) == 1000
    first = cases[0]
    assert first.id == "imedqa-0" and first.source == "imedqa" and first.split == "dev"
    assert first.facts[0] == "Patient is a 21-year-old male."  # "1. " prefix stripped
    assert first.answer == ["C"] and first.answer_text == "Ceftriaxone"
    assert first.demographics["gender"] == "Male"
    assert not any(f[:1].isdigit() and ". " in f[:4] for c in cases for f in c.facts)
    no_vignette = [c.id for c in cases if not c.facts]
    assert no_vignette == ["imedqa-224", "imedqa-298", "imedqa-779"]
    assert all(not c.context for c in cases if not c.facts)


def test_promed_medqa_example_loads():
    cases = load_cases(shared_file("promed_format/medqa_atomic_example.jsonl"))
    assert [c.id for c in cases] == ["medqa-1", "medqa-9"]
    assert cases[0].question == "Which of the following precautions could have prevented " \
                                "the death of the baby?"
    assert cases[0].context[1].startswith("His mother")  # leading space stripped
    assert cases[1].answer == ["E"] and len(cases[1].options) == 5


def test_promed_cmb_example_loads_as_chinese_with_derived_context():
    (case,) = load_cases(shared_file("promed_format/cmb_atomic_example.json"))
    assert case.id == "cmb-10010" and case.language == "zh" and case.answer == ["D"]
    assert case.question == "下述哪项与孕妇糖尿病无关？"
    assert case.context[0].startswith("孕妇31岁") and case.context[0].endswith("。")
    assert not any("下述哪项" in sentence for sentence in case.context)
    assert len(case.facts) == 9


def test_bundled_sample_has_50_cases_and_attribution():
    assert len(load_cases(bundled_sample_path())) == 50
    attribution = (bundled_sample_path().parent / "ATTRIBUTION.md").read_text()
    assert "CC BY 4.0" in attribution and "MediQ" in attribution


def test_multi_letter_cmb_answer(tmp_path):
    record = {"id": 3, "question": "问题", "atomic_question": "问题", "answer": "BA",
              "option": {"A": "甲", "B": "乙", "C": "丙"}, "facts": ["事实"]}
    path = tmp_path / "cmb.json"
    path.write_text(json.dumps([record]), encoding="utf-8")
    assert load_cases(path)[0].answer == ["A", "B"]


def test_limit_and_locations(tmp_path):
    path = tmp_path / "cases.jsonl"
    lines = [json.dumps({**MEDIQ_RECORD, "id": i}) for i in range(5)]
    path.write_text("\n".join(lines[:2]) + "\n\n" + "\n".join(lines[2:]) + "\n")
    located = list(iter_located_cases(path, limit=3))
    assert [loc for loc, _ in located] == ["line 1", "line 2", "line 4"]
    assert len(load_cases(path, limit=0)) == 0


def test_explicit_format_overrides_detection(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps(MEDIQ_RECORD) + "\n")
    with pytest.raises(CaseFormatError, match="field 'atomic_question': is missing"):
        load_cases(path, CaseFormat.PROMED_MEDQA)
    with pytest.raises(CaseFormatError, match="unknown format 'csv'"):
        load_cases(path, "csv")


def test_detect_format():
    assert detect_format(MEDIQ_RECORD) is CaseFormat.MEDIQ
    assert detect_format({"atomic_question": "q", "options": {}}) is CaseFormat.PROMED_MEDQA
    assert detect_format({"option": {}, "facts": []}) is CaseFormat.PROMED_CMB
    assert detect_format({"text": "hi"}) is None


def test_unreadable_files(tmp_path):
    with pytest.raises(CaseFormatError, match="no such file"):
        load_cases(tmp_path / "absent.jsonl")
    binary = tmp_path / "latin1.jsonl"
    binary.write_bytes(b'{"id": 1, "question": "caf\xe9"}\n')
    with pytest.raises(CaseFormatError, match="not UTF-8"):
        load_cases(binary)
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"id": 1, "text": "hi"}) + "\n")
    with pytest.raises(CaseFormatError, match="line 1: cannot tell the file's format.*--format"):
        load_cases(unknown)


@pytest.mark.parametrize("name, suffix, text, location, field, problem",
                         MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_input_names_file_location_and_field(tmp_path, name, suffix, text,
                                                       location, field, problem):
    path = tmp_path / f"{name}{suffix}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CaseFormatError) as caught:
        load_cases(path)
    error = caught.value
    assert error.path == str(path)
    assert error.location == location
    assert error.field == field
    assert problem in error.problem
    message = str(error)
    assert message.startswith(f"{path}:{location}: ") and "\n" not in message
    if field:
        assert f"field '{field}'" in message


def test_a_source_names_the_benchmark_and_prefixes_the_ids(tmp_path):
    craft = tmp_path / "all_craft_md.jsonl"
    craft.write_text(bundled_sample_path().read_text().splitlines()[0] + "\n")
    (detected,) = load_cases(craft)
    assert (detected.id, detected.source) == ("craftmd-0", "craftmd")
    (named,) = load_cases(bundled_sample_path(), source="craftmd", limit=1)
    assert (named.id, named.source) == ("craftmd-0", "craftmd")
    (default,) = load_cases(bundled_sample_path(), limit=1)
    assert (default.id, default.source) == ("imedqa-0", "imedqa")
    (medqa,) = load_cases(shared_file("promed_format/medqa_atomic_example.jsonl"),
                          source="medqa-usmle", limit=1)
    assert medqa.id.startswith("medqa-usmle-") and medqa.source == "medqa-usmle"
    with pytest.raises(CaseFormatError, match="source 'Craft MD' is not a plain name"):
        load_cases(bundled_sample_path(), source="Craft MD")


def test_the_bundled_sample_is_split_dev_like_the_file_it_comes_from():
    from promed_agents.loader import SAMPLE_SPLIT, bundled_sample

    dev = load_cases(shared_file("mediq/imedqa_dev.jsonl"), split="dev", limit=50)
    assert SAMPLE_SPLIT == "dev" and bundled_sample() == dev


AGENTCLINIC_SAMPLE = ROOT / "tests" / "data" / "agentclinic_sample.jsonl"


def test_agentclinic_cases_load_open_ended_with_each_facts_source():
    cases = load_cases(AGENTCLINIC_SAMPLE)
    assert [c.id for c in cases] == ["agentclinic-0", "agentclinic-1", "agentclinic-2"]
    case = cases[0]
    assert case.open_ended and case.options == {} and case.answer == []
    assert case.diagnosis == "Myasthenia gravis" and case.question.startswith("Assess and")
    by_text = dict(zip(case.facts, case.fact_sources, strict=True))
    assert by_text["Chest CT findings: Normal, no thymoma or other masses detected."] == \
        FactSource(kind="measurement", path="Test_Results.Imaging.Chest_CT.Findings")
    assert by_text["Secondary symptoms: Weakness in upper limbs"] == FactSource(
        kind="patient", path="Patient_Actor.Symptoms.Secondary_Symptoms[1]")
    assert by_text["Works as a graphic designer."].path == "Patient_Actor.Social_History"
    assert [case.facts[i] for i in case.initial_fact_ids] == [
        "Demographics: 35-year-old female", "Primary symptom: Double vision"]
    view = partial_view(case, "initial")
    assert view.known_fact_ids == case.initial_fact_ids
    assert len(case.measurement_fact_ids()) == 11
    assert not any("not provided" in f.lower() for c in cases for f in c.facts)


def test_all_107_agentclinic_cases_load():
    cases = load_cases(shared_file("agentclinic/agentclinic_medqa.jsonl"))
    assert len(cases) == 107 and all(c.open_ended and c.measurement_fact_ids() for c in cases)
    assert all(len(c.initial_fact_ids) == 2 for c in cases)


def test_the_plain_open_ended_format(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({
        "id": 7, "question": "What is the diagnosis?", "diagnosis": "Gout",
        "recommendation": "Colchicine", "initial_facts": [0],
        "facts": ["A 60-year-old man.", {"text": "Joint fluid: urate crystals.",
                                         "kind": "measurement", "path": "labs.fluid"}]}) + "\n")
    (case,) = load_cases(path)
    assert (case.id, case.diagnosis, case.recommendation) == ("open-7", "Gout", "Colchicine")
    assert case.measurement_fact_ids() == [1] and case.initial_fact_ids == [0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": 1, "question": "Q?", "facts": ["a"], "diagnosis": "x",
                               "initial_facts": [3]}) + "\n")
    with pytest.raises(CaseFormatError, match=r"bad.jsonl:line 1: initial_fact_ids \[3\]"):
        load_cases(bad)


def test_the_initial_policy_needs_a_case_that_says():
    from promed_agents.errors import PartialInfoError

    with pytest.raises(PartialInfoError, match="policy 'initial' needs the facts"):
        partial_view(load_cases(bundled_sample_path(), limit=1)[0], "initial")

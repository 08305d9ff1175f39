"""A patient from its spec: the harvest-proof fact-select patient or an LLM patient."""

from __future__ import annotations

import pytest

from promed_agents.agents import FactSelectPatient, LLMPatient, resolve_patient
from promed_agents.errors import ConsultationError


def test_specs_name_the_two_patients():
    assert isinstance(resolve_patient("fact-select"), FactSelectPatient)
    llm = resolve_patient("llm:fake:I have had a cough for a week.")
    assert isinstance(llm, LLMPatient)


@pytest.mark.parametrize("spec", ["", "llm:", "fact", "gpt-4"])
def test_a_bad_spec_is_one_error_naming_the_choices(spec):
    with pytest.raises(ConsultationError, match="use fact-select or llm:MODEL_SPEC"):
        resolve_patient(spec)

"""``promed_agents.agents``: the consultation's participants and judge.

case -> **consultation graph (doctor, patient, evaluator)** -> trace in SQL -> Shapley/SIG
-> MCTS-SFT / GRPO -> evaluation

- :mod:`.doctor`: the doctor's prompts, turn format and parser (:mod:`.open_doctor`: an
  open-ended case's, with test orders and a diagnosis);
- :mod:`.patient`: the harvest-proof fact-select patient and the LLM patient;
  :mod:`.patient_spec` picks one from a spec;
- :mod:`.measurement`: the measurement agent answering open-ended cases' test orders;
  ``resolve_measurement`` picks one from a spec;
- :mod:`.evaluator`: each reply's Shapley information gain and the final score;
- :mod:`.judge`: judges of free-text diagnoses; ``resolve_judge`` picks one from a spec;
- :mod:`.knowledge_summary`: what the doctor knows, summarised;
- :mod:`.question_bank`, :mod:`.reference_doctors`: the history-taking bank and the
  model-free doctors (``bank:random``, ``bank:fixed``, ``oracle``); ``resolve_doctor``
  picks a doctor from a spec;
- :mod:`.abstention`: MediQ's abstaining doctor, a node that lets the doctor ask only
  while it is not confident enough to answer.
"""

from promed_agents.agents.abstention import Abstention
from promed_agents.agents.doctor import DoctorTurn, doctor_sampling, parse_doctor_turn
from promed_agents.agents.evaluator import Evaluator, FinalScore, ReplyScore, uniform_weights
from promed_agents.agents.judge import Judge, resolve_judge
from promed_agents.agents.knowledge_summary import KnowledgeSummary
from promed_agents.agents.measurement import (
    FactSelectMeasurement,
    LLMMeasurement,
    Measurement,
    resolve_measurement,
)
from promed_agents.agents.patient import FactSelectPatient, LLMPatient, Patient, PatientReply
from promed_agents.agents.patient_spec import resolve_patient
from promed_agents.agents.question_bank import bank_questions, rank_by_yield
from promed_agents.agents.reference_doctors import BankDoctor, OracleDoctor, resolve_doctor

__all__ = ["Abstention", "BankDoctor", "DoctorTurn", "Evaluator", "FactSelectMeasurement",
           "FactSelectPatient", "FinalScore", "Judge", "KnowledgeSummary", "LLMMeasurement",
           "LLMPatient", "Measurement", "OracleDoctor", "Patient", "PatientReply",
           "ReplyScore", "bank_questions", "doctor_sampling", "parse_doctor_turn",
           "rank_by_yield", "resolve_doctor", "resolve_judge", "resolve_measurement",
           "resolve_patient", "uniform_weights"]

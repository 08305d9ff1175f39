"""Malformed case files shared by the loader and CLI tests.

Each entry: (name, file suffix, file text, expected location, expected field, message part).
Most files start with a valid record, so an importer that wrote record by record would
leave something behind.
"""

from __future__ import annotations

import copy
import json

from conftest import MEDIQ_RECORD


def _line(**changes) -> str:
    record = copy.deepcopy(MEDIQ_RECORD)
    for key, value in changes.items():
        if value is _DROP:
            record.pop(key)
        else:
            record[key] = value
    return json.dumps(record, ensure_ascii=False)


_DROP = object()
GOOD = _line(id=100)
CMB = {"id": 1, "question": "孕妇31岁。下述哪项正确", "atomic_question": "下述哪项正确",
       "option": {"A": "甲", "B": "乙"}, "answer": "A", "facts": ["患者是女性"]}

MALFORMED = [
    ("bad-json", ".jsonl", GOOD + "\n{\"id\": 8, \"question\": \n", "line 2", None,
     "invalid JSON"),
    ("truncated-array", ".json", json.dumps([CMB], ensure_ascii=False)[:-3], "line 1", None,
     "invalid JSON"),
    ("not-an-object", ".jsonl", GOOD + "\n[1, 2, 3]\n", "line 2", None,
     "expected a JSON object"),
    ("missing-facts", ".jsonl", GOOD + "\n" + _line(facts=_DROP) + "\n", "line 2", "facts",
     "is missing"),
    ("empty-facts", ".jsonl", GOOD + "\n" + _line(facts=[]) + "\n", "line 2", "facts",
     "is empty but context has 2"),
    ("blank-fact", ".jsonl", GOOD + "\n" + _line(facts=["1. ok", "  "]) + "\n", "line 2",
     "facts", "item 1 is empty"),
    ("answer-not-an-option", ".jsonl", GOOD + "\n" + _line(answer_idx="E") + "\n", "line 2",
     "answer_idx", "'E' is not among the options A, B, C, D"),
    ("empty-options", ".jsonl", GOOD + "\n" + _line(options={}) + "\n", "line 2", "options",
     "at least one option"),
    ("duplicate-id", ".jsonl", GOOD + "\n" + GOOD + "\n", "line 2", "id",
     "duplicate id 'imedqa-100' (first at line 1)"),
    ("facts-wrong-type", ".jsonl", GOOD + "\n" + _line(facts="1. a fact") + "\n", "line 2",
     "facts", "valid list, got str"),
    ("option-wrong-type", ".jsonl", GOOD + "\n" + _line(options={"A": 1, "B": "x"}) + "\n",
     "line 2", "options.A", "valid string, got int"),
    ("id-wrong-type", ".jsonl", GOOD + "\n" + _line(id=[7]) + "\n", "line 2", "id",
     "must be an integer or a non-empty string, got [7]"),
    ("empty-question", ".jsonl", GOOD + "\n" + _line(question="") + "\n", "line 2",
     "question", "at least 1 character"),
    ("cmb-answer-not-an-option", ".json",
     json.dumps([CMB, {**CMB, "id": 2, "answer": "AC"}], ensure_ascii=False), "[1]", "answer",
     "'C' is not among the options A, B"),
    ("cmb-option-key", ".json", json.dumps([CMB, {**CMB, "id": 2, "option": {"1": "甲"}}],
                                           ensure_ascii=False), "[1]", "option",
     "not a single capital letter"),
    ("unknown-format", ".jsonl", GOOD + "\n" + json.dumps({"id": 1, "text": "hi"}) + "\n",
     "line 2", "question", "is missing"),
    ("missing-question", ".jsonl", GOOD + "\n" + _line(question=_DROP) + "\n", "line 2",
     "question", "is missing"),
    ("missing-options", ".jsonl", GOOD + "\n" + _line(options=_DROP) + "\n", "line 2",
     "options", "is missing"),
    ("missing-answer", ".jsonl", GOOD + "\n" + _line(answer_idx=_DROP) + "\n", "line 2",
     "answer_idx", "is missing"),
    ("options-a-list", ".jsonl", GOOD + "\n" + _line(options=["x", "y"]) + "\n", "line 2",
     "options", "valid dictionary, got list"),
    ("option-key-two-letters", ".jsonl", GOOD + "\n" + _line(options={"AB": "x", "B": "y"})
     + "\n", "line 2", "options", "option key 'AB' is not a single capital letter"),
    ("answer-lowercase", ".jsonl", GOOD + "\n" + _line(answer_idx="a") + "\n", "line 2",
     "answer_idx", "'a' is not among the options A, B, C, D"),
    ("answer-a-number", ".jsonl", GOOD + "\n" + _line(answer_idx=2) + "\n", "line 2",
     "answer_idx", "valid string, got int"),
    ("fact-a-number", ".jsonl", GOOD + "\n" + _line(facts=["ok", 5]) + "\n", "line 2",
     "facts[1]", "valid string, got int"),
    ("question-a-number", ".jsonl", GOOD + "\n" + _line(question=42) + "\n", "line 2",
     "question", "valid string, got int"),
    ("id-empty", ".jsonl", GOOD + "\n" + _line(id="") + "\n", "line 2", "id",
     "must be an integer or a non-empty string, got ''"),
    ("json-null", ".jsonl", GOOD + "\nnull\n", "line 2", None,
     "expected a JSON object, got NoneType"),
    ("trailing-garbage", ".jsonl", GOOD + "\n" + _line(id=7) + " xyz\n", "line 2", None,
     "invalid JSON: Extra data"),
    ("top-level-string", ".json", json.dumps("hello"), "line 1", None,
     "cannot tell the file's format"),
]

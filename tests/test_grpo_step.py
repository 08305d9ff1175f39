"""The GPU script's SIG-GRPO step comparison: both trainers see the same consultations."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from grpo_step import consultations, word_tokenizer  # noqa: E402

from promed_agents.graphs.token_sequence import policy_samples, stitch  # noqa: E402

SIZES = Namespace(groups=2, num_generations=3, turns=3, prompt_tokens=5, doctor_tokens=4,
                  reply_tokens=6)


def test_consultations_stitch_into_doctor_and_patient_tokens():
    episodes = consultations(100, SIZES)
    assert len(episodes) == 6 and [e.case_id for e in episodes[:3]] == ["case-0"] * 3
    for episode in episodes:
        sequence = stitch(policy_samples(episode))
        assert sequence is not None and sequence.dropped == 0
        assert len(sequence.prompt_ids) == 5
        # three doctor turns of 4 tokens, two patient replies of 6 between them
        assert sequence.policy_mask == [1] * 4 + [0] * 6 + [1] * 4 + [0] * 6 + [1] * 4
        words = sequence.prompt_ids + sequence.completion_ids
        assert all(3 <= t < 100 for t in words[:-1]) and words[-1] == 2  # ends the turn
    questions = [t for e in episodes for t in e.turns if t.kind == "question"]
    assert any(t.sig for t in questions) and all(t.sig is not None for t in questions)


def test_the_word_tokenizer_covers_the_vocabulary():
    tokenizer = word_tokenizer(50)
    assert len(tokenizer) == 50 and tokenizer.pad_token_id == 1
    assert tokenizer.decode([7, 8]) == "w7 w8"

"""Lexical text similarity: content tokens and their overlap.

case -> **partial view / patient / evaluator** -> trace in SQL -> ...

Used where a cheap, deterministic notion of "this text states that fact" is needed: mapping
a first sentence to facts, a fact-select patient choosing facts for a question, a fact
checker reading a free-text reply. Words are lower-cased, stripped of a few English
suffixes and stopwords; numbers are kept whole; Chinese runs become character bigrams.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"(?P<num>\d+(?:\.\d+)?)|(?P<cjk>[\u4e00-\u9fff]+)|(?P<word>[^\W\d_]+)")
STOPWORDS = frozenset(
    "a an the of and or in on at to for with by is are was were be been has have had his her "
    "their its this that patient patients he she they it who which as from do does did you "
    "your any what how when where why there about me my i tell please can could would "
    "患者".split()
)
_SUFFIXES = ("ing", "ed", "es", "s")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def content_tokens(text: str) -> tuple[set[str], set[str]]:
    """``(tokens, numbers)`` of ``text``: stemmed content words / Chinese bigrams, numbers."""
    tokens: set[str] = set()
    numbers: set[str] = set()
    for m in _TOKEN.finditer(text.lower()):
        if m.group("num"):
            numbers.add(m.group("num"))
        elif m.group("cjk"):
            run = m.group("cjk").replace("患者", "")
            tokens.update(run[i : i + 2] for i in range(max(len(run) - 1, 1)) if run[i : i + 2])
        elif m.group("word") not in STOPWORDS:
            tokens.add(_stem(m.group("word")))
    return tokens, numbers


def coverage(part: str, whole: str) -> float:
    """Fraction of ``part``'s content tokens (numbers included) that occur in ``whole``."""
    part_tokens, part_numbers = content_tokens(part)
    whole_tokens, whole_numbers = content_tokens(whole)
    total = len(part_tokens) + len(part_numbers)
    if total == 0:
        return 0.0
    return (len(part_tokens & whole_tokens) + len(part_numbers & whole_numbers)) / total

"""Lexical text similarity: content tokens and their overlap.

case -> **partial view / patient / evaluator** -> trace in SQL -> ...

Used where a cheap, deterministic notion of "this text states that fact" is needed: mapping
a first sentence to facts, a fact-select patient choosing facts for a question, a fact
checker reading a free-text reply. Words are lower-cased, stripped of a few English
suffixes and stopwords; numbers are kept whole; Chinese runs become character bigrams.
:class:`TermWeights` weighs tokens by inverse document frequency over a corpus of facts
(bundled: the iMedQA dev facts), so that a patient can tell a question naming a topic
from one made of words that occur in most facts.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

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


QUESTION_WORDS = frozenset(content_tokens(
    # asking
    "show shows showed shown showing reveal reveals revealed result results finding findings "
    "find found more everything else anything other others know known detail details "
    "describe explain happen happened wrong information list continue go yes new thing "
    "things something all look looks say said says tell told ask asked "
    # time, order and amount
    "after before since during within while ago last first second third next then now "
    "today time times recent recently current currently prior previous following follow "
    "start started several few multiple one two three both only also but because due "
    "than well up back over under without about approximately similar same "
    # setting, reporting and judgement, not a finding
    "brought come came room emergency department physician doctor clinic visit care "
    "hospital report reported evaluation evaluate perform performed appear appears "
    "demonstrate demonstrates notice noticed develop developed include includes type "
    "side significant notable unremarkable normal abnormal negative positive remarkable "
    "结果 显示 更多 一切 其他 情况 什么 告诉 所有")[0])
"""Words that name no topic: of asking ("show", "results", "anything else"), of time and
amount ("after", "several"), of setting and judgement ("emergency department",
"significant", "normal"). They match no fact, so a question made only of them (``"What do
the results show?"``, ``"Anything significant after that?"``) names no topic."""


class TermWeights:
    """Inverse document frequency of content tokens over a corpus of facts: a word in
    most facts ("year", "shows", "examination") weighs little, a topic word ("murmur",
    "hepatosplenomegaly") much. A token the corpus never saw weighs ``log(documents)``,
    as a word seen once."""

    def __init__(self, document_frequency: dict[str, int], documents: int):
        self.document_frequency, self.documents = document_frequency, documents
        self._ceiling = math.log(documents) if documents > 1 else 1.0

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> TermWeights:
        """Weights from ``texts``, each one document (a fact)."""
        frequency: Counter[str] = Counter()
        documents = 0
        for text in texts:
            frequency.update(matching_tokens(text))
            documents += 1
        return cls(dict(frequency), documents)

    @classmethod
    def load(cls, path: str | Path) -> TermWeights:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(data["document_frequency"], data["documents"])

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(
            {"documents": self.documents, "document_frequency": dict(sorted(
                self.document_frequency.items()))}, ensure_ascii=False, indent=0) + "\n",
            encoding="utf-8")

    def weight(self, token: str) -> float:
        seen = self.document_frequency.get(token, 0)
        return math.log(self.documents / seen) if seen else self._ceiling


@functools.lru_cache(maxsize=65536)
def matching_tokens(text: str) -> frozenset[str]:
    """Content tokens and numbers (``#`` + number) of ``text`` that can name a topic:
    :func:`content_tokens` without :data:`QUESTION_WORDS` (cached: a patient reads the
    same facts for every question)."""
    tokens, numbers = content_tokens(text)
    return frozenset((tokens - QUESTION_WORDS) | {f"#{number}" for number in numbers})


@functools.cache
def bundled_term_weights() -> TermWeights:
    """Weights over the 11,118 facts of the 1,000 iMedQA dev cases (MediQ, CC BY 4.0; see
    ``promed_agents/data/ATTRIBUTION.md``)."""
    return TermWeights.load(resources.files("promed_agents.data") / "fact_term_weights.json")

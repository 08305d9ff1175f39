"""Reference doctors without a model: the question bank asked at random or in a fixed
order, and an oracle asking about the unknown facts themselves.

case -> partial view -> **doctor** <-> patient -> evaluator -> trace in SQL -> evaluation

They are chat models (LangChain ``BaseChatModel``), so they run in the consultation graph
like any doctor and their episodes are stored and evaluated like any other; they have no
token ids or log-probabilities, so no trainer learns from them. They read the case, not
the prompt: the graph passes each call the consultation so far
(:class:`~promed_agents.agents.doctor.ConsultationSoFar`: the case, what the doctor was
shown, the questions asked, the replies, whether only an answer is allowed), so a change
to the prompt's wording cannot change what they do. They are baselines and
the physical limit of information acquired, nothing else:

- ``bank:random`` asks a random unasked bank question each turn until the budget is
  spent (the graph's final request), then answers. The draw is a function of the seed
  (``--seeds`` passes one per run), the case and the questions asked so far, so a run is
  reproducible.
  As an MCTS proposer (``bank``), it widens a node in the bank's best order: told the
  turns its siblings already took (``exclude``), it proposes the first unasked question
  none of them asked, and a new node's first proposal is the script's next question. So
  every path of a search is the best script with deviations where the tree found that a
  deviation pays, and SFT on the best paths teaches one consistent rule: the script,
  except where the case says otherwise.
- ``bank:fixed`` asks the bank in its order: the bundled bank's order is its best script,
  ranked by yield on training cases (:func:`~promed_agents.agents.question_bank.rank_by_yield`);
  ``bank:fixed:FILE`` takes a bank file in the order it lists.
- ``bank:similar`` reads the case: each turn it asks the bank question that acquired most
  on the known (training) cases most like this one, after what it has asked
  (:mod:`~promed_agents.agents.similar_cases`); ``bank:similar:SPLIT`` takes the known
  cases from the store's split ``SPLIT`` (default ``train``). As an MCTS proposer it
  widens each node in that order, so a search's paths are chosen for the case.
- ``oracle`` asks about each unknown fact by the fact's own text, in the case's order:
  an upper bound for what questions can acquire under the patient's per-reply cap.

Their final answer follows one fixed rule: the option whose text shares most
inverse-document-frequency weight with what the doctor knows (the opening and the
patient's replies), the first option on a tie. On the embedded model's cases this is
near chance; the answer is not what they are for.

On an open-ended case (a diagnosis, no options) they also order tests from the
measurement agent. The bank doctors alternate a history question (the bank without its
examination, laboratory, imaging and vital-sign questions, which the patient cannot
answer there) and a test order from the bank's tests (:func:`~promed_agents.agents.
question_bank.bank_tests`), in the bank's orders (``bank:similar`` uses that order too:
its known cases are multiple-choice); the oracle asks each unknown patient fact by its
text and orders each unknown measurement fact by its field's name. They cannot name a
diagnosis, so each ends with :data:`OPEN_REFERENCE_DIAGNOSIS` (judged wrong): on
open-ended cases they are references for asking, not for accuracy.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from promed_agents.agents.doctor import ConsultationSoFar, answer_turn
from promed_agents.agents.measurement import path_words
from promed_agents.agents.open_doctor import diagnosis_turn
from promed_agents.agents.question_bank import (
    bank_questions,
    bank_tests,
    case_language,
    history_questions,
)
from promed_agents.agents.similar_cases import SimilarCases
from promed_agents.backends.model_spec import ModelSpec, resolve_chat_model
from promed_agents.case import Case
from promed_agents.errors import BackendError
from promed_agents.text_similarity import bundled_term_weights, matching_tokens

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

ORDERS = ("random", "fixed", "similar")
OPEN_REFERENCE_DIAGNOSIS = diagnosis_turn("undetermined")
"""How a reference doctor ends an open-ended consultation: it cannot name a diagnosis."""
KNOWN_SPLIT = "train"
"""Where ``bank:similar`` takes its known cases from, unless its spec names a split."""


def answer_by_overlap(consultation: ConsultationSoFar) -> str:
    """``answer: X``, X the option sharing most weight with what the doctor knows."""
    known_tokens = matching_tokens(consultation.known_text())
    weight = bundled_term_weights().weight

    def score(option: tuple[str, str]) -> float:
        return sum(weight(t) for t in matching_tokens(option[1]) & known_tokens)

    options = list(consultation.case.options.items())
    best = max(options, key=score) if options else ("A", "")
    return answer_turn([best[0]])


class _ReferenceDoctor(BaseChatModel):
    spec: str = "reference"
    reads_consultation: bool = True
    """The consultation graph tells it the case and the consultation so far
    (:class:`~promed_agents.agents.doctor.ConsultationSoFar`): it reads no prompt."""

    @property
    def _llm_type(self) -> str:
        return "promed-reference"

    def turn(self, consultation: ConsultationSoFar, seed: int | None,
             exclude: Sequence[str] = ()) -> str:
        raise NotImplementedError

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        consultation = kwargs.get("consultation")
        if not isinstance(consultation, ConsultationSoFar):
            raise BackendError(f"the {self.spec} doctor reads the consultation, not a "
                               "prompt: run it in the consultation graph (ConsultationContext"
                               "(doctor=...)), which passes it")
        seed = kwargs.get("seed")
        text = self.turn(consultation, seed if isinstance(seed, int) else None,
                         kwargs.get("exclude") or ())
        return ChatResult(generations=[ChatGeneration(message=AIMessage(
            text, response_metadata={"model": self.spec}))])


class BankDoctor(_ReferenceDoctor):
    """Asks the question bank, at random or in order, then answers by overlap."""

    order: str = "random"
    questions: dict[str, list[str]] = {}
    """The bank by language (``en``, ``zh``); empty: the bundled bank."""
    widens_in_order: bool = False
    """An MCTS proposer: propose the first unasked question that no sibling took (the
    ``exclude`` keyword of a call), in the bank's order."""
    similar: SimilarCases | None = None
    """For ``order="similar"``: ranks the bank for each case."""
    tests: dict[str, list[str]] = {}
    """Open-ended cases' test orders by language; empty: the bundled bank's."""

    def model_post_init(self, __context: Any) -> None:
        if self.order not in ORDERS:
            raise BackendError(f"bank order {self.order!r}: use random, fixed or similar")
        if (self.order == "similar") != (self.similar is not None):
            raise BackendError("bank order 'similar' needs, and only it takes, similar cases")
        if not self.questions:
            self.questions = {"en": bank_questions("en"), "zh": bank_questions("zh")}
        if not self.tests:
            self.tests = {"en": bank_tests("en"), "zh": bank_tests("zh")}

    def turn(self, consultation: ConsultationSoFar, seed: int | None,
             exclude: Sequence[str] = ()) -> str:
        case = consultation.case
        language = case_language(case) if case_language(case) in self.questions else "en"
        if case.open_ended:
            return self._open_turn(consultation, language, seed, exclude)
        asked = set(consultation.asked)
        left = [q for q in self.questions[language] if q not in asked]
        if consultation.final_requested or not left:
            return answer_by_overlap(consultation)
        if self.similar is not None:
            left = self.similar.ranked(case, consultation.view, sorted(asked))
        if self.widens_in_order:
            taken = {str(text).partition(":")[2].strip() for text in exclude}
            return f"question: {next((q for q in left if q not in taken), left[0])}"
        if self.order != "random":
            return f"question: {left[0]}"
        digest = hashlib.sha256(f"{seed or 0}\x00{case.id}\x00{len(asked)}".encode())
        return f"question: {random.Random(digest.digest()).choice(left)}"

    def _open_turn(self, consultation: ConsultationSoFar, language: str, seed: int | None,
                   exclude: Sequence[str]) -> str:
        """An open-ended case's turn: history questions and test orders alternated."""
        asked, ordered = set(consultation.asked), set(consultation.ordered)
        questions = [f"question: {q}" for q in history_questions(self.questions[language])]
        tests = [f"test: {t}" for t in self.tests.get(language, self.tests["en"])]
        script = [t for pair in zip(questions, tests, strict=False) for t in pair]
        script += questions[len(tests):] + tests[len(questions):]
        said = {f"question: {q}" for q in asked} | {f"test: {t}" for t in ordered}
        turns = [t for t in script if t not in said]
        if consultation.final_requested or not turns:
            return OPEN_REFERENCE_DIAGNOSIS
        if self.widens_in_order:
            taken = {str(text).strip() for text in exclude}
            return next((t for t in turns if t not in taken), turns[0])
        if self.order != "random":
            return turns[0]
        digest = hashlib.sha256(f"{seed or 0}\x00{consultation.case.id}\x00"
                                f"{len(asked) + len(ordered)}".encode())
        return random.Random(digest.digest()).choice(turns)


class OracleDoctor(_ReferenceDoctor):
    """Asks about each fact the doctor does not know yet, by the fact's own text."""

    spec: str = "oracle"

    def turn(self, consultation: ConsultationSoFar, seed: int | None,
             exclude: Sequence[str] = ()) -> str:
        if consultation.case.open_ended:
            return self._open_turn(consultation)
        if consultation.final_requested:
            return answer_by_overlap(consultation)
        seen = consultation.known_text()
        asked = set(consultation.asked)
        for fact in consultation.case.facts:
            if fact not in seen and fact not in asked:
                return f"question: {fact}"
        return answer_by_overlap(consultation)

    def _open_turn(self, consultation: ConsultationSoFar) -> str:
        """Each unknown patient fact asked by its text, each unknown measurement fact
        ordered by its field's name, in the case's order; then the fixed diagnosis."""
        case = consultation.case
        if consultation.final_requested:
            return OPEN_REFERENCE_DIAGNOSIS
        seen, known = consultation.known_text(), set(consultation.view.known_fact_ids)
        asked, ordered = set(consultation.asked), set(consultation.ordered)
        for i, fact in enumerate(case.facts):
            if i in known or fact in seen:
                continue
            source = case.fact_sources[i] if case.fact_sources else None
            if source is not None and source.kind == "measurement":
                test = path_words(source.path) or fact
                if test not in ordered:
                    return f"test: {test}"
            elif fact not in asked:
                return f"question: {fact}"
        return OPEN_REFERENCE_DIAGNOSIS


def bank_doctor(spec: str, known: Sequence[Case] = ()) -> BankDoctor:
    """``bank`` (an MCTS proposer: fresh random draws), ``bank:random``, ``bank:fixed``,
    or either with ``:FILE`` (a bank file, see
    :func:`~promed_agents.agents.question_bank.bank_questions`); ``bank:similar`` (or
    ``bank:similar:SPLIT``) reading ``known`` cases, the bundled bank."""
    _, _, rest = spec.partition(":")
    order, _, path = rest.partition(":")
    if spec == "bank":
        return BankDoctor(spec=spec, order="fixed", widens_in_order=True)
    if order not in ORDERS:
        raise BackendError(f"doctor {spec!r}: use bank:random, bank:fixed, or either with "
                           ":FILE (a JSON list of questions), or bank:similar")
    if order == "similar":
        questions = {"en": bank_questions("en"), "zh": bank_questions("zh")}
        similar = SimilarCases(known, questions) if known else None
        if similar is None:
            raise BackendError(f"doctor {spec!r} reads known cases and was given none: "
                               f"import training cases (split {known_split(spec)!r})")
        return BankDoctor(spec=spec, order=order, questions=questions, similar=similar,
                          widens_in_order=True)
    questions = {"en": bank_questions("en", path or None)}
    if not path:
        questions["zh"] = bank_questions("zh")
    return BankDoctor(spec=spec, order=order, questions=questions)


def known_split(spec: str | BaseChatModel) -> str | None:
    """The store split whose cases a doctor spec reads (``bank:similar``), else None."""
    if not isinstance(spec, str) or not spec.startswith("bank:similar"):
        return None
    return spec.removeprefix("bank:similar").removeprefix(":") or KNOWN_SPLIT


def known_cases(store: TraceStore, spec: str | BaseChatModel) -> list[Case]:
    """The known cases a doctor spec reads from ``store`` (none for most doctors)."""
    split = known_split(spec)
    return store.list_cases(split=split) if split else []


def is_reference(spec: str) -> bool:
    return spec == "oracle" or spec == "bank" or spec.startswith("bank:")


def resolve_doctor(spec: str | BaseChatModel, known: Sequence[Case] = ()) -> BaseChatModel:
    """The doctor a spec names: a reference doctor (``bank:random``, ``bank:fixed``,
    ``oracle``; ``bank:similar``, which reads the ``known`` cases of :func:`known_split`)
    or any model spec (:func:`~promed_agents.backends.resolve_chat_model`)."""
    if isinstance(spec, str) and spec == "oracle":
        return OracleDoctor()
    if isinstance(spec, str) and is_reference(spec):
        return bank_doctor(spec, known)
    return resolve_chat_model(spec)


def bank_backend(spec: ModelSpec) -> BaseChatModel:
    """The model-spec registry's factory for ``bank:...`` specs (listed in
    :mod:`promed_agents.backends.model_spec`, loaded on first use), so that they resolve
    wherever chat models do."""
    return bank_doctor(str(spec))

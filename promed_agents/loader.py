"""Case loaders: benchmark files in, validated :class:`~promed_agents.case.Case` objects out.

**file** -> case -> consultation graph -> trace in SQL -> Shapley/SIG -> training

Five formats are read (see ``../shared/data/README.md`` in the development checkout):

- ``mediq``: MediQ iMedQA JSON Lines (``facts`` prefixed "N. ", ``answer_idx``, ``patient``);
- ``promed-medqa``: the ProMed reference's MedQA JSON Lines (``atomic_question``, ``context``);
- ``promed-cmb``: the ProMed reference's CMB JSON array (Chinese; ``option``, letters in
  ``answer``);
- ``agentclinic`` and ``open-ended``: open-ended cases, a diagnosis for their answer
  (:mod:`promed_agents.open_case_formats`).

MediQ's second benchmark, iCraft-MD, has the ``mediq`` format and ids of its own (0..139):
its cases are ``craftmd-<id>`` (from the file name, or ``source="craftmd"``), so both
benchmarks live in one store. Either container (JSON Lines or one JSON array) is accepted
for every format; ``auto`` detects the format from the first record's keys. Any problem raises
:class:`~promed_agents.errors.CaseFormatError` naming file, line (or array index) and field,
and nothing is returned: callers import all of a file or none of it.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
from collections.abc import Iterator
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from promed_agents.case import Case
from promed_agents.errors import CaseFormatError
from promed_agents.open_case_formats import (
    OpenCaseRecord,
    OsceRecord,
    open_case_fields,
    osce_case_fields,
)


class CaseFormat(str, Enum):
    AUTO = "auto"
    MEDIQ = "mediq"
    PROMED_MEDQA = "promed-medqa"
    PROMED_CMB = "promed-cmb"
    AGENTCLINIC = "agentclinic"
    OPEN_ENDED = "open-ended"


_FACT_NUMBER = re.compile(r"^\s*\d+\.\s+")
_ZH_SENTENCE_END = re.compile(r"(?<=[。！？；])")

Record = tuple[str, Any]  # (location, parsed JSON value)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    @field_validator("options", "option", check_fields=False)
    @classmethod
    def _some_options(cls, options: dict[str, str]) -> dict[str, str]:
        if not options:
            raise ValueError("must have at least one option (a multiple-choice format; an "
                             "open-ended case goes in format agentclinic or open-ended)")
        return options

    @field_validator("id", mode="before", check_fields=False)
    @classmethod
    def _id_is_int_or_str(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
            raise ValueError(f"must be an integer or a non-empty string, got {value!r}")
        return value


class _MediqRecord(_Strict):
    id: int | str
    question: str
    context: list[str] = []
    options: dict[str, str]
    answer_idx: str
    facts: list[str]
    patient: dict[str, Any] | None = None


class _MedqaRecord(_Strict):
    id: int | str
    atomic_question: str
    context: list[str] = []
    options: dict[str, str]
    answer_idx: str
    facts: list[str]


class _CmbRecord(_Strict):
    id: int | str
    question: str
    atomic_question: str
    option: dict[str, str]
    answer: str
    facts: list[str]


# Case field -> the field of each format it comes from, to name the file's own field in errors.
_SOURCE_FIELDS: dict[CaseFormat, dict[str, str]] = {
    CaseFormat.MEDIQ: {"answer": "answer_idx", "demographics": "patient"},
    CaseFormat.PROMED_MEDQA: {"answer": "answer_idx", "question": "atomic_question"},
    CaseFormat.PROMED_CMB: {"answer": "answer", "options": "option", "question": "atomic_question",
                            "context": "question"},
}
_RECORD_MODELS: dict[CaseFormat, type[BaseModel]] = {
    CaseFormat.MEDIQ: _MediqRecord,
    CaseFormat.PROMED_MEDQA: _MedqaRecord,
    CaseFormat.PROMED_CMB: _CmbRecord,
    CaseFormat.AGENTCLINIC: OsceRecord,
    CaseFormat.OPEN_ENDED: OpenCaseRecord,
}


SAMPLE_SPLIT = "dev"
"""The split of the bundled sample: its cases are iMedQA's first 50 dev cases, so a later
``promed cases import imedqa_dev.jsonl --split dev`` finds them stored unchanged (the same
case stored twice under two ids would let a run train on what another evaluates on)."""


def bundled_sample_path() -> Path:
    """The 50 iMedQA cases shipped with the package (CC BY 4.0, see data/ATTRIBUTION.md):
    the first 50 cases of MediQ's iMedQA dev file."""
    return Path(str(resources.files("promed_agents.data").joinpath("imedqa_sample.jsonl")))


def agentclinic_sample_path() -> Path:
    """The 10 AgentClinic cases shipped with the package (MIT, see data/ATTRIBUTION.md):
    open-ended, the first 10 of AgentClinic's MedQA cases."""
    return Path(str(resources.files("promed_agents.data").joinpath(
        "agentclinic_sample.jsonl")))


def bundled_sample() -> list[Case]:
    """The bundled sample's cases, split ``dev`` (:data:`SAMPLE_SPLIT`)."""
    return load_cases(bundled_sample_path(), split=SAMPLE_SPLIT)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are unique (``json`` would keep the last of two)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} appears twice in one object (JSON keeps only "
                             "the last); keep one")
        seen[key] = value
    return seen


def _parse(text: str, path: Path, location: str, line_offset: int = 0) -> Any:
    """One JSON value, or a :class:`CaseFormatError` naming where and why."""
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno + line_offset}" if location == "file" else location
        raise CaseFormatError(path, where, None,
                              f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except ValueError as exc:
        raise CaseFormatError(path, None if location == "file" else location, None,
                              str(exc)) from None
    except RecursionError:
        raise CaseFormatError(path, None if location == "file" else location, None,
                              "JSON nested too deeply to read; a case is a flat record of "
                              "strings and lists") from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end].encode("unicode_escape").decode()
        raise CaseFormatError(path, None if location == "file" else location, None,
                              f"holds {bad}, half of a UTF-16 pair, which is not text; "
                              "fix the escape (\\uXXXX pairs go together)") from None
    return value


def _text(path: Path) -> str:
    """The file's text: UTF-8 with or without a byte-order mark, gzip-compressed when its
    name ends in ``.gz``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CaseFormatError(path, None, None, "no such file") from None
    except OSError as exc:
        raise CaseFormatError(path, None, None, f"cannot read: {exc.strerror}") from None
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise CaseFormatError(path, None, None, f"not a gzip file ({exc}); give the "
                                  "file without .gz, or compress it with gzip") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise CaseFormatError(path, None, None, "UTF-16 text, not UTF-8", "save it as "
                              "UTF-8, e.g. iconv -f UTF-16 -t UTF-8 FILE > FILE.jsonl")
    try:
        return data.decode("utf-8-sig")  # an editor's byte-order mark is fine
    except UnicodeDecodeError as exc:
        raise CaseFormatError(path, None, None, f"not UTF-8 text ({exc.reason} at byte "
                              f"{exc.start})", "save it as UTF-8") from None


def read_records(path: str | Path) -> Iterator[Record]:
    """Yield ``(location, value)`` for every record of a JSON Lines or JSON array file
    (UTF-8, a byte-order mark allowed; ``.gz`` read directly)."""
    path = Path(path)
    text = _text(path)
    if text.lstrip().startswith("["):
        values = _parse(text, path, "file")
        for index, value in enumerate(values):
            yield f"[{index}]", value
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        yield f"line {number}", _parse(line, path, f"line {number}")


def detect_format(record: dict[str, Any]) -> CaseFormat | None:
    """Guess a record's format from its keys; None when it matches none."""
    if "option" in record and "facts" in record:
        return CaseFormat.PROMED_CMB
    if "atomic_question" in record and "options" in record:
        return CaseFormat.PROMED_MEDQA
    if "answer_idx" in record and "facts" in record:
        return CaseFormat.MEDIQ
    if "OSCE_Examination" in record:
        return CaseFormat.AGENTCLINIC
    if "diagnosis" in record and "facts" in record:
        return CaseFormat.OPEN_ENDED
    return None


def _field_path(loc: tuple[int | str, ...], fmt: CaseFormat) -> str:
    parts = [str(p) for p in loc]
    if parts:
        parts[0] = _SOURCE_FIELDS.get(fmt, {}).get(parts[0], parts[0])
    out = parts[0] if parts else ""
    for part in parts[1:]:
        out += f"[{part}]" if part.isdigit() else f".{part}"
    return out


def _zh_context(full_question: str, atomic_question: str) -> list[str]:
    """CMB has no context sentences: the vignette is the question text before the
    atomic question; split it at Chinese sentence ends."""
    stem = atomic_question.strip().rstrip("？?")
    vignette = full_question.strip()
    if stem and stem in vignette:
        vignette = vignette[: vignette.rindex(stem)]
    return [s.strip() for s in _ZH_SENTENCE_END.split(vignette) if s.strip()]


DEFAULT_SOURCES = {CaseFormat.MEDIQ: "imedqa", CaseFormat.PROMED_MEDQA: "medqa",
                   CaseFormat.PROMED_CMB: "cmb", CaseFormat.AGENTCLINIC: "agentclinic",
                   CaseFormat.OPEN_ENDED: "open"}
"""The source (and id prefix) of each format's cases unless the file says otherwise."""
_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def file_source(path: str | Path, fmt: CaseFormat) -> str:
    """The benchmark a file holds, as far as its name tells: MediQ's two benchmarks share
    one format, and its iCraft-MD file is named ``all_craft_md.jsonl`` (ids 0..139, the
    same as iMedQA's first), so a MediQ file whose name mentions "craft" is ``craftmd``."""
    if fmt is CaseFormat.MEDIQ and "craft" in Path(path).name.lower():
        return "craftmd"
    return DEFAULT_SOURCES[fmt]


def _case_fields(raw: BaseModel, fmt: CaseFormat, split: str | None, source: str,
                 number: int) -> dict[str, Any]:
    if isinstance(raw, OsceRecord):
        return osce_case_fields(raw, number, source, split)
    if isinstance(raw, OpenCaseRecord):
        return open_case_fields(raw, source, split)
    if isinstance(raw, _MediqRecord):
        return dict(id=f"{source}-{raw.id}", source=source, language="en", split=split,
                    question=raw.question, options=raw.options, answer=[raw.answer_idx],
                    facts=[_FACT_NUMBER.sub("", f) for f in raw.facts], context=raw.context,
                    demographics=raw.patient)
    if isinstance(raw, _MedqaRecord):
        return dict(id=f"{source}-{raw.id}", source=source, language="en", split=split,
                    question=raw.atomic_question.strip(), options=raw.options,
                    answer=[raw.answer_idx], facts=raw.facts, context=raw.context)
    assert isinstance(raw, _CmbRecord)
    return dict(id=f"{source}-{raw.id}", source=source, language="zh", split=split,
                question=raw.atomic_question.strip(), options=raw.option,
                answer=list(raw.answer.strip()), facts=raw.facts,
                context=_zh_context(raw.question, raw.atomic_question))


def _to_case(path: Path, location: str, value: Any, fmt: CaseFormat, split: str | None,
             source: str | None, number: int = 0) -> Case:
    if not isinstance(value, dict):
        raise CaseFormatError(path, location, None,
                              f"expected a JSON object, got {type(value).__name__}")
    model = _RECORD_MODELS[fmt]
    try:
        raw = model.model_validate(value)
        return Case(**_case_fields(raw, fmt, split, source or file_source(path, fmt), number))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = _field_path(tuple(error["loc"]), fmt) or None
        problem = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            problem = "is missing"
        elif error["type"].endswith("_type"):
            got = type(error.get("input")).__name__
            problem = f"{error['msg'].lower()}, got {got}"
        raise CaseFormatError(path, location, field, problem,
                              hint=f"format {fmt.value}") from None


def iter_located_cases(
    path: str | Path,
    fmt: CaseFormat | str = CaseFormat.AUTO,
    split: str | None = None,
    limit: int | None = None,
    source: str | None = None,
) -> Iterator[tuple[str, Case]]:
    """Yield ``(location, case)`` for the cases of ``path``, validating each."""
    path = Path(path)
    if source is not None and not _SOURCE_NAME.match(source):
        raise CaseFormatError(path, None, None, f"source {source!r} is not a plain name",
                              hint="use lower-case letters, digits, '-', '_' or '.', e.g. "
                                   "craftmd")
    try:
        fmt = CaseFormat(fmt)
    except ValueError:
        choices = ", ".join(f.value for f in CaseFormat)
        raise CaseFormatError(path, None, None,
                              f"unknown format {fmt!r}; choose one of {choices}") from None
    if limit is not None and limit < 0:
        raise CaseFormatError(path, None, None, f"limit must be >= 0, got {limit}")
    seen: dict[str, str] = {}
    for count, (location, value) in enumerate(read_records(path)):
        if limit is not None and count >= limit:
            return
        if fmt is CaseFormat.AUTO:
            detected = detect_format(value) if isinstance(value, dict) else None
            if detected is None:
                raise CaseFormatError(
                    path, location, None, "cannot tell the file's format from this record",
                    hint="pass --format mediq, promed-medqa, promed-cmb, agentclinic or "
                         "open-ended")
            fmt = detected
        case = _to_case(path, location, value, fmt, split, source, count)
        if case.id in seen:
            raise CaseFormatError(path, location, "id",
                                  f"duplicate id {case.id!r} (first at {seen[case.id]})")
        seen[case.id] = location
        yield location, case


def iter_cases(
    path: str | Path,
    fmt: CaseFormat | str = CaseFormat.AUTO,
    split: str | None = None,
    limit: int | None = None,
    source: str | None = None,
) -> Iterator[Case]:
    """Yield the cases of ``path`` one by one, validating each (see :func:`load_cases`)."""
    for _, case in iter_located_cases(path, fmt, split=split, limit=limit, source=source):
        yield case


def load_cases(
    path: str | Path,
    fmt: CaseFormat | str = CaseFormat.AUTO,
    split: str | None = None,
    limit: int | None = None,
    source: str | None = None,
) -> list[Case]:
    """Read and validate every case of ``path`` (the first ``limit`` if given).

    Each case is ``SOURCE-<id>`` of source ``SOURCE``: ``source`` if given, else what the
    file holds (:func:`file_source`: imedqa, craftmd, medqa or cmb), so files of several
    benchmarks live in one store. Raises :class:`CaseFormatError` on the first bad record;
    nothing is returned then.
    """
    return list(iter_cases(path, fmt, split=split, limit=limit, source=source))

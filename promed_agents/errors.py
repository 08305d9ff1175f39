"""Exception types of ProMed Agents.

Every stage of the data path (case -> consultation graph -> trace in SQL -> Shapley/SIG ->
training -> evaluation) raises one of these for bad input, so that callers (and the CLI)
can tell user errors from bugs. Each message says what went wrong, where, and how to fix it.
"""

from __future__ import annotations

from pathlib import Path


class PromedError(Exception):
    """Base class of every error ProMed Agents raises on purpose."""


class CaseFormatError(PromedError):
    """A case file cannot be read: bad JSON, a missing field, a wrong type, a bad value.

    ``location`` is ``"line N"`` for JSON Lines files and ``"[N]"`` (array index) for JSON
    array files; ``field`` is the dotted path of the offending field, when there is one.
    """

    def __init__(
        self,
        path: str | Path,
        location: str | None,
        field: str | None,
        problem: str,
        hint: str | None = None,
    ) -> None:
        self.path = str(path)
        self.location = location
        self.field = field
        self.problem = problem
        self.hint = hint
        where = self.path if location is None else f"{self.path}:{location}"
        what = problem if field is None else f"field '{field}': {problem}"
        message = f"{where}: {what}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)


class CaseConflictError(PromedError):
    """An imported case has the id of a stored case but different content."""

    def __init__(self, message: str, case_id: str | None = None) -> None:
        super().__init__(message)
        self.case_id = case_id


class PartialInfoError(PromedError):
    """A partial-information policy cannot be applied to a case."""


class NotFoundError(PromedError):
    """A case, episode or experiment asked for by id is not in the store."""


class OutputError(PromedError):
    """An output file (export, dataset, report) cannot be written where it was asked for."""


class StoreError(PromedError):
    """The trace store cannot be opened, migrated or written to."""


class TraceError(PromedError):
    """An episode trace handed to the store is inconsistent (bad turn order, unknown facts)."""


class BackendError(PromedError):
    """A model spec cannot be resolved or a model cannot be loaded."""


class ConsultationError(PromedError):
    """A consultation cannot run (bad configuration, a model node failing for good)."""


class TrainingError(PromedError):
    """Training data or a training run cannot be prepared: no samples, an unknown
    experiment or dataset, an output folder that holds something else."""


class ShapleyError(PromedError):
    """A Shapley computation cannot run as asked."""

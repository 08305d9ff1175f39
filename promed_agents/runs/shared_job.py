"""Runs split over workers: several processes or machines doing one run on one store.

case -> consultation graph -> **trace in SQL** -> Shapley/SIG -> MCTS-SFT / GRPO ->
evaluation (a run's cases shared out through the store)

With ``shared`` a run's config names a job that any number of workers run at once, each
started with the same command against the same store (PostgreSQL for machines; a SQLite
file for processes of one machine). :func:`join_or_create` gives every worker the same
recorded run: the first creates it, the others join it. :func:`work_through` has each
worker claim the next free cases from the store's work queue
(:class:`~promed_agents.storage.work_claims.WorkClaims`) until none is left undone,
waiting for the others' at the end; a killed worker's claims come free when their lease
runs out, so the others (or a rerun) do them. Every case is done once and every worker
ends with the whole run in the store.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from promed_agents.errors import ConsultationError, TraceError
from promed_agents.knob import knob

if TYPE_CHECKING:
    from promed_agents.storage import TraceStore

DEFAULT_LEASE_S = 900.0
"""How long a claimed, unfinished case stays its worker's (renewed at each finished case)."""

__all__ = ["DEFAULT_LEASE_S", "join_or_create", "lease_knob", "run_job", "shared_knob",
           "work_through", "worker_name"]


def shared_knob() -> Any:
    return knob(False, help="Run as one of several workers (processes or machines) on one "
                            "store: each joins the run of this name, claims cases until "
                            "none is left, and ends with the whole run's results.")


def lease_knob() -> Any:
    return knob(DEFAULT_LEASE_S, min=1.0,
                help="Seconds a worker keeps a case it claimed and did not finish; a "
                     "killed worker's cases go to the others after that.")


def worker_name() -> str:
    """This process, as other workers see it: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def join_or_create(store: TraceStore, name: str, kind: str, config: dict[str, Any],
                   *, shared: bool, same: Sequence[str] = ("case_ids",)) -> int:
    """The run ``name``: created (``running``), or with ``shared`` joined where another
    worker made it with the same ``same`` settings. Without ``shared`` an unfinished run
    of that name is replaced, as a rerun does."""
    if not shared:
        return _fresh(store, store.create_experiment(name, kind, config,
                                                     replace_unfinished=True,
                                                     status="running"), kind)
    try:
        return _fresh(store, store.create_experiment(name, kind, config, status="running"),
                      kind)
    except TraceError:  # another worker made it first, or an earlier run
        experiment_id, saved = store.experiment_config(name)
    if store.experiment(name).kind != kind:
        raise ConsultationError(f"experiment {name!r} exists and is not a {kind} run; "
                                "choose another --experiment name")
    for key in same:
        if saved.get(key) != config.get(key):
            raise ConsultationError(
                f"--shared: run {name!r} exists with other {key.replace('_', '-')}; give "
                "every worker the same command, or another --experiment name")
    return experiment_id


def run_job(kind: str, experiment_id: int) -> str:
    """The work-queue job of run ``experiment_id``."""
    return f"{kind}:{experiment_id}"


def _fresh(store: TraceStore, experiment_id: int, kind: str) -> int:
    """A new run starts with an empty queue (a replaced run's id can be reused)."""
    store.clear_work(run_job(kind, experiment_id))
    return experiment_id


def work_through(store: TraceStore, job: str, items: Sequence[str],
                 run: Callable[[list[str]], None], *, limit: int = 1,
                 lease_s: float = DEFAULT_LEASE_S, poll_s: float | None = None) -> None:
    """Claim up to ``limit`` free items of ``job`` at a time and ``run`` them (``run``
    marks each done with ``store.finish_work``) until no item is left undone, waiting
    (``poll_s``, default a tenth of the lease, at most 5 s) while other workers hold the
    rest."""
    worker, poll = worker_name(), poll_s or min(5.0, lease_s / 10)
    while True:
        claimed = store.claim_work(job, items, worker, limit=limit, lease_s=lease_s)
        if claimed:
            try:
                run(claimed)
            except BaseException:  # an error or a signal: the others may take them now
                with contextlib.suppress(Exception):
                    store.release_work(job, worker)
                raise
        elif store.work_left(job) == 0:
            return
        else:
            time.sleep(poll)

"""Text as it may be printed or stored: every URL's password masked.

Cross-cutting. A password can reach the program inside any URL the user gives: a store
(``--db``), a checkpoint location (``--checkpoints``) or a model spec's server
(``openai:m@http://user:pw@host/v1`` for a doctor, patient, proposer, scorer or judge).
:func:`without_password` masks it wherever it appears in a string; :func:`redacted` does
so through a stored configuration's nested values. The store applies them to what it
keeps (experiment configurations, episodes' specs and metadata, scorer specs), the trace
records specs through :func:`~promed_agents.backends.spec_name`, and the command line's
consoles pass everything they print through :func:`without_password`, so no password
reaches a terminal, a log or the store.
"""

from __future__ import annotations

import re
from typing import TypeVar

_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#\s'\"]*:")
_URL_END = re.compile(r"[?#\s'\"]")
_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|api_key|apikey|token)=)[^&#\s'\"]*")
MASK = "***"

T = TypeVar("T")


def without_password(text: T) -> T:
    """``text`` with the password of every URL in it replaced by ``***``: the part
    between ``user:`` and the URL's last ``@`` (percent-encoded or not; a URL with an
    ``@`` in its path loses more than its password, never less), and a
    ``password=``, ``api_key=`` or ``token=`` query parameter. Text without a password,
    and anything that is not a string (None), is returned unchanged."""
    if not isinstance(text, str) or "://" not in text:
        return text
    pieces, position = [], 0
    for start in _URL_START.finditer(text):
        if start.start() < position:
            continue
        end = _URL_END.search(text, start.end())
        at = text.rfind("@", start.end(), end.start() if end else len(text))
        if at >= 0:
            pieces.append(text[position:start.end()] + MASK)
            position = at
    masked = "".join(pieces) + text[position:]
    return _QUERY_PASSWORD.sub(rf"\1{MASK}", masked)  # type: ignore[return-value]


def redacted(value: T) -> T:
    """``value`` (a configuration: dicts, lists, strings, numbers) with every string
    passed through :func:`without_password`."""
    if isinstance(value, str):
        return without_password(value)
    if isinstance(value, dict):
        return {k: redacted(v) for k, v in value.items()}  # type: ignore[return-value]
    if isinstance(value, (list, tuple)):
        return type(value)(redacted(v) for v in value)  # type: ignore[return-value]
    return value

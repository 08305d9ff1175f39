"""Locations as they may be printed or stored: a database URL's password masked.

Cross-cutting: every place that names a store (``--db``) or a checkpoint location
(``--checkpoints``) in a message, a table title or an experiment's stored configuration
passes it through :func:`without_password` first, so no password reaches a terminal, a
log or the store.
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/@?#]*:)(.*)@")
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")


def without_password(where: str | None) -> str | None:
    """``where`` with any password replaced by ``***``: the one between ``user:`` and the
    last ``@`` (percent-encoded or not), and a ``password=`` query parameter. A file path
    or a URL without a password is returned unchanged; so is None."""
    if not where or "://" not in where:
        return where
    return _QUERY_PASSWORD.sub(r"\1***", _USERINFO.sub(r"\1***@", where, count=1))

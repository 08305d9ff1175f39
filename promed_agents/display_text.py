"""Stored text made safe to show: the terminal (the CLI) and the HTML report print case
text and model output as they were stored, so control characters must not act.

case -> ... -> trace in SQL -> **CLI output, report.html**

:func:`without_controls` writes each C0/C1 control character (terminal escape sequences
begin with one) as a visible ``\\xNN``; line breaks and tabs stay.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def without_controls(text: object, *, one_line: bool = False) -> str:
    """``text`` with every control character but newline and tab written as ``\\xNN``;
    with ``one_line`` (a name, an id, a table cell), line breaks and tabs too."""
    pattern = _CONTROL_OR_BREAK if one_line else _CONTROL
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", str(text))

"""A knob: a config field whose default and help text are declared once.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation
(the settings of every stage)

TRL declares a setting once, as a dataclass field with its help in ``metadata``; a
command line is generated from it. :func:`knob` writes such a field, with what its
command-line option needs besides (a lower bound, other flag names); :func:`knob_from`
takes one from another config, so that a trainer config and a command's config share a
library setting's default and help instead of restating them. The options are generated
by :func:`promed_agents.cli.config_options.config_command`. Torch-free, so that the
command line can show the defaults without loading TRL.
"""

from __future__ import annotations

from dataclasses import MISSING, field, fields
from typing import Any

OPTION_KEYS = ("min", "max", "hidden", "envvar", "show_envvar", "metavar", "show_default",
               "flags", "parse")
"""What a field's metadata may say about its option besides ``help``; ``parse`` turns the
option's text into the field's value (a comma-separated list, say), and the option is
then text, absent by default (the field keeps its default)."""


def knob(default: Any = MISSING, *, help: str, **option: Any) -> Any:  # noqa: A002
    """A config field that is also a command option: its default and ``help`` declared
    once; ``option`` passes ``min``, ``max``, ``hidden``, ``envvar``, ``metavar``,
    ``show_default``, ``flags`` (other names than ``--field-name``) or ``parse`` (see
    :data:`OPTION_KEYS`) to the option."""
    unknown = set(option) - set(OPTION_KEYS)
    if unknown:
        raise TypeError(f"knob() got unknown option settings {sorted(unknown)}")
    return field(default=default, metadata={"help": help, **option})


def knob_from(config: type, name: str, **option: Any) -> Any:
    """The field ``name`` of a library config (a dataclass with help metadata, e.g.
    :class:`~promed_agents.trainers.mcts_search.MCTSConfig`) as a command knob: its
    default and its help."""
    found = next((f for f in fields(config) if f.name == name), None)
    if found is None or "help" not in found.metadata:
        raise TypeError(f"{config.__name__} has no field {name!r} with help text")
    default = found.default if found.default is not MISSING else (
        found.default_factory() if found.default_factory is not MISSING else MISSING)
    settings = {k: v for k, v in found.metadata.items() if k in OPTION_KEYS}
    return knob(default, help=found.metadata["help"], **{**settings, **option})

"""Command options generated from a command's config: each knob declared once.

case -> consultation graph -> trace in SQL -> Shapley/SIG -> MCTS-SFT / GRPO -> evaluation
(the command line of every stage)

A command's config is a frozen dataclass whose fields carry their help text in
``metadata``, as TRL's configs do (:func:`promed_agents.knob.knob`; a field taken from a
library config, an MCTS or GRPO setting, is :func:`~promed_agents.knob.knob_from` it, so
that the default and the help are the library's). :func:`config_command` turns a function
whose first parameter is that config into a Typer command whose options are the config's
fields, followed by the function's own parameters (``--db``, hidden old names). So the
command line, the Python API (the config) and the help read one declaration.

Why not TRL's ``TrlParser`` or ``tyro``: the first is argparse (``HfArgumentParser``),
the second a command-line framework of its own; either would give the training commands
a second parser beside Typer, with other error handling (ProMed's one-line errors and exit
statuses are Typer's here) and another help format. Typer builds a command from a
function's signature; the signature built from the fields keeps one framework.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import MISSING, Field, fields
from typing import Annotated, Any, TypeVar, get_type_hints

import typer

from promed_agents.knob import OPTION_KEYS, knob, knob_from

__all__ = ["config_command", "knob", "knob_from", "options_of"]

R = TypeVar("R")
_NOT_TYPER = ("flags", "parse")


def _option(spec: Field[Any], hint: Any) -> inspect.Parameter:
    meta = spec.metadata
    settings = {k: meta[k] for k in OPTION_KEYS if k in meta and k not in _NOT_TYPER}
    option = typer.Option(*meta.get("flags", ()), help=meta["help"], **settings)
    default = spec.default if spec.default is not MISSING else (
        spec.default_factory() if spec.default_factory is not MISSING
        else inspect.Parameter.empty)
    if "parse" in meta:
        hint, default = str | None, None
    return inspect.Parameter(spec.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[hint, option])


def options_of(config: type) -> list[inspect.Parameter]:
    """The command options of ``config``'s fields that have help text, in field order."""
    hints = get_type_hints(config)
    return [_option(spec, hints[spec.name]) for spec in fields(config)
            if "help" in spec.metadata]


def config_command(config: type) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Make ``function(settings: config, **own)`` a Typer command taking ``config``'s
    fields as options, then ``function``'s own keyword parameters."""

    def wrap(function: Callable[..., R]) -> Callable[..., R]:
        signature = inspect.signature(function)
        hints = get_type_hints(function, include_extras=True)
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY,
                         annotation=hints.get(p.name, p.annotation))
               for p in list(signature.parameters.values())[1:]]
        knobs = options_of(config)
        parsers = {f.name: f.metadata.get("parse") for f in fields(config)
                   if "help" in f.metadata}

        @functools.wraps(function)
        def command(**arguments: Any) -> R:
            given = {}
            for name in [n for n in arguments if n in parsers]:
                value, parse = arguments.pop(name), parsers[name]
                if parse is None:
                    given[name] = value
                elif value is not None:
                    given[name] = parse(value)
            return function(config(**given), **arguments)

        parameters = [*knobs, *own]
        command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            parameters, return_annotation=signature.return_annotation)
        command.__annotations__ = {p.name: p.annotation for p in parameters}
        command.config = config  # type: ignore[attr-defined]
        return command

    return wrap

"""Command options generated from a command's config: one declaration per knob."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Annotated

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from promed_agents.cli import app
from promed_agents.cli.config_options import config_command, knob, knob_from
from promed_agents.cli.consult import ConsultCommandConfig
from promed_agents.cli.demo import DemoConfig
from promed_agents.cli.evaluate import EvalCommandConfig
from promed_agents.cli.grpo import GRPOCommandConfig
from promed_agents.cli.mcts import MCTSCommandConfig
from promed_agents.cli.shapley import ShapleyCommandConfig
from promed_agents.cli.train import SFTCommandConfig
from promed_agents.trainers.mcts_search import MCTSConfig

COMMAND_CONFIGS = {
    ("consult",): ConsultCommandConfig,
    ("demo",): DemoConfig,
    ("eval",): EvalCommandConfig,
    ("mcts",): MCTSCommandConfig,
    ("shapley",): ShapleyCommandConfig,
    ("train", "sft"): SFTCommandConfig,
    ("train", "grpo"): GRPOCommandConfig,
}


def commands(command=None, path=()):
    """Every command of the ``promed`` app with its path."""
    command = command or typer.main.get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


def config_of(command):
    inner = command.callback
    while inner is not None and not hasattr(inner, "config"):
        inner = getattr(inner, "__wrapped__", None)
    return getattr(inner, "config", None)


def test_every_command_with_a_config_reads_its_options_from_it():
    found = {path: config_of(command) for path, command in commands()}
    for path, config in COMMAND_CONFIGS.items():
        assert found[path] is config, path


@pytest.mark.parametrize("path", sorted(COMMAND_CONFIGS))
def test_a_knobs_default_and_help_are_the_configs(path):
    command = dict(commands())[path]
    options = {p.name: p for p in command.params}
    config = COMMAND_CONFIGS[path]
    knobs = [f for f in fields(config) if "help" in f.metadata]
    assert knobs
    for spec in knobs:
        option = options[spec.name]
        assert option.help == spec.metadata["help"], spec.name
        expected = None if "parse" in spec.metadata else (
            spec.default if spec.default is not MISSING else
            spec.default_factory() if spec.default_factory is not MISSING else None)
        if expected is None and spec.default is MISSING:
            assert option.required, spec.name  # no default: the option is required
            continue
        if hasattr(expected, "value") and not hasattr(option.default, "value"):
            expected = expected.value  # an enum: the option holds its value
        assert option.default == expected, spec.name
    # a library knob keeps the library's help and default
    if config is MCTSCommandConfig:
        library = {f.name: f for f in fields(MCTSConfig)}
        assert options["iterations"].help == library["iterations"].metadata["help"]
        assert options["iterations"].default == MCTSConfig.iterations


@dataclass(frozen=True)
class Toy:
    name: str = knob("x", help="A name.")
    count: int = knob(2, help="How many.", min=1)
    ids: Sequence[str] = knob((), help="Comma-separated ids.",
                              parse=lambda text: [t.strip() for t in text.split(",")])
    rate: float = knob_from(MCTSConfig, "decay")
    internal: int = 7  # no help: not an option


toy_app = typer.Typer()
seen: list = []


@toy_app.command()
@config_command(Toy)
def toy(settings: Toy, extra: Annotated[str, typer.Option(help="Own.")] = "e") -> None:
    seen.append((settings, extra))


def test_a_config_command_builds_the_config_from_its_options():
    runner = CliRunner()
    seen.clear()
    assert runner.invoke(toy_app, []).exit_code == 0
    assert seen[-1] == (Toy(), "e")
    result = runner.invoke(toy_app, ["--name", "y", "--count", "3", "--ids", "a, b",
                                     "--rate", "0.5", "--extra", "f"])
    assert result.exit_code == 0, result.output
    assert seen[-1] == (Toy(name="y", count=3, ids=["a", "b"], rate=0.5), "f")
    assert runner.invoke(toy_app, ["--count", "0"]).exit_code == 2  # min from the field
    assert runner.invoke(toy_app, ["--internal", "1"]).exit_code == 2  # not an option
    shown = runner.invoke(toy_app, ["--help"]).output
    assert "How many." in shown and "[default: 2" in shown
    assert MCTSConfig.__dataclass_fields__["decay"].metadata["help"][:20] in shown

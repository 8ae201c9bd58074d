"""Every flag of every command documented with its default in --help, examples for the main commands, and progress
bars that know their total."""
from __future__ import annotations

import argparse
import importlib

import pytest
from test_relabel_cli import model_path, write_source  # noqa: F401  (model_path is a fixture)

from diffusion_reward.cli import COMMANDS, ArgumentParser, HelpFormatter, main

EXAMPLE_COMMANDS = ("collect", "train-reward", "relabel", "train-policy", "evaluate", "convert", "view")


def command_parsers():
    """(name, parser) of every command and of `live`'s sub-commands, built as `diffusion-reward` builds them."""
    for name, (module, help_text) in COMMANDS.items():
        parser = ArgumentParser(prog=f"diffusion-reward {name}", description=help_text, formatter_class=HelpFormatter)
        importlib.import_module(f"diffusion_reward.cli.{module}").add_arguments(parser)
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                yield from ((f"{name} {sub}", p) for sub, p in action.choices.items())


PARSERS = dict(command_parsers())


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_flag_has_help_and_shows_its_default(name):
    parser = PARSERS[name]
    formatter = parser._get_formatter()
    assert isinstance(formatter, HelpFormatter), f"{name}: --help does not show defaults"
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        flag = "/".join(action.option_strings) or action.dest
        assert action.help and len(action.help) > 5, f"{name} {flag} has no help text"
        shown = formatter._get_help_string(action)
        if action.default not in (None, False, [], argparse.SUPPRESS) and action.nargs != 0 and not action.required:
            assert "default" in shown, f"{name} {flag}: default {action.default!r} not shown"
    text = parser.format_help()  # renders: no stray % in a help text
    assert "usage:" in text


@pytest.mark.parametrize("name", EXAMPLE_COMMANDS)
def test_main_commands_show_examples(name):
    text = PARSERS[name].format_help()
    assert "examples:" in text and f"diffusion-reward {name} " in text.split("examples:")[1]


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_relabel_progress_bar_has_a_total(tmp_path, capsys, model_path):  # noqa: F811
    src = write_source(tmp_path / "src.hdf5", episodes=2, steps=6)
    assert main(["relabel", "--model", str(model_path), "--input", str(src), "--out", str(tmp_path / "out.hdf5")]) == 0
    err = capsys.readouterr().err
    assert "0/12" in err and "relabel: 100%" in err and "12/12" in err, err[-500:]  # the total from the start


def test_scoring_flags_are_scoreconfigs_fields_in_every_command():
    """The scoring options are written once (scoring_options.py): every command offers its set of them with
    ScoreConfig's default and help, and the labeller node's parameters and the relabel / report configs carry
    the same defaults."""
    import dataclasses

    from diffusion_reward.nodes.reward_labeller import RewardLabellerParams
    from diffusion_reward.offline.relabel import RelabelConfig
    from diffusion_reward.report import ReportConfig
    from diffusion_reward.scoring_options import (REPORT_OPTIONS, SCORE_OPTIONS, SCORING_FLAGS, STATS_OPTIONS,
                                                  ScoreConfig, flag_name)

    fields = {f.name: f for f in dataclasses.fields(ScoreConfig)}
    sets = {"score": SCORE_OPTIONS, "relabel": SCORING_FLAGS, "stats": STATS_OPTIONS, "report": REPORT_OPTIONS}
    for command, names in sets.items():
        actions = {a.dest: a for a in PARSERS[command]._actions}
        for name in names:
            f, action = fields[name], actions[name]
            assert action.option_strings == [flag_name(name)], (command, name)
            assert action.default == f.default, (command, name)
            assert action.help == f.metadata.get("flag_help", f.metadata["help"]), (command, name)
    assert all("skip_step" in names for names in sets.values())
    for config in (RewardLabellerParams, RelabelConfig, ReportConfig):
        for f in dataclasses.fields(config):
            if f.name in SCORING_FLAGS:
                assert f.default == fields[f.name].default, (config.__name__, f.name)


def test_train_reward_flags_are_generated_from_train_config():
    """Every TrainConfig field is a train-reward flag with the field's default: an option is written once."""
    import argparse
    import dataclasses

    from diffusion_reward.cli import train_reward
    from diffusion_reward.cli.config_args import config_from_args
    from diffusion_reward.training import TrainConfig

    parser = argparse.ArgumentParser()
    train_reward.add_arguments(parser)
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= {a.dest for a in parser._actions}
    defaults = config_from_args(TrainConfig, parser.parse_args(["--data", "a", "--out", "m"]))
    assert defaults == TrainConfig(data=["a"], out="m")
    args = parser.parse_args(["--data", "a", "--data", "b", "--out", "m", "--no-bf16", "--no-progress", "--resume",
                              "--lr", "0.1", "--codebook-restart-every", "0", "--video-model", "videogpt"])
    assert config_from_args(TrainConfig, args) == TrainConfig(
        data=["a", "b"], out="m", bf16=False, progress=False, resume=True, lr=0.1, codebook_restart_every=0,
        video_model="videogpt")


def test_library_errors_name_config_fields_and_the_cli_names_its_flags(tmp_path, capsys):
    """A config check speaks the library's names (`rate_hz`, `skip_step`); the same check reached from a command
    line names that command's flag (`--rate`, `--skip-step`), generated from the same field."""
    from diffusion_reward.data.sources import SourceOptions
    from diffusion_reward.errors import UserError
    from diffusion_reward.scoring_options import ScoreConfig

    with pytest.raises(UserError, match=r"^`rate_hz` must be > 0.0, got -5.0$"):
        SourceOptions(rate_hz=-5.0)
    with pytest.raises(UserError, match=r"^`skip_step` must be >= 0, got -1$"):
        ScoreConfig(skip_step=-1)
    out = tmp_path / "o.hdf5"
    for flags, line in [(["--rate", "-5"], "error: --rate must be > 0.0, got -5.0"),
                        (["--skip-step", "-1"], "error: --skip-step must be >= 0, got -1")]:
        assert main(["relabel", "--input", str(tmp_path / "in.hdf5"), "--out", str(out), *flags]) == 2
        assert capsys.readouterr().err.strip() == line
    assert not out.exists()

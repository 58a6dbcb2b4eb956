"""Tests for nas.cli.options (options generated from config dataclasses) and the command table."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import pytest

from nas.cli import build_parser, main
from nas.cli.commands import COMMANDS, GROUPS
from nas.cli.options import Opt, add_config_options, config_values, field_comments


@dataclass(frozen=True)
class _Recipe:
    name: str  # what to call it
    epochs: int = 30  # passes over the data
    lr: float = 2e-3  # peak learning rate
    clip: float | None = None  # clip the gradient norm (default: no clipping)
    seeds: tuple[int, ...] = (0,)  # one run per seed
    formats: tuple[str, ...] = ("a", "b")  # comma-separated
    quick: bool = False  # small settings
    distill: bool = True  # distil from the largest
    with_ops: bool | None = None  # also per-op records,
    # a comment that runs on
    silent: int = 1


def _parser(**kw) -> tuple[argparse.ArgumentParser, list[str]]:
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    return parser, add_config_options(parser, _Recipe, **kw)


def test_field_comments_are_the_trailing_comments_of_the_fields():
    comments = field_comments(_Recipe)
    assert comments["epochs"] == "passes over the data"
    assert comments["clip"] == "clip the gradient norm (default: no clipping)"
    assert comments["with_ops"] == "also per-op records, a comment that runs on"
    assert "silent" not in comments


def test_every_field_becomes_an_option_of_its_type_and_default():
    parser, names = _parser()
    assert names == [f.name for f in dataclasses.fields(_Recipe)]
    args = parser.parse_args(["--name", "x"])
    assert (args.epochs, args.lr, args.clip, args.seeds, args.formats) == (30, 2e-3, None, None, "a,b")
    assert (args.quick, args.distill, args.with_ops) == (False, True, None)
    args = parser.parse_args(["--name", "x", "--epochs", "3", "--lr", "0.5", "--clip", "1.5", "--seeds", "1",
                              "--seeds", "2", "--formats", "b", "--quick", "--no-distill", "--with-ops"])
    assert (args.epochs, args.lr, args.clip, args.seeds, args.formats) == (3, 0.5, 1.5, [1, 2], "b")
    assert (args.quick, args.distill, args.with_ops) == (True, False, True)
    assert _Recipe(**config_values(_Recipe, args, names)) == _Recipe(
        name="x", epochs=3, lr=0.5, clip=1.5, seeds=(1, 2), formats="b", quick=True, distill=False, with_ops=True)


def test_a_field_without_default_is_required_and_bad_values_are_usage_errors(capsys):
    parser, _ = _parser()
    with pytest.raises(SystemExit):
        parser.parse_args([])
    assert "the following arguments are required: --name" in capsys.readouterr().err
    with pytest.raises(argparse.ArgumentError, match="invalid int value: 'x'"):
        parser.parse_args(["--name", "n", "--epochs", "x"])


def test_values_left_out_keep_the_dataclass_defaults():
    parser, names = _parser()
    assert _Recipe(**config_values(_Recipe, parser.parse_args(["--name", "x"]), names)) == _Recipe(name="x",
                                                                                                  formats="a,b")


def test_help_is_the_comment_with_the_default():
    parser, _ = _parser()
    text = parser.format_help()
    assert "passes over the data (default 30)" in text
    assert "clip the gradient norm (default: no clipping)" in text  # said by the comment, not added twice
    assert "one run per seed (repeatable; default 0)" in text
    assert "--no-distill" in text and "--distill" not in text.replace("--no-distill", "")


def test_overrides_rename_change_defaults_and_restrict_choices():
    parser, names = _parser(include=("name", "epochs", "formats"), overrides={
        "epochs": Opt(default=40, help="epochs here"), "formats": Opt(flag="--format", choices=("a", "b")),
        "name": Opt(required=False, default="n")})
    assert names == ["name", "epochs", "formats"]
    args = parser.parse_args(["--format", "b"])
    assert (args.name, args.epochs, args.formats) == ("n", 40, "b")
    assert "epochs here (default 40)" in parser.format_help()
    with pytest.raises(argparse.ArgumentError, match="invalid choice: 'c'"):
        parser.parse_args(["--format", "c"])


def test_unknown_fields_are_named():
    with pytest.raises(ValueError, match="_Recipe has no field.s. nope; fields: name, epochs"):
        _parser(include=("nope",))
    with pytest.raises(ValueError, match="no field.s. other"):
        _parser(overrides={"other": Opt()})


# ---- the command table ---------------------------------------------------------------------------

def test_every_command_of_the_table_parses_and_has_help():
    parser = build_parser()  # every command with its options
    for name, cls in COMMANDS.items():
        assert cls.name == name and cls.help
        assert len(name) == 1 or name[0] in GROUPS
    text = parser.format_help()
    for name in {n[0] for n in COMMANDS}:
        assert name in text


def test_only_the_chosen_commands_options_are_built(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "mixer", "--help"])
    assert info.value.code == 0
    assert "--kernel-size" in capsys.readouterr().out
    parser = build_parser(())  # none: `nas --help` imports no library
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert all(not [a for a in p._actions if a.option_strings and a.dest != "help"] for p in sub.choices.values()
               if p.prog.split()[-1] not in GROUPS)

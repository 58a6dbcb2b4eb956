"""Stage *cli*: the ``nas`` and ``nas-search`` commands — a thin layer that parses, calls the
library and prints.

Every command is one small class with its options beside its action (:mod:`nas.cli.commands`,
listed in one table, :data:`~nas.cli.commands.COMMANDS`); options that mirror a config dataclass
are generated from its fields (:mod:`nas.cli.options`); `~nas.cli.run.run_command` maps
errors to exit codes. Only the chosen command's options are built, so ``nas --help`` imports no
library. Bad input (unknown names, missing files, an occupied run directory) exits with code 2
and a message that says what was wrong and what is valid.

May import: everything in ``nas`` (lazily, inside the commands).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nas.cli.commands import COMMANDS, GROUPS
from nas.cli.commands.search import Search
from nas.cli.run import run_command

__all__ = ["build_parser", "main", "run_command", "search_main"]


def _selected(argv: Sequence[str]) -> tuple[str, ...] | None:
    """The command words ``argv`` starts with (the command whose options are needed), if any."""
    words = tuple(a for a in argv[:2] if not a.startswith("-"))
    return next((name for name in COMMANDS if name == words[: len(name)]), None)


def build_parser(selected: tuple[str, ...] | None = None) -> argparse.ArgumentParser:
    """The ``nas`` parser: every command of the table, with the options of the command ``selected``
    (every command's when ``None``; none for ``()``)."""
    parser = argparse.ArgumentParser(prog="nas", description="QuadraNAS: hardware-aware NAS for quadratic networks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, cls in COMMANDS.items():
        where = sub
        if len(name) == 2:
            if name[0] not in groups:
                help_text, metavar = GROUPS[name[0]]
                group = sub.add_parser(name[0], help=help_text)
                groups[name[0]] = group.add_subparsers(dest="action", required=True, metavar=metavar)
            where = groups[name[0]]
        command = cls()
        p = where.add_parser(name[-1], help=cls.help)
        if selected is None or selected == name:
            command.add_arguments(p)
        p.set_defaults(func=command.run, command_object=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_selected(argv) or ()).parse_args(argv)
    return run_command(args, prog=f"nas {args.command}")


def search_main(argv: Sequence[str] | None = None) -> int:
    """The ``nas-search`` command: ``nas search`` under its own name."""
    parser = argparse.ArgumentParser(
        prog="nas-search", description="QuadraNAS search: Pareto-optimal QuadraNet models under hardware budgets")
    command = Search()
    command.add_arguments(parser)
    parser.set_defaults(func=command.run, command_object=command, command="search")
    return run_command(parser.parse_args(argv), prog="nas-search")

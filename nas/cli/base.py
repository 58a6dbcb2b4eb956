"""What every ``nas`` command is: a small class with its options beside its action.

A :class:`Command` names itself (``name``: ``("bench", "mixer")``), says what it does (``help``),
adds its options (:meth:`Command.add_arguments`, mostly generated from a config dataclass by
:mod:`nas.cli.options`; only the chosen command's, so that ``nas --help`` imports no library),
runs (:meth:`Command.run`: parse, call the library, print) and, where a
stopped run can continue, says how (:meth:`Command.interrupted`); :func:`nas.cli.run.run_command`
runs one.
"""

from __future__ import annotations

import argparse
from typing import ClassVar

__all__ = ["Command"]


class Command:
    """One command: ``name`` (its words after ``nas``), ``help``, its options and its action."""

    name: ClassVar[tuple[str, ...]]
    help: ClassVar[str]

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this command's options (none by default)."""

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError

    def interrupted(self, args: argparse.Namespace) -> str:
        """What a Ctrl-C left behind and how to go on ('' where nothing can go on)."""
        return ""

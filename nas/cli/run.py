"""Running a command: the one place that turns what it raises into an exit code and one line.

Bad input 2 (``ValueError``, missing or occupied files, other ``OSError``), a diverging training
run 1, an unreachable study database 3, Ctrl-C 130 with one line saying what was kept and how to
go on (the command's :meth:`~nas.cli.base.Command.interrupted`) instead of a traceback.
"""

from __future__ import annotations

import argparse
import sys

from nas.cli.commands import COMMANDS

__all__ = ["run_command"]


def _hint(args: argparse.Namespace) -> str:
    command = getattr(args, "command_object", None)
    if command is None:  # a namespace built by hand: find the command by its name
        words = tuple(w for w in (getattr(args, "command", None), getattr(args, "action", None)) if w)
        command = next((cls() for name, cls in COMMANDS.items() if name == words[: len(name)]), None)
    return command.interrupted(args) if command is not None else ""


def run_command(args: argparse.Namespace, *, prog: str) -> int:
    """Run ``args.func(args)`` and map what it raises to an exit code and one line on stderr."""
    try:
        return int(args.func(args))
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback from deep inside torch or optuna
        print(f"\n{prog}: interrupted{_hint(args)}", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file or directory in the way, no permission, …: bad --out and the like
        where = f"{err.filename}: " if err.filename is not None else ""
        print(f"{prog}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except FloatingPointError as err:  # training diverged; checkpoints already written are kept
        print(f"{prog}: training stopped: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:
        from nas.search.storage import StorageUnavailable

        if isinstance(err, StorageUnavailable):  # the database went away: the worker stops, nothing is lost
            print(f"{prog}: error: {err}", file=sys.stderr)
            return 3
        raise

"""Command-line options generated from a config dataclass, so that they are written once: as fields.

:func:`add_config_options` adds one option per field of a dataclass (``SearchConfig``,
``TrainConfig``, ``SupernetConfig``, ``ProfileRunConfig``, the benchmarks' configs): the flag is
the field's name with hyphens (``batch_size`` → ``--batch-size``), the type and default are the
field's, and the help is the comment that follows the field in its class's source. Types:

- ``int``, ``float``, ``str`` (also ``X | None``): one value of that type;
- ``bool``: a flag — ``--name`` sets True when the default is False, ``--no-name`` sets False
  when the default is True; ``bool | None`` (default None): ``--name`` sets True;
- ``tuple[int, ...]`` / ``tuple[float, ...]``: repeatable (``--batch-size 1 --batch-size 8``);
- ``tuple[str, ...]``: one comma-separated value, which the config parses (``--objectives
  accuracy,latency``).

A field without a default is a required option. :class:`Opt` overrides the flag, default, help,
choices or requiredness of one field for one command. :func:`config_values` collects the parsed
values back as the dataclass's keyword arguments (an option left at ``None`` whose field has
another default is left out, so the dataclass's default applies).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import tokenize
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["Opt", "add_config_options", "add_data_options", "config_values", "data_options", "field_comments"]

_MISSING = object()


@dataclass(frozen=True)
class Opt:
    """How one command shows one field (anything left unset comes from the field)."""

    flag: str | None = None
    default: Any = _MISSING
    help: str | None = None
    choices: Sequence[Any] | None = None
    required: bool | None = None


@cache
def field_comments(cls: type) -> dict[str, str]:
    """``{field: comment}``: the ``# …`` comment after each field of dataclass ``cls`` in its
    source (a field written over several lines: the comment on its last line), continued on the
    comment-only lines right below it."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source at hand (an interactive class): no help texts
        return {}
    lines = source.splitlines()
    indent = len(lines[0]) - len(lines[0].lstrip())
    source = "\n".join(line[indent:] for line in lines)
    comments: dict[int, str] = {}
    code_lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(tok.start[0])
    body = ast.parse(source).body[0]
    out = {}
    for node in getattr(body, "body", []):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            line = node.end_lineno or node.lineno
            parts = [comments[line]] if line in comments else []
            while parts and line + 1 in comments and line + 1 not in code_lines:  # runs on below the field
                line += 1
                parts.append(comments[line])
            if parts:
                out[node.target.id] = " ".join(parts)
    return out


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(tp, False)``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return _MISSING


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def add_config_options(parser: argparse.ArgumentParser, cls: type, *, include: Iterable[str] | None = None,
                       exclude: Iterable[str] = (), overrides: dict[str, Opt] | None = None) -> list[str]:
    """Add the options of dataclass ``cls``'s fields (``include``: only those, in that order;
    ``exclude``: all but those) to ``parser``; returns the field names added."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    names = list(include) if include is not None else [n for n in fields if n not in set(exclude)]
    unknown = [n for n in names + list(overrides or {}) if n not in fields]
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}; fields: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    for name in names:
        opt = (overrides or {}).get(name, Opt())
        default = _default(fields[name]) if opt.default is _MISSING else opt.default
        tp, optional = _unwrap_optional(hints[name])
        help_text = opt.help if opt.help is not None else comments.get(name, "")
        kwargs: dict[str, Any] = {"dest": name}
        flag = opt.flag or "--" + name.replace("_", "-")
        if tp is bool:
            if default is True:
                flag = opt.flag or "--no-" + name.replace("_", "-")
                kwargs.update(action="store_false", default=True)
            else:
                kwargs.update(action="store_true", default=None if optional else False)
        elif typing.get_origin(tp) is tuple and typing.get_args(tp)[0] is not str:
            kwargs.update(action="append", type=typing.get_args(tp)[0], default=None)
            if default not in (_MISSING, None, ()):
                help_text += f" (repeatable; default {_shown(default)})"
            else:
                help_text += " (repeatable)"
        else:
            kwargs.update(type=str if typing.get_origin(tp) is tuple else tp)
            if default is _MISSING:
                kwargs["required"] = True
            else:
                kwargs["default"] = _shown(default) if isinstance(default, tuple) else default
                if default is not None and "(default" not in help_text:  # unless the comment says it
                    help_text += f" (default {_shown(default)})"
        if kwargs.get("action") not in ("store_true", "store_false") and opt.choices is None:
            kwargs["metavar"] = flag.lstrip("-").replace("-", "_").upper()  # argparse shows choices otherwise
        if opt.required is not None:
            kwargs["required"] = opt.required
        if opt.choices is not None:
            kwargs["choices"] = list(opt.choices)
        kwargs["help"] = help_text.strip() or None
        parser.add_argument(flag, **kwargs)
    return names


def config_values(cls: type, args: argparse.Namespace, names: Iterable[str]) -> dict[str, Any]:
    """The parsed values of fields ``names`` as keyword arguments of ``cls``: a repeated option as a
    tuple; an option left at ``None`` is left out where the field's own default is not ``None``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for name in names:
        value = getattr(args, name)
        if value is None and _default(fields[name]) is not None:
            continue
        values[name] = tuple(value) if isinstance(value, list) else value
    return values


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The file sources' options (:class:`nas.data.DataOptions`); read back with :func:`data_options`."""
    from nas.data import DataOptions

    parser.set_defaults(data_option_fields=add_config_options(parser, DataOptions, overrides={
        "channels": Opt(choices=(1, 3))}))


def data_options(args: argparse.Namespace) -> dict[str, Any]:
    """The data options given on the command line, as ``load_dataset`` keywords."""
    from nas.data import DataOptions

    return DataOptions(**config_values(DataOptions, args, args.data_option_fields)).to_kwargs()

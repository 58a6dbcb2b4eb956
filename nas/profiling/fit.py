"""Predictors from profile tables: what ``nas predictors fit`` does, and where artifacts are.

:func:`select_rows` picks the rows of one device, one space and the asked batch sizes from a
table that may hold several (naming what it holds when the choice is ambiguous);
:func:`fit_predictors` fits one :class:`predictors.Predictor` per target on them and saves each
under ``OUT/<target>/``, keeping predictors already there unless ``overwrite``.
:func:`artifact_dirs` lists the artifacts of a directory (one, or one per subdirectory).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from nas.rundir import file_in_the_way
from predictors.predictor import Predictor
from predictors.table import read_profiles, rows_for

__all__ = ["DEFAULT_TARGETS", "artifact_dirs", "fit_predictors", "select_rows"]

DEFAULT_TARGETS = ("latency", "memory")  # what a search needs


def artifact_dirs(path: str | Path) -> list[Path]:
    """``path`` if it is a predictor artifact, else the artifacts in its subdirectories."""
    path = Path(path)
    if (path / "predictor.json").exists():
        return [path]
    found = sorted(p.parent for p in path.glob("*/predictor.json"))
    if not found:
        raise FileNotFoundError(f"{path} holds no predictor artifact (no predictor.json in it or its subdirectories)")
    return found


def select_rows(table: pd.DataFrame, *, source: str | Path, fingerprint_id: str | None = None,
                space: str | None = None, batch_sizes: Sequence[int] | None = None) -> pd.DataFrame:
    """The rows of ``table`` (read from ``source``, named in messages) a predictor is fitted on: one
    device (``fingerprint_id``, needed when the table holds several), one space (``space``,
    likewise) and ``batch_sizes`` (default all)."""
    if len(table) == 0:
        raise ValueError(f"profile table {source} has no rows; profile some architectures with `nas profile`")
    ids = sorted(table["fingerprint_id"].astype(str).unique())
    if fingerprint_id:
        if fingerprint_id not in ids:
            raise ValueError(f"{source} has no rows of fingerprint {fingerprint_id!r}; it has {ids}")
    elif len(ids) > 1:
        raise ValueError(f"{source} holds {len(ids)} devices {ids}; choose one with --fingerprint-id")
    table = rows_for(table, fingerprint_id=fingerprint_id or ids[0])
    spaces = sorted(table["space"].astype(str).unique())
    if space:
        if space not in spaces:
            raise ValueError(f"{source} has no rows of space {space!r}; it has {spaces}")
    elif len(spaces) > 1:
        raise ValueError(f"{source} holds {len(spaces)} spaces {spaces}; choose one with --space "
                         f"(one predictor per space)")
    table = rows_for(table, batch_sizes=list(batch_sizes) if batch_sizes else None, space=space)
    if len(table) == 0:
        raise ValueError(f"no rows of {source} match batch sizes {list(batch_sizes or [])}")
    return table


def fit_predictors(profiles: str | Path, out: str | Path, *, targets: Sequence[str] = DEFAULT_TARGETS,
                   model: str = "auto", batch_sizes: Sequence[int] | None = None, fingerprint_id: str | None = None,
                   space: str | None = None, overwrite: bool = False, seed: int = 0,
                   on_fitted: Callable[[str, Predictor, Path], None] | None = None) -> dict[str, Predictor]:
    """Fit one predictor per target on the selected rows of the profile table ``profiles`` and save
    it to ``OUT/<target>/``; returns them by target, and tells ``on_fitted(target, predictor,
    directory)`` of each as soon as it is saved. Everything is checked before anything is
    written: a file in the way of ``out``, an ambiguous table, predictors already in ``out``
    (kept unless ``overwrite``), a negative seed."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:  # as the other commands check their seed
        raise ValueError(f"--seed must be a non-negative integer, got {seed!r}")
    out = Path(out)
    blocker = file_in_the_way(out)
    if blocker == out:
        raise ValueError(f"--out {out} is a file; give a directory (one artifact per target is written under it)")
    if blocker is not None:
        raise ValueError(f"--out {out} cannot be created: {blocker} is a file, not a directory")
    table = select_rows(read_profiles(profiles), source=profiles, fingerprint_id=fingerprint_id, space=space,
                        batch_sizes=batch_sizes)
    held = [out / t for t in targets if (out / t / "predictor.json").exists()]
    if held and not overwrite:
        what, it = ("holds a predictor", "it") if len(held) == 1 else ("hold predictors", "them")
        missing = [t for t in targets if not (out / t / "predictor.json").exists()]
        rest = f", --target {','.join(missing)} to fit only the missing one(s)," if missing else ""
        raise ValueError(f"{', '.join(map(str, held))} already {what}; pass --overwrite to replace {it}{rest} "
                         f"or choose another --out")
    fitted = {}
    for target in targets:
        pred = Predictor(target=target, model=model, seed=seed).fit(table)
        pred.save(out / target)
        fitted[target] = pred
        if on_fitted is not None:  # as each is saved: a later target's failure does not hide it
            on_fitted(target, pred, out / target)
    return fitted

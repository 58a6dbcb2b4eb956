"""The dataset registry: :class:`DatasetSource` plug-ins and :func:`load_dataset`.

Each source module registers its class with :func:`register_dataset`; :data:`DATASETS` (name →
class) is the only list of them, and a source names the search spaces built for it (``spaces``),
so :func:`default_dataset` needs no list of its own. Nothing is ever downloaded.
"""

from __future__ import annotations

import abc
import inspect
import warnings
from pathlib import Path
from typing import Any, ClassVar

from nas.data.splits import DatasetSplits

__all__ = ["DATASETS", "DatasetSource", "dataset_names", "default_dataset", "load_dataset", "register_dataset"]


class DatasetSource(abc.ABC):
    """A pluggable dataset: keyword-only constructor that validates, ``load(seed=…)``."""

    name: ClassVar[str]
    description: ClassVar[str]
    takes_data_dir: ClassVar[bool] = False
    # Why a source without data_dir reads no files (said when a data_dir is passed to it anyway).
    data_origin: ClassVar[str] = "its data is built in memory"
    # The registered search spaces built for this dataset (their default dataset).
    spaces: ClassVar[tuple[str, ...]] = ()

    @abc.abstractmethod
    def load(self, *, seed: int) -> DatasetSplits:
        """Build the three splits; the same seed always gives the same splits."""


DATASETS: dict[str, type[DatasetSource]] = {}


def register_dataset(cls: type[DatasetSource]) -> type[DatasetSource]:
    """Class decorator: add a source to :data:`DATASETS` under its ``name`` (once)."""
    if cls.name in DATASETS:
        raise ValueError(f"dataset {cls.name!r} is already registered (by {DATASETS[cls.name].__module__})")
    DATASETS[cls.name] = cls
    return cls


def dataset_names() -> list[str]:
    return sorted(DATASETS)


def default_dataset(space: str) -> str:
    """The dataset a search space is built for; a space without one raises, naming the choices."""
    for name in dataset_names():
        if space in DATASETS[name].spaces:
            return name
    raise ValueError(f"space {space!r} has no default dataset; pass --dataset (one of: "
                     f"{', '.join(dataset_names())})")


def load_dataset(name: str, *, seed: int = 0, data_dir: str | Path | None = None,
                 **kwargs: Any) -> DatasetSplits:
    """Build dataset ``name`` with ``kwargs`` and load it with ``seed``.

    ``data_dir`` goes to sources that read files (cifar10). Sources that read none (digits:
    embedded in scikit-learn; synthetic: generated) ignore it with a ``UserWarning`` saying
    so, rather than an error, because recorded runs pass their stored ``data_dir`` back in;
    ``data_dir=None`` gives no warning.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(dataset_names())}")
    cls = DATASETS[name]
    valid = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "data_dir")]
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        shown = valid + (["data_dir"] if cls.takes_data_dir else [])
        flags = ", ".join(f"{u} (--{u.replace('_', '-')})" for u in unknown)
        raise ValueError(f"dataset {name!r} does not take {flags}; valid: {', '.join(shown) or '(none)'}")
    if cls.takes_data_dir:
        kwargs["data_dir"] = data_dir
    elif data_dir is not None:
        readers = ", ".join(n for n in dataset_names() if DATASETS[n].takes_data_dir) or "no dataset"
        warnings.warn(f"dataset {name!r} reads no files ({cls.data_origin}): data_dir={str(data_dir)!r} "
                      f"is ignored; only {readers} reads --data-dir", UserWarning, stacklevel=2)
    return cls(**kwargs).load(seed=seed)

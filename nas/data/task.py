"""The task a run works on: a dataset, its options and the concrete search space fitted to it.

A ``--space`` is a registered space (``digits-s``, ``cifar10-m``, …), a template's concrete space
(``m-3x64x64-5c``) or a template name (``s``, ``m``, ``l``). :func:`resolve_task` turns a template
name into the concrete space of the dataset's input shape and class count (the dataset is
loaded once for it; file sources are cached, so this costs a cache read), and gives file sources
the template's native ``image_size`` unless one is given; with a fixed space, file sources get the
space's own input size and channels unless given. Runs record the resolved names, so a
resume, a worker or an export rebuilds exactly the same space and data.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.data.source import DATASETS, dataset_names, default_dataset, load_dataset
from search_spaces.space import create_space
from search_spaces.templates import TEMPLATES, instantiate, template_names

__all__ = ["Task", "check_space_name", "resolve_task"]


def check_space_name(space: object) -> str:
    """``space`` if it names a registered space, a template or a template's concrete space."""
    if isinstance(space, str) and space in TEMPLATES:
        return space
    create_space(space)  # unknown: the error lists registered spaces and templates
    return space


@dataclass(frozen=True)
class Task:
    space: str  # the concrete space's name
    dataset: str
    data_options: dict[str, Any] = field(default_factory=dict)


def _takes(dataset: str) -> frozenset[str]:
    """The keyword options a registered dataset's source takes (none for an unknown name)."""
    cls = DATASETS.get(dataset)
    return frozenset(inspect.signature(cls.__init__).parameters) if cls is not None else frozenset()


def resolve_task(space: str, dataset: str | None, *, data_dir: str | Path | None = None,
                 data_options: Mapping[str, Any] | None = None) -> Task:
    """The concrete space, the dataset (default: the space's own) and the data options to load it with."""
    options = dict(data_options or {})
    check_space_name(space)
    if space not in TEMPLATES:
        dataset = dataset or default_dataset(space)
        concrete = create_space(space)
        c, h, w = concrete.input_shape
        takes = _takes(dataset)
        if "image_size" in takes and options.get("image_size") is None and h == w:
            options["image_size"] = h  # a fixed space's own input size
        if "channels" in takes and options.get("channels") is None:
            options["channels"] = c
        return Task(space=space, dataset=dataset, data_options=options)
    if dataset is None:
        raise ValueError(f"space {space!r} is a template ({', '.join(template_names())}): it is fitted to a "
                         f"dataset's input, so pass --dataset (one of: {', '.join(dataset_names())})")
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(dataset_names())}")
    if "image_size" in _takes(dataset) and options.get("image_size") is None:
        options["image_size"] = TEMPLATES[space].native_px
    splits = load_dataset(dataset, seed=0, data_dir=data_dir, **options)  # the shape does not depend on the seed
    if "channels" in _takes(dataset):  # recorded: the same as the concrete name's, and no header scan again
        options["channels"] = splits.input_shape[0]
    concrete = instantiate(space, input_shape=tuple(splits.input_shape), num_classes=splits.num_classes)
    return Task(space=concrete.name, dataset=dataset, data_options=options)

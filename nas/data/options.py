""":class:`DataOptions`: the settings of the file-reading sources, as one plain-data record.

``nas-search``, ``nas train-supernet``, ``nas train-net`` and ``nas space show`` take them as
options (``--image-size``, ``--channels``, …; the benchmarks take none: they load a dataset with its
defaults, or a template's native size); a run records the ones given
(:meth:`DataOptions.to_kwargs`) as ``data_options`` in its ``config.json``, and every later load of
that run's data passes them back to :func:`nas.data.load_dataset`. A source that does not take an
option given refuses it, naming the ones it takes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

__all__ = ["DataOptions", "check_data_options"]


@dataclass(frozen=True)
class DataOptions:
    image_size: int | None = None  # resize images to this side in pixels (default: the space template's native size)
    channels: int | None = None  # 1 (grayscale) or 3 (RGB) (default: 1 when every image is grayscale, else 3)
    image_column: str | None = None  # csv: the column of image paths, relative to the CSV (default: image)
    label_column: str | None = None  # csv: the column of labels, strings or integers (default: label)
    task: str | None = None  # elpv: defective (p >= 0.5 vs functional, the default) or levels (the four levels)
    skip_bad_images: bool = False  # skip unreadable or truncated images (counted and named) instead of stopping

    def to_kwargs(self) -> dict[str, Any]:
        """The options given (not at their defaults), as :func:`nas.data.load_dataset` keywords."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}


def check_data_options(options: object) -> dict[str, Any]:
    """``options`` as a dict of :class:`DataOptions` fields (the keys are checked, the values by the source)."""
    if not isinstance(options, dict):
        raise TypeError(f"data_options must be a dict of {', '.join(f.name for f in fields(DataOptions))}, "
                        f"got {type(options).__name__}")
    valid = [f.name for f in fields(DataOptions)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown data option(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return options

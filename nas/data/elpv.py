"""``elpv``: the ELPV solar-cell electroluminescence dataset, from the ``elpv-dataset`` package.

2,624 grayscale 300×300 images of photovoltaic cells, each labelled with the probability that it
is defective — 0, 1/3, 2/3 or 1 — by an expert (Buerhop-Lutz et al., 2018; Deitsch et al.,
*Automatic classification of defective photovoltaic module cells in electroluminescence images*,
Solar Energy 185, 2019). Installed with ``pip install 'quadranas[elpv]'``; nothing is
downloaded. **Its images are licensed CC BY-NC-SA 4.0** (non-commercial, share-alike): models
trained on them carry that on their model card.

Tasks (``task``): ``defective`` (p ≥ 0.5, classes ``functional``, ``defective``; the default) and
``levels`` (the four probabilities, classes ``p=0``, ``p=1/3``, ``p=2/3``, ``p=1``). Split seeded
and stratified; images resized to ``image_size`` (default 32) and cached, so only the first load
decodes the 2,624 PNGs.
"""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np

from nas.data.imagefolder import DEFAULT_IMAGE_SIZE
from nas.data.labelled import check_image_size, image_file_splits
from nas.data.source import DatasetSource, register_dataset
from nas.data.splits import DatasetSplits, check_seed

__all__ = ["ELPV_LICENSE", "ELPV_TASKS", "ElpvSource", "elpv_root"]

ELPV_LICENSE = "CC BY-NC-SA 4.0 (ELPV dataset, Buerhop-Lutz et al. 2018; Deitsch et al. 2019)"
ELPV_TASKS = ("defective", "levels")
_LEVELS = (0.0, 1 / 3, 2 / 3, 1.0)
_LEVEL_NAMES = ("p=0", "p=1/3", "p=2/3", "p=1")


def elpv_root() -> Path:
    """The installed package's ``data`` folder (``labels.csv``, ``images/``)."""
    spec = importlib.util.find_spec("elpv_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("elpv: the ELPV dataset is not installed; install the extra with "
                                  "pip install 'quadranas[elpv]' (the elpv-dataset package)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_labels(root: Path) -> tuple[list[Path], np.ndarray]:
    """The image files and their defect probabilities, from ``labels.csv``."""
    path = root / "labels.csv"
    files, probs = [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise FileNotFoundError(f"elpv: cannot read {path}: {err.strerror}; reinstall 'quadranas[elpv]'") from None
    for n, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            files.append(root / parts[0])
            probs.append(float(parts[1]))
        except (IndexError, ValueError):
            raise ValueError(f"elpv: {path} line {n} is not 'PATH PROBABILITY TYPE': {line!r}") from None
    return files, np.asarray(probs)


@register_dataset
class ElpvSource(DatasetSource):
    name = "elpv"
    description = ("ELPV solar cells: 2,624 grayscale electroluminescence images, defective vs functional (or 4 "
                   "levels); pip install 'quadranas[elpv]'; images CC BY-NC-SA 4.0")
    data_origin = "its images are installed with the elpv-dataset package"

    def __init__(self, *, task: str | None = None, image_size: int | None = None,
                 skip_bad_images: bool = False) -> None:
        self.task = task or "defective"
        if self.task not in ELPV_TASKS:
            raise ValueError(f"elpv: unknown task {task!r}; valid: {', '.join(ELPV_TASKS)}")
        self.image_size = check_image_size(self.name, image_size) or DEFAULT_IMAGE_SIZE
        self.skip_bad = bool(skip_bad_images)

    def load(self, *, seed: int) -> DatasetSplits:
        seed = check_seed(seed)
        root = elpv_root()
        files, probs = read_labels(root)
        if self.task == "defective":
            labels, names = (probs >= 0.5).astype(np.int64), ["functional", "defective"]
        else:
            labels = np.abs(probs[:, None] - np.asarray(_LEVELS)[None]).argmin(axis=1)
            names = list(_LEVEL_NAMES)
        splits = image_file_splits(self.name, files, labels, names, seed=seed, where=str(root), given=None,
                                   image_size=self.image_size, channels=1, skip_bad=self.skip_bad)
        return replace(splits, name=self.name, license=ELPV_LICENSE)

"""``csv``: a CSV of image paths and labels (the common exported-annotations layout).

``--data-dir`` is the CSV file (or a folder holding exactly one ``.csv``). ``image_column``
(default ``image``) holds paths relative to the CSV's folder (absolute ones are taken as they
are); ``label_column`` (default ``label``) holds class names or non-negative integers. Integer
labels are class indices (class *i* is named ``"i"``); string labels become classes in sorted
order. Optionally a ``split`` column with ``train``/``val``/``test`` gives the splits; otherwise
they are seeded and stratified. Images are decoded as for ``imagefolder``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from nas.data.imagefolder import DEFAULT_IMAGE_SIZE
from nas.data.labelled import check_channels, check_image_size, image_file_splits
from nas.data.source import DatasetSource, register_dataset
from nas.data.splits import DatasetSplits, check_seed

__all__ = ["CsvSource"]

_SPLIT_COLUMN = "split"
_SPLITS = ("train", "val", "test")


def _csv_path(data_dir: object) -> Path:
    layout = "a CSV file of image paths and labels (or a folder holding one .csv)"
    if data_dir is None:
        raise ValueError(f"csv: --data-dir is required: {layout}")
    path = Path(data_dir)
    if path.is_dir():
        found = sorted(path.glob("*.csv"))
        if len(found) != 1:
            listed = ", ".join(p.name for p in found) or "none"
            raise ValueError(f"csv: {path} holds {len(found)} .csv files ({listed});"
                             f" pass the CSV file itself as --data-dir")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"csv: {path} does not exist; expected {layout}")
    return path


@register_dataset
class CsvSource(DatasetSource):
    name = "csv"
    description = "your images listed in a CSV: --data-dir FILE.csv with --image-column and --label-column"
    takes_data_dir = True

    def __init__(self, *, data_dir: str | Path | None, image_column: str | None = None,
                 label_column: str | None = None, image_size: int | None = None, channels: int | None = None,
                 skip_bad_images: bool = False) -> None:
        self.path = _csv_path(data_dir)
        self.image_column = image_column or "image"
        self.label_column = label_column or "label"
        self.image_size = check_image_size(self.name, image_size) or DEFAULT_IMAGE_SIZE
        self.channels = check_channels(self.name, channels)
        self.skip_bad = bool(skip_bad_images)

    def _rows(self) -> list[dict[str, str]]:
        try:
            with open(self.path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                header = reader.fieldnames or []
                missing = [c for c in (self.image_column, self.label_column) if c not in header]
                if missing:
                    raise ValueError(f"csv: {self.path} has no column(s) {', '.join(map(repr, missing))}; its columns:"
                                     f" {', '.join(map(repr, header)) or '(none)'} (choose with --image-column and "
                                     f"--label-column)")
                rows = list(reader)
        except UnicodeDecodeError as err:
            raise ValueError(f"csv: {self.path} is not UTF-8 text ({err.reason})") from None
        if not rows:
            raise ValueError(f"csv: {self.path} has a header but no rows")
        return rows

    def load(self, *, seed: int) -> DatasetSplits:
        seed = check_seed(seed)
        rows = self._rows()
        files, raw = [], []
        for n, row in enumerate(rows, start=2):  # line 1 is the header
            value, label = (row.get(self.image_column) or "").strip(), (row.get(self.label_column) or "").strip()
            if not value or not label:
                raise ValueError(f"csv: {self.path} line {n}: empty {self.image_column!r} or {self.label_column!r}")
            file = Path(value) if Path(value).is_absolute() else self.path.parent / value
            if not file.is_file():
                raise FileNotFoundError(f"csv: {self.path} line {n}: image {file} does not exist")
            files.append(file)
            raw.append(label)
        if all(r.lstrip("-").isdigit() for r in raw):
            labels = np.asarray([int(r) for r in raw])
            if labels.min() < 0:
                raise ValueError(f"csv: label {int(labels.min())} in {self.path} is out of range; integer labels are "
                                 f"class indices 0, 1, …")
            missing = sorted(set(range(int(labels.max()) + 1)) - set(labels.tolist()))
            if missing:
                raise ValueError(f"csv: integer labels in {self.path} are class indices 0 to {int(labels.max())}, but "
                                 f"{', '.join(map(str, missing[:5]))}{' …' if len(missing) > 5 else ''} never occur; "
                                 f"number the classes 0 to K-1 without gaps, or use class names")
            names = [str(i) for i in range(int(labels.max()) + 1)]
        else:
            names = sorted(set(raw))
            index = {name: i for i, name in enumerate(names)}
            labels = np.asarray([index[r] for r in raw])
        given = None
        if rows and _SPLIT_COLUMN in rows[0] and self.label_column != _SPLIT_COLUMN:
            split = [(row[_SPLIT_COLUMN] or "").strip().lower() for row in rows]
            bad = sorted(set(split) - set(_SPLITS))
            if bad:
                raise ValueError(f"csv: {self.path} column 'split' holds {', '.join(map(repr, bad))}; valid: train, "
                                 f"val, test")
            given = {s: np.flatnonzero(np.asarray(split) == s) for s in _SPLITS}
        return image_file_splits(self.name, files, labels, names, seed=seed, where=str(self.path), given=given,
                                 image_size=self.image_size, channels=self.channels, skip_bad=self.skip_bad)

"""Small image datasets written to disk for the file sources' tests: learnable (each class has
its own brightness and stripe), PNG through Pillow, with the arrays they were made from."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

CLASSES = ("cat", "dog", "owl")


def class_image(label: int, index: int, *, size: tuple[int, int] = (20, 24), rgb: bool = True) -> np.ndarray:
    """A seeded image of class ``label``: uint8 (H, W, 3) or (H, W)."""
    rng = np.random.default_rng([label, index])
    h, w = size
    img = rng.normal(50 + 70 * label, 12, size=(h, w)).clip(0, 255)
    img[:, (label * 5) % w: (label * 5) % w + 4] = 250  # a class-specific stripe
    img = img.astype(np.uint8)
    return np.stack([img, img[::-1], 255 - img], axis=-1) if rgb else img


def write_folder(root: Path, *, per_class: int = 10, classes=CLASSES, rgb: bool = True, split_layout: bool = False,
                 suffix: str = ".png") -> dict[str, list[Path]]:
    """``root/<class>/<i>.png`` (or ``root/{train,val,test}/<class>/…``); returns {class: files}."""
    from PIL import Image

    files: dict[str, list[Path]] = {c: [] for c in classes}
    for label, name in enumerate(classes):
        for i in range(per_class):
            if split_layout:
                split = "train" if i < per_class - 4 else ("val" if i < per_class - 2 else "test")
                folder = root / split / name
            else:
                folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{i:03d}{suffix}"
            Image.fromarray(class_image(label, i, rgb=rgb)).save(path)
            files[name].append(path)
    return files


def write_csv(root: Path, *, per_class: int = 10, image_column: str = "file", label_column: str = "species",
              int_labels: bool = False) -> Path:
    """Images in ``root/img/`` and ``root/labels.csv`` listing them (paths relative to the CSV)."""
    files = write_folder(root / "img", per_class=per_class)
    path = root / "labels.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([image_column, "extra", label_column])
        for label, (name, paths) in enumerate(files.items()):
            for p in paths:
                writer.writerow([p.relative_to(root).as_posix(), "x", label if int_labels else name])
    return path


def write_npz(path: Path, *, per_class: int = 10, layout: str = "NHWC", dtype: str = "uint8", **extra) -> dict:
    """An ``.npz`` of ``x`` in ``layout`` and ``y``; returns the arrays written."""
    x = np.stack([class_image(label, i) for label in range(len(CLASSES)) for i in range(per_class)])  # NHWC uint8
    y = np.repeat(np.arange(len(CLASSES)), per_class)
    if layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    elif layout == "NHW":
        x = x[..., 0]
    if dtype == "float":
        x = x.astype(np.float32) / 255.0
    arrays = {"x": x, "y": y, **extra}
    np.savez(path, **arrays)
    return arrays

"""``imagefolder``: a folder of images with one subfolder per class, read from ``--data-dir``.

Layouts: ``DIR/<class>/*.png`` (split seeded and stratified, 70/15/15 %) or
``DIR/{train,val,test}/<class>/*`` (the splits used as given; every split must have the same
class folders). Class names are the folder names, sorted; files are PNG, JPEG, BMP or TIFF
(hidden files and other suffixes are ignored). Images are converted to ``channels`` (default:
1 if every image is grayscale, else 3), resized to ``image_size`` (default 32; ``nas-search``
passes the space template's native size) and cached (:mod:`nas.data.images`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nas.data.images import is_image_file
from nas.data.labelled import check_channels, check_image_size, image_file_splits
from nas.data.source import DatasetSource, register_dataset
from nas.data.splits import DatasetSplits, check_seed

__all__ = ["ImageFolderSource", "DEFAULT_IMAGE_SIZE", "class_folders"]

DEFAULT_IMAGE_SIZE = 32
_SPLITS = ("train", "val", "test")


def _data_dir(source: str, data_dir: object, layout: str) -> Path:
    if data_dir is None:
        raise ValueError(f"{source}: --data-dir is required: {layout}")
    path = Path(data_dir)
    if not path.exists():
        raise FileNotFoundError(f"{source}: --data-dir {path} does not exist; expected {layout}")
    return path


def class_folders(source: str, root: Path) -> dict[str, list[Path]]:
    """``{class name: its image files}`` of the class subfolders of ``root``, names sorted."""
    if not root.is_dir():
        raise NotADirectoryError(f"{source}: {root} is not a folder")
    classes = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        classes[sub.name] = sorted(p for p in sub.rglob("*") if is_image_file(p))
    if not classes:
        loose = sum(1 for p in root.iterdir() if is_image_file(p))
        hint = f" (it holds {loose} loose image(s): put them in one subfolder per class)" if loose else ""
        raise ValueError(f"{source}: {root} has no class subfolders{hint}; expected {root}/<class>/<image>")
    empty = [name for name, files in classes.items() if not files]
    if empty:
        raise ValueError(f"{source}: class folder(s) {', '.join(str(root / n) for n in empty)} hold no images; "
                         f"valid images: .png, .jpg, .jpeg, .bmp, .tif, .tiff")
    return classes


@register_dataset
class ImageFolderSource(DatasetSource):
    name = "imagefolder"
    description = "your images: --data-dir DIR/<class>/*.png|jpg|bmp|tif, or DIR/{train,val,test}/<class>/*"
    takes_data_dir = True
    layout = "a folder with one subfolder of images per class, or train/, val/ and test/ folders of those"

    def __init__(self, *, data_dir: str | Path | None, image_size: int | None = None, channels: int | None = None,
                 skip_bad_images: bool = False) -> None:
        self.root = _data_dir(self.name, data_dir, self.layout)
        self.image_size = check_image_size(self.name, image_size) or DEFAULT_IMAGE_SIZE
        self.channels = check_channels(self.name, channels)
        self.skip_bad = bool(skip_bad_images)

    def _layout(self) -> tuple[list[str], list[Path], np.ndarray, dict[str, np.ndarray] | None]:
        """Class names, files, labels and (split layout) the given splits' indices."""
        split_dirs = [self.root / s for s in _SPLITS]
        if any(d.is_dir() for d in split_dirs):
            missing = [str(d) for d in split_dirs if not d.is_dir()]
            if missing:
                raise ValueError(f"{self.name}: {self.root} has split folders but lacks {', '.join(missing)}; "
                                 f"give all of train/, val/ and test/, or one folder per class")
            per_split = {s: class_folders(self.name, self.root / s) for s in _SPLITS}
            names = sorted(per_split["train"])
            for s in ("val", "test"):
                if sorted(per_split[s]) != names:
                    raise ValueError(f"{self.name}: {self.root / s} has classes {sorted(per_split[s])}, but "
                                     f"{self.root / 'train'} has {names}: every split needs the same class folders")
            files, labels, given, start = [], [], {}, 0
            for s in _SPLITS:
                for i, name in enumerate(names):
                    files += per_split[s][name]
                    labels += [i] * len(per_split[s][name])
                given[s] = np.arange(start, len(files))
                start = len(files)
            return names, files, np.asarray(labels), given
        classes = class_folders(self.name, self.root)
        names = list(classes)
        files = [f for name in names for f in classes[name]]
        labels = np.concatenate([np.full(len(classes[n]), i) for i, n in enumerate(names)])
        return names, files, labels, None

    def load(self, *, seed: int) -> DatasetSplits:
        seed = check_seed(seed)
        names, files, labels, given = self._layout()
        return image_file_splits(self.name, files, labels, names, seed=seed, where=str(self.root), given=given,
                                 image_size=self.image_size, channels=self.channels, skip_bad=self.skip_bad)


"""Dataset registry: every task the workbench trains on, as train/val/test tensors.

``DATASETS`` maps a name to a :class:`DatasetSource`; ``load_dataset(name, seed=…)`` builds
the source and returns a :class:`DatasetSplits` record of three ``TensorDataset``s holding
``(images, labels)`` = (float32 ``(N, C, H, W)``, int64 ``(N,)``).

Units: pixels are first scaled to [0, 1] (digits ÷ 16, CIFAR-10 ÷ 255), then normalised per
channel, ``x_norm = (x01 - mean[c]) / std[c]``, with mean and population std (ddof=0)
computed on the TRAIN split only; ``mean``/``std`` on the record are the constants applied
(in float32), so ``x01 = x_norm * std[c] + mean[c]`` undoes it.

- ``digits``: scikit-learn's bundled 8×8 digits (1797 images, embedded in the wheel);
  seeded stratified 70/15/15 % split.
- ``cifar10``: the CIFAR-10 *python* batches read from ``--data-dir``
  (https://www.cs.toronto.edu/~kriz/cifar.html, ``cifar-10-python.tar.gz``); 5000 of the
  50k training images (10 % of smaller batches) become val, ``test_batch`` is the test set.
- ``synthetic``: Gaussian images labelled by a seeded linear projection (learnable).

Nothing is ever downloaded. The CIFAR-10 files are pickles: only point at trusted files.
"""

from __future__ import annotations

import abc
import inspect
import pickle
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import TensorDataset

from nas.augment import AUGMENTATIONS

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_FILES = CIFAR10_TRAIN_FILES + ("test_batch",)
CIFAR10_SUBDIR = "cifar-10-batches-py"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_BIN_SUBDIR = "cifar-10-batches-bin"  # the binary version's folder (not read here)
CIFAR10_BIN_FILES = tuple(f"{f}.bin" for f in CIFAR10_FILES)
CIFAR10_BIN_RECORD = 1 + 3072  # binary version: 1 label byte + 3072 pixel bytes per image


@dataclass(frozen=True)
class DatasetSplits:
    """One task: train/val/test ``TensorDataset``s of (float32 (N, C, H, W), int64 (N,))."""

    name: str
    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    input_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int
    class_names: tuple[str, ...]
    augment: str  # hint for the trainer: one of AUGMENTATIONS
    mean: tuple[float, ...]  # per channel, applied to [0, 1] pixels
    std: tuple[float, ...]
    pixel_max: float | None = None  # raw pixels are divided by it to reach [0, 1]; None: no pixels (synthetic)

    def input_spec(self) -> dict[str, Any]:
        """How a deployed model's input is prepared from raw pixels (an export's card records it)."""
        c, h, w = self.input_shape
        scaled = "x[:, c]" if self.pixel_max is None else f"pixels[:, c] / {self.pixel_max:g}"
        return {"layout": "NCHW", "dtype": "float32", "shape": ["batch", c, h, w], "pixel_max": self.pixel_max,
                "mean": list(self.mean), "std": list(self.std), "class_names": list(self.class_names),
                "normalise": f"x[:, c] = ({scaled} - mean[c]) / std[c]"}

    def __post_init__(self) -> None:
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment={self.augment!r} is not valid; valid: {', '.join(AUGMENTATIONS)}")
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class_names for num_classes={self.num_classes}")
        if not len(self.mean) == len(self.std) == self.input_shape[0]:
            raise ValueError(f"mean/std need one value per channel ({self.input_shape[0]}), "
                             f"got {len(self.mean)}/{len(self.std)}")
        for split in ("train", "val", "test"):
            shape = tuple(getattr(self, split).tensors[0].shape[1:])
            if shape != tuple(self.input_shape):
                raise ValueError(f"{split} images are {shape}, expected input_shape {self.input_shape}")

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


class DatasetSource(abc.ABC):
    """A pluggable dataset: keyword-only constructor that validates, ``load(seed=…)``."""

    name: ClassVar[str]
    description: ClassVar[str]
    takes_data_dir: ClassVar[bool] = False
    # Why a source without data_dir reads no files (said when a data_dir is passed to it anyway).
    data_origin: ClassVar[str] = "its data is built in memory"

    @abc.abstractmethod
    def load(self, *, seed: int) -> DatasetSplits:
        """Build the three splits; the same seed always gives the same splits."""


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def _normalise(
    x01: dict[str, np.ndarray],
) -> tuple[dict[str, torch.Tensor], tuple[float, ...], tuple[float, ...]]:
    """Per-channel (x - mean) / std with train-split constants; x01 float32 (N, C, H, W) in [0, 1].

    Statistics are accumulated in float64 one channel at a time (bounded memory on CIFAR-10);
    the arrays are normalised in place and wrapped without a copy.
    """
    train = x01["train"]
    mean = np.array([train[:, c].mean(dtype=np.float64) for c in range(train.shape[1])])
    std = np.array([train[:, c].std(dtype=np.float64) for c in range(train.shape[1])])  # ddof=0
    std = np.where(std > 1e-12, std, 1.0)  # constant channel: shift only
    shape = (1, -1, 1, 1)
    for v in x01.values():
        v -= mean.astype(np.float32).reshape(shape)
        v /= std.astype(np.float32).reshape(shape)
    out = {k: torch.from_numpy(v) for k, v in x01.items()}
    return out, tuple(float(m) for m in mean), tuple(float(s) for s in std)


def _tensor_splits(images: dict[str, torch.Tensor],
                   labels: dict[str, np.ndarray]) -> dict[str, TensorDataset]:
    return {k: TensorDataset(images[k], torch.as_tensor(np.asarray(labels[k]), dtype=torch.int64))
            for k in ("train", "val", "test")}


def _split_indices(n: int, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded stratified (train, val, test) row indices of ``range(n)``, 70/15/15 %, disjoint."""
    random_state = _check_seed(seed) % 2**32
    idx = np.arange(n)
    train, rest = train_test_split(idx, test_size=0.30, stratify=labels, random_state=random_state)
    val, test = train_test_split(rest, test_size=0.50, stratify=labels[rest], random_state=random_state)
    return train, val, test


class DigitsSource(DatasetSource):
    name = "digits"
    description = "scikit-learn 8x8 digits: 1797 images, 10 classes, bundled (no download)"
    data_origin = "its images are embedded in the scikit-learn package"

    def __init__(self) -> None:  # no options; explicit so load_dataset can list them (none)
        pass

    def load(self, *, seed: int) -> DatasetSplits:
        raw = load_digits()
        x01 = (raw.data.reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)  # values 0..16 -> [0, 1]
        y = raw.target.astype(np.int64)
        parts = dict(zip(("train", "val", "test"), _split_indices(len(y), y, seed)))
        images, mean, std = _normalise({k: x01[i] for k, i in parts.items()})
        return DatasetSplits(
            name=self.name, **_tensor_splits(images, {k: y[i] for k, i in parts.items()}),
            input_shape=(1, 8, 8), num_classes=10, class_names=tuple(str(t) for t in raw.target_names),
            augment="none", mean=mean, std=std, pixel_max=16.0)


class Cifar10Source(DatasetSource):
    name = "cifar10"
    description = "CIFAR-10 python batches from --data-dir: 32x32 RGB, 10 classes (never downloads)"
    takes_data_dir = True

    def __init__(self, *, data_dir: str | Path | None) -> None:
        if data_dir is None:
            raise ValueError(
                f"cifar10: --data-dir is required: a directory holding {', '.join(CIFAR10_FILES)} "
                f"(optional batches.meta), directly or under {CIFAR10_SUBDIR}/, i.e. the extracted "
                "cifar-10-python.tar.gz; this loader never downloads")
        self.data_dir = Path(data_dir)

    _EXPECTED = (f"a directory holding {', '.join(CIFAR10_FILES)} (optional batches.meta), directly "
                 f"or under {CIFAR10_SUBDIR}/, i.e. the extracted {CIFAR10_ARCHIVE}")
    _BINARY = ("the CIFAR-10 binary version (cifar-10-binary.tar.gz: *.bin files under "
               f"{CIFAR10_BIN_SUBDIR}/) is not supported; this loader reads the python version "
               f"({CIFAR10_ARCHIVE}, which extracts to {CIFAR10_SUBDIR}/) from "
               "https://www.cs.toronto.edu/~kriz/cifar.html")

    @staticmethod
    def _is_archive(path: Path) -> bool:
        if path.name.lower().endswith((".tar.gz", ".tgz", ".tar", ".gz")):
            return True
        try:
            return tarfile.is_tarfile(path)
        except OSError:
            return False

    @classmethod
    def _archive_error(cls, archive: Path, what: str) -> FileNotFoundError:
        """``archive`` is a tar file: say to extract it, or that it is the unsupported binary version."""
        if "binary" in archive.name.lower():
            return FileNotFoundError(f"cifar10: {what} the archive of the binary version; {cls._BINARY}")
        try:
            with open(archive, "rb") as f:
                gzipped = f.read(2) == b"\x1f\x8b"
        except OSError:
            gzipped = archive.name.lower().endswith(("gz", "tgz"))
        flags = "-xzf" if gzipped else "-xf"
        return FileNotFoundError(
            f"cifar10: {what} an unextracted archive: extract it with `tar {flags} {archive} -C "
            f"{archive.parent}` and pass the directory (--data-dir {archive.parent}, which then holds "
            f"{CIFAR10_SUBDIR}/); expected {cls._EXPECTED}")

    def _find_dir(self) -> Path:
        """The directory holding the batch files: ``data_dir`` or ``data_dir/cifar-10-batches-py``.

        Anything else raises FileNotFoundError naming what ``data_dir`` is instead: absent, a
        file, the unextracted archive, the (unsupported) binary version, or short of batch files.
        """
        root = self.data_dir
        if not root.exists():
            raise FileNotFoundError(f"cifar10: --data-dir {root} does not exist; expected {self._EXPECTED}. "
                                    "This loader never downloads")
        if not root.is_dir():
            if self._is_archive(root):
                raise self._archive_error(root, f"--data-dir {root} is")
            raise FileNotFoundError(f"cifar10: --data-dir {root} is a file, not a directory; "
                                    f"expected {self._EXPECTED}")
        candidates = [root, root / CIFAR10_SUBDIR]
        missing = {d: [f for f in CIFAR10_FILES if not (d / f).is_file()] for d in candidates}
        for d in candidates:
            if not missing[d]:
                return d
        if all(len(missing[d]) == len(CIFAR10_FILES) for d in candidates):  # not one batch file
            for d in (root, root / CIFAR10_BIN_SUBDIR):
                found = [f for f in CIFAR10_BIN_FILES if (d / f).is_file()]
                if found:
                    raise FileNotFoundError(f"cifar10: {d} holds {', '.join(found)}: {self._BINARY}")
            for archive in (root / CIFAR10_ARCHIVE, root / "cifar-10-binary.tar.gz"):
                if archive.is_file():
                    raise self._archive_error(archive, f"{root} holds no batch files, only {archive},")
        best = min(candidates, key=lambda d: len(missing[d]))
        not_files = [f for f in missing[best] if (best / f).exists()]
        also = f" ({', '.join(not_files)}: not a regular file)" if not_files else ""
        raise FileNotFoundError(
            f"cifar10: missing CIFAR-10 python batch file(s) {', '.join(missing[best])} in {best}{also} "
            f"(searched {self.data_dir} and {self.data_dir / CIFAR10_SUBDIR}); expected "
            f"{', '.join(CIFAR10_FILES)} (optional batches.meta). This loader never downloads: "
            "extract cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html")

    @staticmethod
    def _read(path: Path) -> dict[bytes, Any]:
        try:
            with open(path, "rb") as f:
                obj = pickle.load(f, encoding="bytes")
        except Exception as e:  # truncated / not a pickle
            size = path.stat().st_size
            if size == 0:
                hint = " (the file is empty, 0 bytes)"
            elif size % CIFAR10_BIN_RECORD == 0 and not path.name.endswith("meta"):
                hint = (f" ({size} bytes, a multiple of the {CIFAR10_BIN_RECORD}-byte records of the binary "
                        f"version, renamed?); {Cifar10Source._BINARY}")
            else:
                hint = "; expected a pickled dict from the extracted cifar-10-python.tar.gz"
            raise ValueError(f"cifar10: cannot unpickle {path}: {e}{hint}") from e
        if not isinstance(obj, dict):
            raise ValueError(f"cifar10: {path} holds a {type(obj).__name__}, expected a dict")
        return {k.encode() if isinstance(k, str) else k: v for k, v in obj.items()}

    @classmethod
    def _read_batch(cls, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """One batch as (uint8 (N, 3, 32, 32), int64 (N,)), validated."""
        batch = cls._read(path)
        absent = [k.decode() for k in (b"data", b"labels") if k not in batch]
        if absent:
            raise ValueError(f"cifar10: {path} lacks key(s) {absent}; expected b'data' and b'labels'")
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
        if data.ndim >= 1 and data.shape[0] == 0:
            raise ValueError(f"cifar10: {path} holds no images (data {data.dtype} {data.shape}, "
                             f"{labels.size} label(s)); expected uint8 (N, 3072) data and N labels, N >= 1")
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f"cifar10: {path} data is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
        if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"cifar10: {path} has {labels.size} labels of {labels.dtype} "
                             f"for {data.shape[0]} images; expected {data.shape[0]} ints")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"cifar10: {path} labels span {labels.min()}..{labels.max()}, expected 0..9")
        # row = 1024 R, then 1024 G, then 1024 B values, each a row-major 32x32 plane
        return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)

    def _class_names(self, root: Path) -> tuple[str, ...]:
        path = root / "batches.meta"
        if not path.is_file():
            return CIFAR10_CLASSES
        meta = self._read(path)
        expected = ("expected a list of 10 class-name strings (bytes or str), "
                    "e.g. [b'airplane', …, b'truck']")
        if b"label_names" not in meta:
            keys = sorted(meta, key=repr)
            raise ValueError(f"cifar10: {path} has no b'label_names' key (keys: {keys!r:.200}); {expected}")
        names = meta[b"label_names"]
        if not isinstance(names, (list, tuple)) or len(names) != 10:
            got = (f"a {type(names).__name__} of {len(names)}" if isinstance(names, (list, tuple))
                   else f"a {type(names).__name__}")
            raise ValueError(f"cifar10: {path} b'label_names' is {got} ({names!r:.200}); {expected}")
        out = []
        for i, n in enumerate(names):
            try:
                name = n.decode() if isinstance(n, bytes) else n
            except UnicodeDecodeError:
                name = None
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"cifar10: {path} b'label_names'[{i}] is {n!r} ({type(n).__name__}); "
                                 f"{expected}, each non-empty UTF-8 text")
            out.append(name)
        return tuple(out)

    def load(self, *, seed: int) -> DatasetSplits:
        seed = _check_seed(seed)
        root = self._find_dir()
        class_names = self._class_names(root)  # a bad batches.meta fails before the batches are read
        batches = [self._read_batch(root / f) for f in CIFAR10_TRAIN_FILES]
        x_all = np.concatenate([b[0] for b in batches])
        y_all = np.concatenate([b[1] for b in batches])
        x_test, y_test = self._read_batch(root / "test_batch")
        n = len(y_all)
        n_val = min(5000, max(1, n // 10))  # 5000 of the real 50k; 10 % of smaller batches
        if n - n_val < 1:
            raise ValueError(f"cifar10: {n} training image(s) in {root}; need at least 2 (train + val)")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
        parts = {"train": perm[n_val:], "val": perm[:n_val]}
        x01 = {k: x_all[i].astype(np.float32) / 255 for k, i in parts.items()}  # uint8 -> [0, 1]
        x01["test"] = x_test.astype(np.float32) / 255
        images, mean, std = _normalise(x01)
        labels = {k: y_all[i] for k, i in parts.items()} | {"test": y_test}
        return DatasetSplits(
            name=self.name, **_tensor_splits(images, labels), input_shape=(3, 32, 32),
            num_classes=10, class_names=class_names, augment="crop_flip", mean=mean, std=std, pixel_max=255.0)


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"synthetic: {name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class SyntheticSource(DatasetSource):
    name = "synthetic"
    description = "Gaussian images, labels = argmax of a seeded linear projection (learnable)"
    data_origin = "its images are generated in memory from the seed"

    def __init__(self, *, input_shape: tuple[int, int, int] = (3, 32, 32), num_classes: int = 10,
                 n_train: int = 512, n_val: int = 128, n_test: int = 128) -> None:
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
            raise ValueError(f"synthetic: input_shape must be 3 positive ints (C, H, W), got {input_shape!r}")
        self.input_shape = tuple(_positive_int(f"input_shape[{i}]", v) for i, v in enumerate(input_shape))
        self.num_classes = _positive_int("num_classes", num_classes, minimum=2)
        self.n = {k: _positive_int(f"n_{k}", v)
                  for k, v in (("train", n_train), ("val", n_val), ("test", n_test))}

    def load(self, *, seed: int) -> DatasetSplits:
        gen = torch.Generator().manual_seed(_check_seed(seed))
        dim = int(np.prod(self.input_shape))
        proj = torch.randn(dim, self.num_classes, generator=gen)  # (C*H*W, K)
        images, labels = {}, {}
        for k, n in self.n.items():
            images[k] = torch.randn((n, *self.input_shape), generator=gen)  # (N, C, H, W)
            labels[k] = (images[k].reshape(n, dim) @ proj).argmax(dim=1).numpy()
        channels = self.input_shape[0]
        return DatasetSplits(
            name=self.name, **_tensor_splits(images, labels), input_shape=self.input_shape,
            num_classes=self.num_classes, class_names=tuple(f"class_{i}" for i in range(self.num_classes)),
            augment="none", mean=(0.0,) * channels, std=(1.0,) * channels)  # already N(0, 1): identity


DATASETS: dict[str, type[DatasetSource]] = {
    cls.name: cls for cls in (DigitsSource, Cifar10Source, SyntheticSource)}


# The registered dataset each search space is built for (no ImageNet loader exists: pass one).
DEFAULT_DATASET = {"digits-s": "digits", "cifar10-m": "cifar10"}


def dataset_names() -> list[str]:
    return sorted(DATASETS)


def default_dataset(space: str) -> str:
    """The dataset a search space is built for; a space without one raises, naming the choices."""
    if space not in DEFAULT_DATASET:
        raise ValueError(f"space {space!r} has no default dataset; pass --dataset (one of: "
                         f"{', '.join(dataset_names())})")
    return DEFAULT_DATASET[space]


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
        raise TypeError(f"dataset {name!r} got unexpected argument(s) {', '.join(unknown)}; "
                        f"valid: {', '.join(shown) or '(none)'}")
    if cls.takes_data_dir:
        kwargs["data_dir"] = data_dir
    elif data_dir is not None:
        readers = ", ".join(n for n in dataset_names() if DATASETS[n].takes_data_dir) or "no dataset"
        warnings.warn(f"dataset {name!r} reads no files ({cls.data_origin}): data_dir={str(data_dir)!r} "
                      f"is ignored; only {readers} reads --data-dir", UserWarning, stacklevel=2)
    return cls(**kwargs).load(seed=seed)

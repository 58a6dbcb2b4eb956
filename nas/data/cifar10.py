"""``cifar10``: the CIFAR-10 *python* batches read from ``--data-dir``, never downloaded.

(https://www.cs.toronto.edu/~kriz/cifar.html, ``cifar-10-python.tar.gz``): 5000 of the 50k
training images (10 % of smaller batches) become val, ``test_batch`` is the test set; 32×32 RGB
pixels ÷ 255, the standard crop-and-flip augmentation hinted to the trainer.

The batches are pickles. They are read through :class:`BatchUnpickler`, which admits only what
CIFAR-10 batches hold — dicts, lists, bytes, strings, numbers and NumPy arrays — and refuses any
other global a pickle names, so a file planted in ``--data-dir`` cannot run code when loaded.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.data.source import DatasetSource, register_dataset
from nas.data.splits import DatasetSplits, check_seed, normalise, tensor_splits

__all__ = ["CIFAR10_CLASSES", "CIFAR10_FILES", "CIFAR10_TRAIN_FILES", "BatchUnpickler", "Cifar10Source",
           "RefusedGlobal", "load_batch_pickle"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_FILES = CIFAR10_TRAIN_FILES + ("test_batch",)
CIFAR10_SUBDIR = "cifar-10-batches-py"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_BIN_SUBDIR = "cifar-10-batches-bin"  # the binary version's folder (not read here)
CIFAR10_BIN_FILES = tuple(f"{f}.bin" for f in CIFAR10_FILES)
CIFAR10_BIN_RECORD = 1 + 3072  # binary version: 1 label byte + 3072 pixel bytes per image

# The only globals a CIFAR-10 batch pickle names: NumPy's array, dtype and scalar reconstructors
# (numpy 1.x pickles name numpy.core, 2.x numpy._core; protocol 5 uses _frombuffer) and, in a
# protocol-2 pickle written by Python 3, codecs.encode for bytes. Each only builds data.
_ALLOWED_GLOBALS = frozenset({
    *((core, name) for core in ("numpy.core.multiarray", "numpy._core.multiarray")
      for name in ("_reconstruct", "scalar")),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle named a global that a CIFAR-10 batch never holds (it would be called on loading)."""


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds dicts, lists, tuples, bytes, strings, numbers and NumPy arrays, and
    refuses every other global (:class:`RefusedGlobal` naming it): loading cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise RefusedGlobal(f"global {module}.{name} is not allowed in a CIFAR-10 batch (only NumPy arrays, "
                            f"dicts, lists, bytes, strings and numbers are)")


def load_batch_pickle(data: bytes) -> Any:
    """Unpickle a CIFAR-10 batch (Python 2 strings as bytes) with :class:`BatchUnpickler`."""
    return BatchUnpickler(io.BytesIO(data), encoding="bytes").load()


@register_dataset
class Cifar10Source(DatasetSource):
    name = "cifar10"
    description = "CIFAR-10 python batches from --data-dir: 32x32 RGB, 10 classes (never downloads)"
    takes_data_dir = True
    spaces = ("cifar10-m",)

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
            obj = load_batch_pickle(path.read_bytes())
        except RefusedGlobal as e:  # a pickle that would build something else: never run it
            raise ValueError(f"cifar10: {path} was refused: {e}; a CIFAR-10 batch is a pickled dict of arrays, "
                             f"lists and bytes, and nothing else is loaded (unpickling anything else could run "
                             f"code): re-extract {CIFAR10_ARCHIVE}") from None
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
        seed = check_seed(seed)
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
        images, mean, std = normalise(x01)
        labels = {k: y_all[i] for k, i in parts.items()} | {"test": y_test}
        return DatasetSplits(
            name=self.name, **tensor_splits(images, labels), input_shape=(3, 32, 32),
            num_classes=10, class_names=class_names, augment="crop_flip", mean=mean, std=std, pixel_max=255.0)

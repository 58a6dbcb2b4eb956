"""``npz``: images and labels as NumPy arrays in one ``.npz`` file (``--data-dir FILE.npz``).

Arrays: ``x`` — (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3, uint8 (0..255) or float
(in [0, 1]) — and ``y`` (N,) integer class indices; optional ``class_names`` (K strings, else
``"0"``…) and optional ``train_idx``, ``val_idx``, ``test_idx`` index arrays (all three, or the
split is seeded and stratified). Read with ``allow_pickle=False``: an object array is refused,
never unpickled. ``image_size`` resizes (bilinear, antialiased); ``channels`` converts (gray to
RGB by repetition, RGB to gray by Pillow's ``L`` weights 0.299, 0.587, 0.114).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nas.data.labelled import check_channels, check_image_size, labelled_splits
from nas.data.source import DatasetSource, register_dataset
from nas.data.splits import DatasetSplits, check_seed

__all__ = ["NpzSource", "to_nchw"]

_SPLIT_KEYS = ("train_idx", "val_idx", "test_idx")
_LUMA = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)


def to_nchw(x: np.ndarray, where: str) -> np.ndarray:
    """``x`` in (N, C, H, W): (N, H, W) gains C = 1; a channel axis of 1 or 3 is found first or last."""
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if x.shape[1] in (1, 3) and x.shape[3] not in (1, 3):
            return x
        if x.shape[3] in (1, 3):
            return x.transpose(0, 3, 1, 2)
    raise ValueError(f"npz: x in {where} has shape {x.shape}; valid: (N, H, W), (N, H, W, C) or (N, C, H, W) with "
                     f"C = 1 or 3")


@register_dataset
class NpzSource(DatasetSource):
    name = "npz"
    description = "your arrays: --data-dir FILE.npz holding x (N,H,W[,C]) or (N,C,H,W) and y (N,)"
    takes_data_dir = True

    def __init__(self, *, data_dir: str | Path | None, image_size: int | None = None,
                 channels: int | None = None) -> None:
        if data_dir is None:
            raise ValueError("npz: --data-dir is required: an .npz file holding arrays x and y")
        self.path = Path(data_dir)
        if not self.path.is_file():
            raise FileNotFoundError(f"npz: {self.path} is not a file; expected an .npz holding arrays x and y")
        self.image_size = check_image_size(self.name, image_size)
        self.channels = check_channels(self.name, channels)

    def _arrays(self) -> dict[str, np.ndarray]:
        with open(self.path, "rb") as fh:
            if fh.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
                raise ValueError(f"npz: {self.path} is not a readable .npz file (not a zip archive); write it "
                                 f"with numpy.savez")
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except ValueError as err:
            raise ValueError(f"npz: {self.path} holds an object array, which is refused (it would be unpickled): "
                             f"store x, y and class_names as plain arrays ({err})") from None
        except (OSError, EOFError) as err:
            raise ValueError(f"npz: {self.path} is not a readable .npz file ({err})") from None
        missing = [k for k in ("x", "y") if k not in arrays]
        if missing:
            raise ValueError(f"npz: {self.path} lacks array(s) {', '.join(missing)}; it holds "
                             f"{', '.join(sorted(arrays)) or 'nothing'}")
        return arrays

    def load(self, *, seed: int) -> DatasetSplits:
        seed = check_seed(seed)
        arrays = self._arrays()
        where = str(self.path)
        x, y = to_nchw(arrays["x"], where), arrays["y"]
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"npz: y in {where} must be a 1-D integer array of class indices, got {y.dtype} {y.shape}")
        if len(x) != len(y):
            raise ValueError(f"npz: x has {len(x)} images but y has {len(y)} labels in {where}; they must match")
        if x.dtype == np.uint8:
            pixel_max = 255.0
        elif np.issubdtype(x.dtype, np.floating):
            if not np.isfinite(x).all():
                raise ValueError(f"npz: x in {where} holds NaN or infinite values; valid: pixels in [0, 1]")
            lo, hi = float(x.min()), float(x.max())
            if not (0.0 <= lo and hi <= 1.0):
                raise ValueError(f"npz: float x in {where} spans [{lo:g}, {hi:g}]; valid: pixels in [0, 1] (or uint8)")
            pixel_max = 1.0
        else:
            raise ValueError(f"npz: x in {where} is {x.dtype}; valid: uint8 or float")
        num_classes = int(y.max()) + 1 if y.size else 0
        names = ([str(n) for n in arrays["class_names"]] if "class_names" in arrays
                 else [str(i) for i in range(num_classes)])
        given = None
        present = [k for k in _SPLIT_KEYS if k in arrays]
        if present:
            if len(present) != 3:
                raise ValueError(f"npz: {where} has {', '.join(present)} but not all of {', '.join(_SPLIT_KEYS)}")
            given = {}
            for key in _SPLIT_KEYS:
                idx = arrays[key]
                if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer) or (idx.size and (idx.min() < 0 or
                                                                                                idx.max() >= len(y))):
                    raise ValueError(f"npz: {key} in {where} must be 1-D integer indices in 0..{len(y) - 1}")
                given[key.removesuffix("_idx")] = idx
            joined = np.concatenate(list(given.values()))
            if len(np.unique(joined)) != len(joined):
                raise ValueError(f"npz: {', '.join(_SPLIT_KEYS)} in {where} overlap or repeat an index; the splits "
                                 f"must be disjoint (a test image in training would inflate the test accuracy)")
        shape = x.shape[1:]
        x = self._convert(x, pixel_max)
        how = None
        if tuple(x.shape[1:]) != tuple(shape):
            how = (f"arrays of shape {tuple(shape)} were converted to {tuple(x.shape[1:])}: gray to RGB by repetition, "
                   f"RGB to gray by 0.299 R + 0.587 G + 0.114 B, resized with torch.nn.functional.interpolate("
                   f"mode='bilinear', antialias=True), in the arrays' own pixel scale")
        return labelled_splits(source=self.name, pixels=x, labels=y, class_names=names, seed=seed, where=where,
                               given=given, pixel_max=pixel_max, preprocess=how)

    def _convert(self, x: np.ndarray, pixel_max: float) -> np.ndarray:
        """Channels and size as asked, in the array's own pixel scale (uint8 stays uint8)."""
        if self.channels is None and self.image_size is None:
            return x
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self.channels == 3 and t.shape[1] == 1:
            t = t.expand(-1, 3, -1, -1)
        elif self.channels == 1 and t.shape[1] == 3:
            t = (t * torch.from_numpy(_LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
        if self.image_size is not None and tuple(t.shape[2:]) != (self.image_size, self.image_size):
            t = F.interpolate(t, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=True)
        out = t.clamp(0, pixel_max).numpy()
        return np.rint(out).astype(np.uint8) if pixel_max == 255.0 else out

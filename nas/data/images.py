"""Decoding image files (through Pillow) into one array, and the on-disk cache of the result.

Every image is converted to grayscale (``L``) or RGB, resized to ``size`` × ``size`` with
bilinear filtering (the aspect ratio is not kept: cells, crops and photos are squashed to the
square the networks take) and stored as 8-bit pixels: an array uint8 ``(N, C, size, size)``.
16-bit grayscale images are scaled to 8 bits first (from 16 bits), float images from [0, 1].

The cache (:func:`decode_cached`) holds one ``.npz`` per decoded set, under
``$QUADRANAS_CACHE_DIR`` (default ``~/.cache/quadranas``), named by a hash of every source file's
path, size and modification time and of the settings: a changed, added or removed file, or other
settings, give another name, so a stale entry is never read. It is written through the one atomic
writer (a write killed half-way leaves no entry, at most a temporary file of the writer's name) and
read with ``allow_pickle=False``; an unreadable entry is decoded again and replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from search_spaces.atomic import write_atomic

__all__ = ["IMAGE_SUFFIXES", "BadImage", "DecodedImages", "cache_dir", "decode_cached", "decode_images",
           "image_channels", "is_image_file"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "P;gray"})
_CACHE_VERSION = 1


class BadImage(ValueError):
    """An image file Pillow cannot read completely (unreadable, truncated, not an image)."""


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def cache_dir() -> Path:
    return Path(os.environ.get("QUADRANAS_CACHE_DIR") or Path.home() / ".cache" / "quadranas")


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
        img.load()  # decodes everything: a truncated file raises here
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise BadImage(f"{path}: not a readable image ({type(err).__name__}: {err}); valid: complete PNG, JPEG, "
                       f"BMP or TIFF files") from None
    return img


def image_channels(paths: Sequence[Path]) -> int:
    """1 if every image is grayscale, else 3 (read from the headers only; unreadable ones skipped)."""
    from PIL import Image

    for path in paths:
        try:
            with Image.open(path) as img:
                mode = img.mode
                if mode == "P":
                    mode = "P;gray" if _palette_is_gray(img) else "P"
        except (OSError, SyntaxError, ValueError):
            continue
        if mode not in _GRAY_MODES:
            return 3
    return 1


def _palette_is_gray(img) -> bool:
    palette = img.getpalette() or []
    return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))


def _to_uint8(img, channels: int, size: int) -> np.ndarray:
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode == "F":  # floats: [0, 1] pixels, else 8-bit values
            top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        else:  # 16-bit containers (and 32-bit ints holding more than 8 bits) are scaled from 16 bits
            top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    img = img.convert("L" if channels == 1 else "RGB").resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


class DecodedImages:
    """The result of decoding: ``pixels`` uint8 (N, C, S, S) of the readable files, ``kept`` their
    indices into the paths given, ``skipped`` the unreadable files' messages."""

    def __init__(self, pixels: np.ndarray, kept: np.ndarray, skipped: list[str]) -> None:
        self.pixels, self.kept, self.skipped = pixels, kept, skipped


def decode_images(paths: Sequence[Path], *, channels: int, size: int, skip_bad: bool,
                  progress: bool = True) -> DecodedImages:
    """Decode every file of ``paths``; an unreadable one raises :class:`BadImage` naming it, or
    with ``skip_bad`` is left out and counted."""
    pixels = np.empty((len(paths), channels, size, size), dtype=np.uint8)
    kept, skipped = [], []
    for i, path in enumerate(tqdm(paths, desc="decode images", unit="img", disable=not progress or len(paths) < 200)):
        try:
            img = _open(Path(path))
        except BadImage as err:
            if not skip_bad:
                raise BadImage(f"{err} (pass --skip-bad-images to skip such files and count them)") from None
            skipped.append(str(err))
            continue
        with img:
            pixels[len(kept)] = _to_uint8(img, channels, size)
        kept.append(i)
    return DecodedImages(pixels[:len(kept)].copy() if len(kept) < len(paths) else pixels,
                         np.asarray(kept, dtype=np.int64), skipped)


def _cache_key(paths: Sequence[Path], settings: dict) -> str:
    digest = hashlib.sha256(json.dumps({"version": _CACHE_VERSION, "settings": settings}, sort_keys=True).encode())
    for path in paths:
        st = os.stat(path)
        digest.update(f"{Path(path).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def decode_cached(paths: Sequence[Path], *, channels: int, size: int, skip_bad: bool, label: str,
                  progress: bool = True) -> DecodedImages:
    """:func:`decode_images` through the cache (see the module docstring); ``label`` names the
    entry's source in its file name."""
    try:
        key = _cache_key(paths, {"channels": channels, "size": size, "skip_bad": skip_bad})
    except OSError as err:
        raise FileNotFoundError(f"cannot read {err.filename}: {err.strerror}") from None
    entry = cache_dir() / f"{label}-{size}px-{channels}ch-{key}.npz"
    if entry.is_file():
        try:
            with np.load(entry, allow_pickle=False) as npz:
                skipped = [str(s) for s in npz["skipped"]]
                return DecodedImages(npz["pixels"], npz["kept"], skipped)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # unreadable: decode and replace it
            pass
    decoded = decode_images(paths, channels=channels, size=size, skip_bad=skip_bad, progress=progress)

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, pixels=decoded.pixels, kept=decoded.kept, skipped=np.asarray(decoded.skipped, dtype=str))

    try:
        write_atomic(entry, save)
    except OSError:  # a read-only or full cache directory costs a decode next time, nothing else
        pass
    return decoded

"""The file-reading sources (imagefolder, csv, npz, elpv), their cache, their bad-input errors, and
the composed cluttered-digits task — each against a reference built from the raw files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import nas.data.images as images_mod
from nas.data import load_dataset
from nas.data.cluttered import compose
from nas.data.images import cache_dir
from nas.data.splits import split_indices
from support.images import CLASSES, class_image, write_csv, write_folder, write_npz


def _pixels(ds, split: str) -> np.ndarray:
    """A split's images back in 0..255 (undoing the normalisation with the record's constants)."""
    x = ds.__getattribute__(split).tensors[0].double()
    mean = torch.tensor(ds.mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(ds.std, dtype=torch.float64).view(1, -1, 1, 1)
    return ((x * std + mean) * ds.pixel_max).numpy()


def _reference(path: Path, mode: str, size: int) -> np.ndarray:
    """What the card says to do with an image file: Pillow convert, bilinear resize, (C, H, W)."""
    arr = np.asarray(Image.open(path).convert(mode).resize((size, size), Image.BILINEAR), dtype=np.float64)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("QUADRANAS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---- imagefolder ----------------------------------------------------------------------------

def test_imagefolder_split_layout_round_trip(tmp_path, cache) -> None:
    files = write_folder(tmp_path / "d", per_class=10, split_layout=True)
    ds = load_dataset("imagefolder", seed=0, data_dir=tmp_path / "d", image_size=12)
    assert ds.class_names == CLASSES and ds.input_shape == (3, 12, 12) and ds.num_classes == 3
    assert ds.sizes == {"train": 18, "val": 6, "test": 6}  # the splits as given
    test_files = [f for c in CLASSES for f in files[c] if "/test/" in f.as_posix()]
    ref = np.stack([_reference(f, "RGB", 12) for f in test_files])
    assert np.abs(_pixels(ds, "test") - ref).max() < 1e-3
    assert ds.test.tensors[1].tolist() == [0, 0, 1, 1, 2, 2]
    spec = ds.input_spec()
    assert spec["resize"] == [12, 12] and spec["color_mode"] == "RGB" and spec["pixel_max"] == 255.0


def test_imagefolder_class_folders_stratified_and_seeded(tmp_path, cache) -> None:
    write_folder(tmp_path / "d", per_class=10)
    a = load_dataset("imagefolder", seed=3, data_dir=tmp_path / "d", image_size=8)
    b = load_dataset("imagefolder", seed=3, data_dir=tmp_path / "d", image_size=8)
    c = load_dataset("imagefolder", seed=4, data_dir=tmp_path / "d", image_size=8)
    assert sum(a.sizes.values()) == 30 and torch.equal(a.val.tensors[0], b.val.tensors[0])
    assert not torch.equal(a.val.tensors[0], c.val.tensors[0])  # another seed, another split
    y = np.repeat(np.arange(3), 10)
    _, val_idx, _ = split_indices(30, y, 3)
    assert a.val.tensors[1].tolist() == y[val_idx].tolist()


def test_imagefolder_channels_from_images_and_forced(tmp_path, cache) -> None:
    write_folder(tmp_path / "gray", rgb=False)
    assert load_dataset("imagefolder", seed=0, data_dir=tmp_path / "gray", image_size=8).input_shape == (1, 8, 8)
    write_folder(tmp_path / "rgb", rgb=True)
    assert load_dataset("imagefolder", seed=0, data_dir=tmp_path / "rgb", image_size=8).input_shape == (3, 8, 8)
    forced = load_dataset("imagefolder", seed=0, data_dir=tmp_path / "rgb", image_size=8, channels=1)
    assert forced.input_shape == (1, 8, 8) and forced.color_mode == "L"


@pytest.mark.parametrize("suffix", [".jpg", ".bmp", ".tiff"])
def test_imagefolder_reads_other_formats(tmp_path, cache, suffix) -> None:
    write_folder(tmp_path, per_class=7, suffix=suffix)
    ds = load_dataset("imagefolder", seed=0, data_dir=tmp_path, image_size=8)
    assert sum(ds.sizes.values()) == 21


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("case, match", [
    ("missing", "does not exist"),
    ("none", "--data-dir is required"),
    ("empty", "has no class subfolders"),
    ("loose", "loose image"),
    ("empty_class", "hold no images"),
    ("one_class", "one class only"),
    ("small_class", r"too few images for a stratified.*at least 7"),
    ("truncated", r"001\.png: not a readable image.*--skip-bad-images"),
    ("not_image", r"000\.png: not a readable image"),
    ("split_missing", "lacks"),
    ("split_classes", "every split needs the same class folders"),
])
def test_imagefolder_bad_input(tmp_path, cache, case, match) -> None:
    root = tmp_path / "d"
    if case != "missing":
        root.mkdir()
    if case == "loose":
        Image.fromarray(class_image(0, 0)).save(root / "a.png")
    if case in ("empty_class", "truncated", "not_image", "small_class"):
        write_folder(root, per_class=8 if case != "small_class" else 6)
    if case == "empty_class":
        (root / "zebra").mkdir()
    if case == "one_class":
        write_folder(root, per_class=8, classes=("cat",))
    if case == "truncated":
        _truncate(root / "dog" / "001.png")
    if case == "not_image":
        (root / "owl" / "000.png").write_text("not a png")
    if case in ("split_missing", "split_classes"):
        write_folder(root, per_class=8, split_layout=True)
        shutil.rmtree(root / "test" if case == "split_missing" else root / "val" / "owl")
    with pytest.raises((ValueError, FileNotFoundError, NotADirectoryError), match=match):
        load_dataset("imagefolder", seed=0, data_dir=None if case == "none" else root, image_size=8)
    assert not cache.exists() or not list(cache.iterdir())  # nothing written


def test_imagefolder_skip_bad_images_counts_and_names(tmp_path, cache) -> None:
    write_folder(tmp_path, per_class=9)
    _truncate(tmp_path / "dog" / "004.png")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\) of 27.*004\.png"):
        ds = load_dataset("imagefolder", seed=0, data_dir=tmp_path, image_size=8, skip_bad_images=True)
    assert sum(ds.sizes.values()) == 26


def test_imagefolder_skip_keeps_given_splits_consistent(tmp_path, cache) -> None:
    write_folder(tmp_path, per_class=10, split_layout=True)
    _truncate(tmp_path / "val" / "cat" / "006.png")
    with pytest.warns(UserWarning, match="skipped 1"):
        ds = load_dataset("imagefolder", seed=0, data_dir=tmp_path, image_size=8, skip_bad_images=True)
    assert ds.sizes == {"train": 18, "val": 5, "test": 6} and ds.val.tensors[1].tolist() == [0, 1, 1, 2, 2]


# ---- cache ----------------------------------------------------------------------------------

def test_cache_second_load_decodes_nothing(tmp_path, cache, monkeypatch) -> None:
    write_folder(tmp_path / "d", per_class=8)
    first = load_dataset("imagefolder", seed=0, data_dir=tmp_path / "d", image_size=8)
    assert len(list(cache.glob("imagefolder-*.npz"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache holds the images")

    monkeypatch.setattr(images_mod, "decode_images", no_decoding)
    again = load_dataset("imagefolder", seed=0, data_dir=tmp_path / "d", image_size=8)
    assert torch.equal(first.train.tensors[0], again.train.tensors[0])


def test_cache_changed_file_invalidates(tmp_path, cache) -> None:
    write_folder(tmp_path / "d", per_class=8, split_layout=True)
    before = load_dataset("imagefolder", seed=0, data_dir=tmp_path / "d", image_size=8)
    target = tmp_path / "d" / "test" / "cat" / "007.png"
    Image.fromarray(np.full((20, 24, 3), 255, np.uint8)).save(target)
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    after = load_dataset("imagefolder", seed=0, data_dir=tmp_path / "d", image_size=8)
    assert np.allclose(_pixels(after, "test")[1], 255.0, atol=1e-3)
    assert not np.allclose(_pixels(before, "test")[1], 255.0, atol=1e-3)
    assert len(list(cache.glob("imagefolder-*.npz"))) == 2  # other key: the old entry is never read


def test_cache_other_settings_other_entry(tmp_path, cache) -> None:
    write_folder(tmp_path / "d", per_class=8)
    a = load_dataset("imagefolder", seed=0, data_dir=tmp_path / "d", image_size=8)
    b = load_dataset("imagefolder", seed=0, data_dir=tmp_path / "d", image_size=12)
    assert a.input_shape == (3, 8, 8) and b.input_shape == (3, 12, 12)
    assert len(list(cache.glob("*.npz"))) == 2


def test_cache_write_killed_half_way_leaves_nothing(tmp_path, cache, monkeypatch) -> None:
    write_folder(tmp_path / "d", per_class=8)
    real = np.savez

    def dies_half_way(fh, **arrays):
        fh.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        load_dataset("imagefolder", seed=0, data_dir=tmp_path / "d", image_size=8)
    assert not cache.exists() or list(cache.iterdir()) == []
    monkeypatch.setattr(np, "savez", real)
    ds = load_dataset("imagefolder", seed=0, data_dir=tmp_path / "d", image_size=8)
    assert sum(ds.sizes.values()) == 24 and len(list(cache.glob("*.npz"))) == 1


def test_cache_unreadable_entry_is_replaced(tmp_path, cache) -> None:
    write_folder(tmp_path / "d", per_class=8)
    load_dataset("imagefolder", seed=0, data_dir=tmp_path / "d", image_size=8)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(b"garbage")
    ds = load_dataset("imagefolder", seed=0, data_dir=tmp_path / "d", image_size=8)
    assert sum(ds.sizes.values()) == 24 and entry.stat().st_size > 100


def test_cache_dir_default_and_env(monkeypatch) -> None:
    monkeypatch.delenv("QUADRANAS_CACHE_DIR", raising=False)
    assert cache_dir() == Path.home() / ".cache" / "quadranas"
    monkeypatch.setenv("QUADRANAS_CACHE_DIR", "/x/y")
    assert cache_dir() == Path("/x/y")


# ---- csv ------------------------------------------------------------------------------------

@pytest.mark.parametrize("int_labels", [False, True])
def test_csv_round_trip(tmp_path, cache, int_labels) -> None:
    path = write_csv(tmp_path, int_labels=int_labels)
    ds = load_dataset("csv", seed=0, data_dir=path, image_column="file", label_column="species", image_size=10)
    assert ds.class_names == (("0", "1", "2") if int_labels else CLASSES)
    assert sum(ds.sizes.values()) == 30 and ds.input_shape == (3, 10, 10)
    folder = load_dataset("imagefolder", seed=0, data_dir=tmp_path / "img", image_size=10)
    assert torch.equal(ds.val.tensors[1], folder.val.tensors[1])  # same files, same labels: same split
    assert np.abs(_pixels(ds, "val") - _pixels(folder, "val")).max() < 1e-3


def test_csv_folder_with_one_csv_and_split_column(tmp_path, cache) -> None:
    path = write_csv(tmp_path, image_column="image", label_column="label")
    lines = path.read_text().splitlines()
    split = (["train"] * 6 + ["val"] * 2 + ["test"] * 2) * 3
    path.write_text("\n".join([lines[0] + ",split"] + [f"{r},{s}" for r, s in zip(lines[1:], split)]) + "\n")
    ds = load_dataset("csv", seed=0, data_dir=tmp_path, image_size=8)
    assert ds.sizes == {"train": 18, "val": 6, "test": 6}


@pytest.mark.parametrize("case, match", [
    ("columns", r"has no column\(s\) 'path'.*its columns: 'file', 'extra', 'species'"),
    ("missing_image", r"line 3: image .* does not exist"),
    ("negative", "label -1 .* out of range"),
    ("empty", "a header but no rows"),
    ("no_csv", r"holds 0 \.csv files"),
    ("bad_split", "column 'split' holds 'dev'"),
    ("gap", "0 to 2, but 1 never occur"),
])
def test_csv_bad_input(tmp_path, cache, case, match) -> None:
    path = write_csv(tmp_path, int_labels=case in ("negative", "gap"))
    kwargs = {"image_column": "file", "label_column": "species"}
    lines = path.read_text().splitlines()
    if case == "columns":
        kwargs["image_column"] = "path"
    if case == "missing_image":
        (tmp_path / lines[2].split(",")[0]).unlink()
    if case == "negative":
        path.write_text("\n".join(lines[:-1] + [lines[-1].rsplit(",", 1)[0] + ",-1"]) + "\n")
    if case == "empty":
        path.write_text(lines[0] + "\n")
    if case == "gap":
        path.write_text("\n".join([lines[0]] + [r if not r.endswith(",1") else r[:-1] + "0" for r in lines[1:]]) + "\n")
    if case == "bad_split":
        path.write_text("\n".join([lines[0] + ",split"] + [f"{r},dev" for r in lines[1:]]) + "\n")
    data_dir = path
    if case == "no_csv":
        data_dir = tmp_path / "img"
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        load_dataset("csv", seed=0, data_dir=data_dir, image_size=8, **kwargs)
    assert not cache.exists() or not list(cache.iterdir())


# ---- npz ------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["NHWC", "NCHW", "NHW"])
@pytest.mark.parametrize("dtype", ["uint8", "float"])
def test_npz_layouts_round_trip(tmp_path, layout, dtype) -> None:
    arrays = write_npz(tmp_path / "d.npz", layout=layout, dtype=dtype)
    ds = load_dataset("npz", seed=0, data_dir=tmp_path / "d.npz")
    x = arrays["x"]
    nchw = x[:, None] if layout == "NHW" else (x.transpose(0, 3, 1, 2) if layout == "NHWC" else x)
    assert ds.input_shape == nchw.shape[1:]
    _, val_idx, _ = split_indices(len(arrays["y"]), arrays["y"], 0)
    scale = 255.0 if dtype == "uint8" else 1.0
    assert ds.pixel_max == scale
    assert np.abs(_pixels(ds, "val") - nchw[val_idx].astype(np.float64)).max() < 1e-3 * scale
    assert ds.val.tensors[1].tolist() == arrays["y"][val_idx].tolist()


def test_npz_class_names_splits_resize_and_channels(tmp_path) -> None:
    idx = {"train_idx": np.arange(0, 30, 2), "val_idx": np.arange(1, 30, 4), "test_idx": np.arange(3, 30, 4)}
    write_npz(tmp_path / "d.npz", class_names=np.asarray(["a", "b", "c"]), **idx)
    ds = load_dataset("npz", seed=0, data_dir=tmp_path / "d.npz", image_size=8, channels=1)
    assert ds.class_names == ("a", "b", "c") and ds.input_shape == (1, 8, 8)
    assert ds.sizes == {"train": 15, "val": 8, "test": 7}
    spec = ds.input_spec()
    assert "image_file" not in spec and "(3, 20, 24) were converted to (1, 8, 8)" in spec["preprocess"]
    assert "preprocess" not in load_dataset("npz", seed=0, data_dir=tmp_path / "d.npz").input_spec()


@pytest.mark.parametrize("case, match", [
    ("length", "x has 30 images but y has 29 labels"),
    ("range", "label 5 .* out of range; valid labels: 0 to 2"),
    ("missing", r"lacks array\(s\) y"),
    ("shape", r"x .* has shape \(30, 5\)"),
    ("float_range", r"spans \[0, 2\]"),
    ("object", "object array, which is refused"),
    ("partial_splits", "not all of"),
    ("not_npz", "not a readable .npz"),
    ("no_file", "is not a file"),
    ("overlap", "overlap or repeat an index"),
    ("nan", "NaN or infinite"),
])
def test_npz_bad_input(tmp_path, case, match) -> None:
    path = tmp_path / "d.npz"
    x = np.stack([class_image(i % 3, i) for i in range(30)])
    y = np.arange(30) % 3
    arrays = {"x": x, "y": y}
    if case == "length":
        arrays["y"] = y[:-1]
    if case == "range":
        arrays["y"] = np.where(np.arange(30) == 7, 5, y)
        arrays["class_names"] = np.asarray(["a", "b", "c"])
    if case == "missing":
        del arrays["y"]
    if case == "shape":
        arrays["x"] = np.zeros((30, 5))
    if case == "float_range":
        arrays["x"] = np.linspace(0, 2, 30 * 4).reshape(30, 2, 2).astype(np.float32)
    if case == "object":
        arrays["class_names"] = np.asarray(["a", 1, None], dtype=object)
    if case == "partial_splits":
        arrays["train_idx"] = np.arange(10)
    if case == "overlap":
        arrays.update(train_idx=np.arange(20), val_idx=np.arange(19, 25), test_idx=np.arange(25, 30))
    if case == "nan":
        arrays["x"] = np.where(np.arange(30 * 4).reshape(30, 2, 2) == 5, np.nan, 0.5).astype(np.float32)
    if case == "not_npz":
        path.write_bytes(b"not an archive")
    elif case != "no_file":
        np.savez(path, **arrays)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        load_dataset("npz", seed=0, data_dir=path)


def test_npz_one_class_and_small_class(tmp_path) -> None:
    x = np.stack([class_image(0, i) for i in range(20)])
    np.savez(tmp_path / "one.npz", x=x, y=np.zeros(20, np.int64))
    with pytest.raises(ValueError, match="one class only"):
        load_dataset("npz", seed=0, data_dir=tmp_path / "one.npz")
    np.savez(tmp_path / "small.npz", x=x, y=(np.arange(20) >= 16).astype(np.int64))
    with pytest.raises(ValueError, match=r"class\(es\) '1' \(4\).*at least 7"):
        load_dataset("npz", seed=0, data_dir=tmp_path / "small.npz")


def test_option_a_source_does_not_take_is_refused(tmp_path) -> None:
    write_npz(tmp_path / "d.npz")
    with pytest.raises(ValueError, match="image_column.*valid: image_size, channels, data_dir"):
        load_dataset("npz", seed=0, data_dir=tmp_path / "d.npz", image_column="file")


# ---- elpv -----------------------------------------------------------------------------------

def test_elpv_without_the_package_names_the_extra(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "elpv_dataset" else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'quadranas\[elpv\]'"):
        load_dataset("elpv", seed=0)


def test_elpv_bad_task() -> None:
    with pytest.raises(ValueError, match="unknown task 'cracks'; valid: defective, levels"):
        load_dataset("elpv", seed=0, task="cracks")


def test_elpv_tasks_and_license(cache) -> None:
    pytest.importorskip("elpv_dataset", reason="the elpv extra is not installed")
    from nas.data.elpv import elpv_root, read_labels

    files, probs = read_labels(elpv_root())
    assert len(files) == 2624 and set(np.round(probs * 3).astype(int)) == {0, 1, 2, 3}
    binary = load_dataset("elpv", seed=0, image_size=8)
    assert binary.class_names == ("functional", "defective") and "CC BY-NC-SA 4.0" in binary.license
    labels = torch.cat([binary.train.tensors[1], binary.val.tensors[1], binary.test.tensors[1]])
    assert int(labels.sum()) == int((probs >= 0.5).sum())
    levels = load_dataset("elpv", seed=0, image_size=8, task="levels")
    assert levels.num_classes == 4 and sum(levels.sizes.values()) == 2624


# ---- cluttered-digits -----------------------------------------------------------------------

def test_cluttered_digits_draws_each_split_from_its_own_sources(monkeypatch) -> None:
    import nas.data.cluttered as cluttered

    seen = []
    real = cluttered.compose

    def spy(digits01, labels, n, **kwargs):
        seen.append(np.array(digits01))
        return real(digits01, labels, n, **kwargs)

    monkeypatch.setattr(cluttered, "compose", spy)
    ds = load_dataset("cluttered-digits", seed=5, n_train=50, n_val=20, n_test=30)
    raw = load_digits()
    parts = split_indices(1797, raw.target, 5)
    for got, idx in zip(seen, parts):
        assert np.array_equal(got, (raw.images[idx] / 16.0).astype(np.float32))
    assert ds.sizes == {"train": 50, "val": 20, "test": 30} and ds.input_shape == (1, 16, 16)


def test_compose_places_the_digit_and_labels_it() -> None:
    raw = load_digits()
    digits01 = (raw.images[:50] / 16.0).astype(np.float32)
    x, y = compose(digits01, raw.target[:50], 40, canvas_px=12, max_digit_px=8, fragments=0, fragment_px=4,
                   noise_std=0.0, rng=np.random.default_rng(0))
    assert x.shape == (40, 1, 12, 12) and x.min() >= 0 and x.max() <= 1
    for img, label in zip(x[:, 0], y):  # without clutter and noise the digit is there, exactly
        matches = [i for i in range(50) if raw.target[i] == label for r in range(5) for c in range(5)
                   if np.array_equal(img[r:r + 8, c:c + 8], digits01[i])]
        assert matches


@pytest.mark.parametrize("kwargs, match", [
    ({"canvas_px": 6}, "canvas_px must be an int >= 8"),
    ({"max_digit_px": 20}, "must not exceed canvas_px"),
    ({"fragment_px": 9}, "fragment_px must be <= 8"),
    ({"noise_std": -1}, "noise_std must be a number"),
    ({"n_val": 0}, "n_val must be an int >= 1"),
])
def test_cluttered_digits_bad_args(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        load_dataset("cluttered-digits", seed=0, **kwargs)

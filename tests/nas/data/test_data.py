"""Tests for nas.data: every dataset against a reference built from its raw source."""

from __future__ import annotations

import pickle
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from nas.data import (
    CIFAR10_CLASSES,
    DATASETS,
    DatasetSource,
    DatasetSplits,
    dataset_names,
    load_dataset,
)
from nas.data.splits import split_indices
from support.images import write_csv, write_folder, write_npz

PER_BATCH = 20  # fake CIFAR-10 batches: 5 x 20 train images, 20 test images
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]


def _write_cifar(root: Path, *, meta_names: list[bytes] | None = None, seed: int = 0) -> dict:
    """Write fake CIFAR-10 python batches exactly like the real format; return the raw arrays."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    raw = {}
    for fname in TRAIN_FILES + ["test_batch"]:
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=PER_BATCH)]
        with open(root / fname, "wb") as f:
            pickle.dump({b"batch_label": fname.encode(), b"data": data, b"labels": labels,
                         b"filenames": [b"x.png"] * PER_BATCH}, f)
        raw[fname] = (data, np.array(labels))
    if meta_names is not None:
        with open(root / "batches.meta", "wb") as f:
            pickle.dump({b"label_names": meta_names, b"num_vis": 3072}, f)
    return raw


def _undo(ds: DatasetSplits, images: torch.Tensor) -> np.ndarray:
    """Normalised (N, C, H, W) back to [0, 1] with the record's own constants."""
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    return (images.double() * std + mean).numpy()


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    _write_cifar(tmp_path)
    return tmp_path


# ---- contract: every registered dataset ---------------------------------------------------

def _load_any(name: str, tmp_path: Path, seed: int = 0) -> DatasetSplits:
    if name == "cifar10":
        _write_cifar(tmp_path)
        return load_dataset(name, seed=seed, data_dir=tmp_path)
    if name == "synthetic":
        return load_dataset(name, seed=seed, input_shape=(2, 5, 6), num_classes=3,
                            n_train=40, n_val=10, n_test=12)
    if name == "cluttered-digits":
        return load_dataset(name, seed=seed, n_train=60, n_val=20, n_test=20)
    if name == "imagefolder":
        if not (tmp_path / "cat").exists():
            write_folder(tmp_path)
        return load_dataset(name, seed=seed, data_dir=tmp_path, image_size=16)
    if name == "csv":
        if not (tmp_path / "labels.csv").exists():
            write_csv(tmp_path)
        return load_dataset(name, seed=seed, data_dir=tmp_path / "labels.csv", image_column="file",
                            label_column="species", image_size=16)
    if name == "npz":
        if not (tmp_path / "d.npz").exists():
            write_npz(tmp_path / "d.npz")
        return load_dataset(name, seed=seed, data_dir=tmp_path / "d.npz")
    if name == "elpv":
        pytest.importorskip("elpv_dataset", reason="the elpv extra is not installed")
        return load_dataset(name, seed=seed, image_size=16)
    return load_dataset(name, seed=seed)


def test_registry_names() -> None:
    assert dataset_names() == ["cifar10", "cluttered-digits", "csv", "digits", "elpv", "imagefolder", "npz",
                               "synthetic"]
    assert all(issubclass(cls, DatasetSource) and cls.name == name and cls.description
               for name, cls in DATASETS.items())


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_contract(name: str, tmp_path: Path) -> None:
    ds = _load_any(name, tmp_path)
    assert ds.name == name and ds.augment in ("none", "crop_flip")
    assert len(ds.class_names) == ds.num_classes
    assert len(ds.mean) == len(ds.std) == ds.input_shape[0]
    assert ds.sizes == {k: len(getattr(ds, k)) for k in ("train", "val", "test")}
    for split in (ds.train, ds.val, ds.test):
        x, y = split.tensors
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert tuple(x.shape[1:]) == ds.input_shape and x.shape[0] == y.shape[0] > 0
        assert 0 <= int(y.min()) and int(y.max()) < ds.num_classes
    again = _load_any(name, tmp_path)
    assert torch.equal(ds.train.tensors[0], again.train.tensors[0])
    assert torch.equal(ds.test.tensors[1], again.test.tensors[1])
    spec = ds.input_spec()
    assert spec["shape"][1:] == list(ds.input_shape) and spec["class_names"] == list(ds.class_names)
    if ds.pixel_max is not None:  # pixels are normalised with the train split's own constants
        assert ds.train.tensors[0].double().mean(dim=(0, 2, 3)).abs().max() < 1e-4


# ---- digits ---------------------------------------------------------------------------------

def test_digits_shapes_and_labels() -> None:
    ds = load_dataset("digits", seed=0)
    assert sum(ds.sizes.values()) == 1797
    assert ds.sizes == {"train": 1257, "val": 270, "test": 270}
    assert ds.input_shape == (1, 8, 8) and ds.num_classes == 10 and ds.augment == "none"
    assert ds.class_names == tuple(str(i) for i in range(10))
    labels = torch.cat([s.tensors[1] for s in (ds.train, ds.val, ds.test)])
    assert sorted(labels.unique().tolist()) == list(range(10))


def test_digits_split_indices_disjoint_cover_stratified() -> None:
    y = load_digits().target
    train, val, test = split_indices(len(y), y, seed=3)
    assert (len(train), len(val), len(test)) == (1257, 270, 270)
    assert len(set(train) | set(val) | set(test)) == 1797  # disjoint and covering
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(1797))
    total = np.bincount(y, minlength=10)
    for idx, frac in ((train, 0.70), (val, 0.15), (test, 0.15)):
        # stratified: each class within 2 images of its share (random split: ~±5)
        assert np.abs(np.bincount(y[idx], minlength=10) - total * frac).max() <= 2


def test_digits_split_seed_determinism() -> None:
    y = load_digits().target
    a, b, c = split_indices(len(y), y, 0), split_indices(len(y), y, 0), split_indices(len(y), y, 1)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not any(np.array_equal(np.sort(p), np.sort(q)) for p, q in zip(a, c))
    d0, d0b, d1 = (load_dataset("digits", seed=s) for s in (0, 0, 1))
    assert torch.equal(d0.test.tensors[0], d0b.test.tensors[0])
    assert torch.equal(d0.test.tensors[1], d0b.test.tensors[1])
    assert not torch.equal(d0.test.tensors[1], d1.test.tensors[1])


def test_digits_normalisation_uses_train_constants() -> None:
    raw = load_digits()
    x01 = raw.data.reshape(-1, 1, 8, 8) / 16.0
    train, val, test = split_indices(len(raw.target), raw.target, seed=5)
    ds = load_dataset("digits", seed=5)
    ref_mean, ref_std = x01[train].mean(), x01[train].std()  # population std over train pixels
    assert ds.mean == pytest.approx((ref_mean,), abs=1e-9)
    assert ds.std == pytest.approx((ref_std,), abs=1e-9)
    x_train = ds.train.tensors[0].double()
    assert abs(float(x_train.mean())) < 1e-4 and abs(float(x_train.std(correction=0)) - 1) < 1e-4
    for idx, split in ((train, ds.train), (val, ds.val), (test, ds.test)):
        expected = (x01[idx] - ref_mean) / ref_std
        np.testing.assert_allclose(split.tensors[0].numpy(), expected, atol=1e-5)
        np.testing.assert_array_equal(split.tensors[1].numpy(), raw.target[idx])


def test_digits_ignores_data_dir_and_rejects_unknown_kwargs() -> None:
    with pytest.warns(UserWarning, match="data_dir='/nonexistent' is ignored"):
        assert load_dataset("digits", data_dir="/nonexistent").sizes["test"] == 270
    with pytest.raises(ValueError, match="colour"):
        load_dataset("digits", colour=True)


@pytest.mark.parametrize("name, origin", [("digits", "embedded in the scikit-learn package"),
                                          ("synthetic", "generated in memory")])
def test_data_dir_for_a_dataset_reading_no_files_warns(name: str, origin: str, tmp_path: Path) -> None:
    # a warning, not an error: recorded runs pass their stored data_dir back in
    with pytest.warns(UserWarning) as record:
        kwargs = {"n_train": 8} if name == "synthetic" else {}
        ds = load_dataset(name, data_dir=tmp_path / "nowhere", **kwargs)
    assert ds.name == name
    [w] = record
    msg = str(w.message)
    assert f"dataset {name!r} reads no files" in msg and origin in msg
    assert f"data_dir='{tmp_path / 'nowhere'}' is ignored" in msg and "only cifar10" in msg
    assert w.filename == __file__  # points at the caller, not at nas/data/source.py


@pytest.mark.parametrize("name", ["digits", "synthetic"])
def test_no_data_dir_no_warning(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(name, data_dir=None)


# ---- cifar10 --------------------------------------------------------------------------------

def test_cifar_pixels_labels_roundtrip(tmp_path: Path) -> None:
    raw = _write_cifar(tmp_path)
    ds = load_dataset("cifar10", seed=0, data_dir=tmp_path)
    assert ds.input_shape == (3, 32, 32) and ds.augment == "crop_flip" and ds.class_names == CIFAR10_CLASSES
    assert ds.sizes == {"train": 90, "val": 10, "test": 20}  # val = 10 % of 100 small-batch images
    # test_batch keeps its order: image 7, green channel (row offset 1024), pixel (row 5, col 9)
    data, labels = raw["test_batch"]
    x = _undo(ds, ds.test.tensors[0])
    assert x[7, 1, 5, 9] == pytest.approx(data[7, 1024 + 5 * 32 + 9] / 255, abs=1e-6)
    np.testing.assert_allclose(x.reshape(20, 3072), data / 255, atol=1e-6)
    np.testing.assert_array_equal(ds.test.tensors[1].numpy(), labels)
    # train + val are a permutation of the 100 training images: match rows by exact bytes
    all_data = np.concatenate([raw[f][0] for f in TRAIN_FILES])
    all_labels = np.concatenate([raw[f][1] for f in TRAIN_FILES])
    row_of = {row.tobytes(): i for i, row in enumerate(all_data)}
    found = {}
    for name in ("train", "val"):
        split = getattr(ds, name)
        u8 = np.rint(_undo(ds, split.tensors[0]) * 255).astype(np.uint8).reshape(len(split), 3072)
        found[name] = np.array([row_of[r.tobytes()] for r in u8])
        np.testing.assert_array_equal(split.tensors[1].numpy(), all_labels[found[name]])
    assert sorted(np.concatenate(list(found.values())).tolist()) == list(range(100))
    # normalisation constants: per-channel mean / population std of the TRAIN images only
    train01 = all_data[found["train"]].reshape(-1, 3, 1024) / 255
    assert ds.mean == pytest.approx(tuple(train01.mean(axis=(0, 2))), abs=1e-6)
    assert ds.std == pytest.approx(tuple(train01.std(axis=(0, 2))), abs=1e-6)
    val01 = all_data[found["val"]].reshape(-1, 3, 1024) / 255
    assert ds.mean != pytest.approx(tuple(val01.mean(axis=(0, 2))), abs=1e-6)
    # seeded permutation: same seed same split, another seed another
    again = load_dataset("cifar10", seed=0, data_dir=tmp_path)
    other = load_dataset("cifar10", seed=1, data_dir=tmp_path)
    assert torch.equal(again.val.tensors[0], ds.val.tensors[0])
    assert not torch.equal(other.val.tensors[0], ds.val.tensors[0])


def test_cifar_meta_names_and_nested_layout(tmp_path: Path) -> None:
    names = [f"thing_{i}".encode() for i in range(10)]
    _write_cifar(tmp_path / "cifar-10-batches-py", meta_names=names)
    ds = load_dataset("cifar10", data_dir=str(tmp_path))
    assert ds.class_names == tuple(f"thing_{i}" for i in range(10))


def test_cifar_missing_files(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    (tmp_path / "test_batch").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("cifar10", data_dir=tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and "data_batch_3" in msg and "test_batch" in msg
    assert "never downloads" in msg
    assert "data_batch_3, test_batch in" in msg  # exactly the missing ones, not all expected


@pytest.mark.parametrize("bad", ["shape", "labels_len", "labels_range", "keys", "not_pickle"])
def test_cifar_corrupt_batch(cifar_dir: Path, bad: str) -> None:
    path = cifar_dir / "data_batch_2"
    batch = {b"data": np.zeros((PER_BATCH, 3072), np.uint8), b"labels": [0] * PER_BATCH}
    if bad == "shape":
        batch[b"data"] = np.zeros((PER_BATCH, 100), np.uint8)
    elif bad == "labels_len":
        batch[b"labels"] = [0] * (PER_BATCH - 1)
    elif bad == "labels_range":
        batch[b"labels"] = [10] * PER_BATCH
    elif bad == "keys":
        del batch[b"labels"]
    with open(path, "wb") as f:
        if bad == "not_pickle":
            f.write(b"garbage")
        else:
            pickle.dump(batch, f)
    with pytest.raises(ValueError, match="data_batch_2"):
        load_dataset("cifar10", data_dir=cifar_dir)


def _tar_gz(archive: Path, src: Path, arcname: str = "cifar-10-batches-py") -> Path:
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname=arcname)
    return archive


def test_cifar_data_dir_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("cifar10", data_dir=tmp_path / "nope")
    msg = str(err.value)
    assert f"--data-dir {tmp_path / 'nope'} does not exist" in msg and "missing" not in msg
    assert "data_batch_1" in msg and "cifar-10-batches-py" in msg and "never downloads" in msg


def test_cifar_data_dir_is_a_plain_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError,
                       match=r"notes\.txt is a file, not a directory; expected a directory holding data_b"):
        load_dataset("cifar10", data_dir=tmp_path / "notes.txt")


@pytest.mark.parametrize("archive_name", ["cifar-10-python.tar.gz", "cifar10.tgz", "download"])
def test_cifar_data_dir_is_the_unextracted_archive(tmp_path: Path, archive_name: str) -> None:
    _write_cifar(tmp_path / "src")
    (tmp_path / "dl").mkdir()
    archive = _tar_gz(tmp_path / "dl" / archive_name, tmp_path / "src")
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("cifar10", data_dir=archive)
    msg = str(err.value)
    assert f"--data-dir {archive} is an unextracted archive" in msg and "missing" not in msg
    assert f"tar -xzf {archive} -C {tmp_path / 'dl'}" in msg  # "download": recognised by content, still gzip
    assert f"--data-dir {tmp_path / 'dl'}" in msg
    # following the advice works
    with tarfile.open(archive) as t:
        t.extractall(tmp_path / "dl", filter="data")
    assert load_dataset("cifar10", data_dir=tmp_path / "dl").sizes["test"] == PER_BATCH


def test_cifar_data_dir_holding_only_the_archive(tmp_path: Path) -> None:
    _write_cifar(tmp_path / "src")
    (tmp_path / "dl").mkdir()
    archive = _tar_gz(tmp_path / "dl" / "cifar-10-python.tar.gz", tmp_path / "src")
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("cifar10", data_dir=tmp_path / "dl")
    msg = str(err.value)
    assert f"{tmp_path / 'dl'} holds no batch files, only {archive}, an unextracted archive" in msg
    assert f"tar -xzf {archive} -C {tmp_path / 'dl'}" in msg


def _write_binary_cifar(root: Path) -> None:
    """The binary version's layout: 1 label byte + 3072 pixel bytes per record, .bin names."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for fname in TRAIN_FILES + ["test_batch"]:
        rng.integers(0, 256, size=(4, 3073), dtype=np.uint8).tofile(root / f"{fname}.bin")
    (root / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n")


@pytest.mark.parametrize("layout", ["direct", "cifar-10-batches-bin", "archive"])
def test_cifar_binary_version_is_named(tmp_path: Path, layout: str) -> None:
    if layout == "archive":
        _write_binary_cifar(tmp_path / "src")
        data_dir = _tar_gz(tmp_path / "cifar-10-binary.tar.gz", tmp_path / "src", "cifar-10-batches-bin")
        holder = "is the archive of the binary version"
    else:
        _write_binary_cifar(tmp_path if layout == "direct" else tmp_path / layout)
        data_dir = tmp_path
        holder = f"{tmp_path if layout == 'direct' else tmp_path / layout} holds data_batch_1.bin"
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("cifar10", data_dir=data_dir)
    msg = str(err.value)
    assert holder in msg and "missing" not in msg
    assert "binary version" in msg and "not supported" in msg
    assert "python version (cifar-10-python.tar.gz, which extracts to cifar-10-batches-py/)" in msg


def test_cifar_binary_files_renamed_like_python_batches(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    np.zeros((4, 3073), np.uint8).tofile(tmp_path / "data_batch_1")  # a .bin file renamed
    with pytest.raises(ValueError, match=r"cannot unpickle .*data_batch_1.*12292 bytes, a multiple of the "
                                         r"3073-byte records of the binary version.*not supported"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar_zero_byte_batch_file(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_2").write_bytes(b"")
    with pytest.raises(ValueError, match=r"cannot unpickle .*data_batch_2: .*\(the file is empty, 0 bytes\)"):
        load_dataset("cifar10", data_dir=tmp_path)


def test_cifar_batch_path_is_a_directory(tmp_path: Path) -> None:
    _write_cifar(tmp_path)
    (tmp_path / "data_batch_1").unlink()
    (tmp_path / "data_batch_1").mkdir()
    with pytest.raises(FileNotFoundError,
                       match=r"file\(s\) data_batch_1 in .* \(data_batch_1: not a regular file\)"):
        load_dataset("cifar10", data_dir=tmp_path)


@pytest.mark.parametrize("fname", ["data_batch_3", "test_batch"])
@pytest.mark.parametrize("labels", [[], np.zeros(0, np.int64)], ids=["list", "int64"])
def test_cifar_batch_with_no_images(cifar_dir: Path, fname: str, labels) -> None:
    with open(cifar_dir / fname, "wb") as f:
        pickle.dump({b"data": np.zeros((0, 3072), np.uint8), b"labels": labels}, f)
    with pytest.raises(ValueError) as err:
        load_dataset("cifar10", data_dir=cifar_dir)
    msg = str(err.value)
    assert f"{cifar_dir / fname} holds no images (data uint8 (0, 3072), 0 label(s))" in msg
    assert "N >= 1" in msg and "0 ints" not in msg


def _write_meta(root: Path, meta) -> None:
    with open(root / "batches.meta", "wb") as f:
        pickle.dump(meta, f)


@pytest.mark.parametrize("names, match", [
    ("abcdefghij", r"b'label_names' is a str \('abcdefghij'\)"),
    (list(range(10)), r"b'label_names'\[0\] is 0 \(int\)"),
    ([b"a"] * 9, r"b'label_names' is a list of 9"),
    ([f"c{i}".encode() for i in range(9)] + [b"\xff\xfe"], r"b'label_names'\[9\] is b'\\xff\\xfe' \(bytes\)"),
    ([f"c{i}" for i in range(9)] + [""], r"b'label_names'\[9\] is '' \(str\)"),
    (None, r"has no b'label_names' key \(keys: \[b'num_vis'\]\)"),
])
def test_cifar_bad_meta_label_names(cifar_dir: Path, names, match: str) -> None:
    _write_meta(cifar_dir, {b"num_vis": 3072} if names is None else {b"label_names": names, b"num_vis": 3072})
    with pytest.raises(ValueError, match=match) as err:
        load_dataset("cifar10", data_dir=cifar_dir)
    msg = str(err.value)
    assert str(cifar_dir / "batches.meta") in msg
    assert "expected a list of 10 class-name strings" in msg


def test_cifar_meta_str_names_accepted(cifar_dir: Path) -> None:
    names = [f"kind {i}" for i in range(10)]
    _write_meta(cifar_dir, {"label_names": tuple(names)})  # str keys / values, as a py3 re-pickle writes
    assert load_dataset("cifar10", data_dir=cifar_dir).class_names == tuple(names)


def test_cifar_requires_data_dir() -> None:
    with pytest.raises(ValueError, match="--data-dir is required"):
        load_dataset("cifar10")


# ---- synthetic ------------------------------------------------------------------------------

def test_synthetic_shapes_and_determinism() -> None:
    kw = dict(input_shape=(2, 3, 4), num_classes=5, n_train=30, n_val=7, n_test=9)
    a, b, c = (load_dataset("synthetic", seed=s, **kw) for s in (4, 4, 5))
    assert a.sizes == {"train": 30, "val": 7, "test": 9} and a.input_shape == (2, 3, 4)
    assert a.num_classes == 5 and a.mean == (0.0, 0.0) and a.std == (1.0, 1.0)
    for k in ("train", "val", "test"):
        assert all(torch.equal(p, q) for p, q in zip(getattr(a, k).tensors, getattr(b, k).tensors))
    assert not torch.equal(a.train.tensors[0], c.train.tensors[0])
    default = load_dataset("synthetic")
    assert default.input_shape == (3, 32, 32) and default.sizes == {"train": 512, "val": 128, "test": 128}


def test_synthetic_is_learnable() -> None:
    ds = load_dataset("synthetic", seed=0, input_shape=(1, 4, 4), num_classes=4,
                      n_train=512, n_val=8, n_test=512)

    def design(split):  # (N, D + 1) with a bias column
        x = split.tensors[0].reshape(len(split), -1).double()
        return torch.cat([x, torch.ones(len(split), 1, dtype=x.dtype)], dim=1)

    targets = torch.nn.functional.one_hot(ds.train.tensors[1], 4).double()
    w = torch.linalg.lstsq(design(ds.train), targets).solution  # closed-form least squares
    acc = (design(ds.test) @ w).argmax(1).eq(ds.test.tensors[1]).double().mean().item()
    assert acc > 0.7  # chance is 0.25
    assert len(ds.train.tensors[1].unique()) == 4


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_train=0), "n_train"),
    (dict(n_val=-3), "n_val"),
    (dict(n_test=2.5), "n_test"),
    (dict(num_classes=1), "num_classes"),
    (dict(input_shape=(3, 32)), "input_shape"),
    (dict(input_shape=(3, 0, 32)), r"input_shape\[1\]"),
])
def test_synthetic_bad_args(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_dataset("synthetic", **kwargs)


def test_synthetic_unknown_kwarg_lists_valid() -> None:
    with pytest.raises(ValueError, match="n_trian.*valid: input_shape, num_classes, n_train"):
        load_dataset("synthetic", n_trian=5)


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_bad_seed(seed) -> None:
    with pytest.raises(ValueError, match="seed"):
        load_dataset("digits", seed=seed)


# ---- registry -------------------------------------------------------------------------------

def test_unknown_dataset_lists_valid_names() -> None:
    valid = "cifar10, cluttered-digits, csv, digits, elpv, imagefolder, npz, synthetic"
    with pytest.raises(ValueError, match=f"'mnist'.*valid names: {valid}"):
        load_dataset("mnist")


def test_load_dataset_names_a_name_that_is_not_a_string():
    with pytest.raises(ValueError, match=r"unknown dataset \['digits'\]; valid names: .*digits"):
        load_dataset(["digits"])


def test_input_spec_undoes_the_normalisation_from_raw_pixels():
    from sklearn.datasets import load_digits

    splits = load_dataset("digits", seed=0)
    spec = splits.input_spec()
    assert spec["normalise"] == "x[:, c] = (pixels[:, c] / 16 - mean[c]) / std[c]"
    assert spec["shape"] == ["batch", 1, 8, 8] and spec["pixel_max"] == 16.0
    # every training image is one of the raw digits, prepared as the spec says
    raw = load_digits().images.astype(np.float64)
    prepared = (raw / spec["pixel_max"] - spec["mean"][0]) / spec["std"][0]
    train = splits.train.tensors[0][:, 0].double().numpy()
    dist = ((train[:, None] - prepared[None]) ** 2).sum(axis=(2, 3)).min(axis=1)
    assert dist.max() < 1e-8
    synthetic = load_dataset("synthetic", seed=0).input_spec()
    assert synthetic["pixel_max"] is None and synthetic["normalise"].startswith("x[:, c] = (x[:, c]")


# ---- a planted pickle never runs -------------------------------------------------------------

class _Planted:
    """Unpickled by plain pickle, this creates the file ``marker``: code run by loading data."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_planted_pickle_in_place_of_a_cifar_batch_is_refused_and_never_run(cifar_dir: Path, tmp_path: Path):
    probe = tmp_path / "probe-ran"
    pickle.loads(pickle.dumps({b"data": _Planted(probe)}))  # the payload works: plain pickle runs it
    assert probe.exists()
    marker = tmp_path / "planted-ran"
    with open(cifar_dir / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Planted(marker), b"labels": [0]}, f)
    with pytest.raises(ValueError) as info:
        load_dataset("cifar10", data_dir=cifar_dir)
    msg = str(info.value)
    assert f"{cifar_dir / 'data_batch_1'} was refused" in msg and "could run code" in msg
    assert "is not allowed in a CIFAR-10 batch" in msg
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_of_every_pickle_protocol_still_load(tmp_path: Path, protocol: int) -> None:
    raw = {}
    rng = np.random.default_rng(protocol)
    for fname in TRAIN_FILES + ["test_batch"]:
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = np.asarray(rng.integers(0, 10, size=PER_BATCH))  # a NumPy array this time, not a list
        with open(tmp_path / fname, "wb") as f:
            pickle.dump({b"batch_label": fname.encode(), b"data": data, b"labels": labels,
                         b"filenames": [b"x.png"] * PER_BATCH}, f, protocol=protocol)
        raw[fname] = (data, labels)
    ds = load_dataset("cifar10", data_dir=tmp_path)
    assert len(ds.test) == PER_BATCH
    x01 = _undo(ds, ds.test.tensors[0])
    np.testing.assert_allclose(x01, raw["test_batch"][0].reshape(-1, 3, 32, 32) / 255.0, atol=1e-6)
    assert torch.equal(ds.test.tensors[1], torch.as_tensor(raw["test_batch"][1], dtype=torch.int64))

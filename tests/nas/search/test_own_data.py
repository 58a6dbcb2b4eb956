"""``nas-search`` on the user's own images, end to end: a folder a test writes, the ``s`` template
fitted to it, the picks exported, and the ONNX export classifying the PNG files prepared as its
model card says with the card's accuracy. Also the accuracy's uncertainty in every record."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nas.cli import search_main
from support.images import CLASSES, write_folder

pytestmark = pytest.mark.slow

ARGS = ["--quick", "--trials", "20", "--population-size", "8", "--supernet-epochs", "2", "--profile-n", "8",
        "--measure-candidates", "1", "--no-progress"]


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    files = write_folder(root / "images", per_class=14, split_layout=True)
    out = root / "run"
    code = search_main(["--dataset", "imagefolder", "--data-dir", str(root / "images"), "--space", "s",
                        "--out", str(out), *ARGS])
    assert code in (0, 2)
    return out, files


def test_the_template_is_fitted_to_the_folder_and_recorded(own_run):
    out, _ = own_run
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["space"] == "s-3x16x16-3c" and cfg["dataset"] == "imagefolder"
    assert cfg["data_options"] == {"image_size": 16, "channels": 3}  # the template's native size; RGB files
    assert cfg["objectives"] == ["val_acc", "latency_ms", "peak_mem_mb"]
    sn = json.loads((out / "supernet" / "config.json").read_text())
    assert sn["space"] == cfg["space"] and sn["data_options"] == cfg["data_options"]


def test_trials_carry_the_binomial_standard_error(own_run):
    out, _ = own_run
    trials = pd.read_csv(out / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    n_val = 6  # 2 validation images per class
    expected = np.sqrt(done["val_acc"] * (1 - done["val_acc"]) / n_val)
    assert np.allclose(done["val_acc_se"], expected) and np.isfinite(done["val_loss"]).all()
    summary = json.loads((out / "summary.json").read_text())
    noise = summary["accuracy_noise"]
    assert noise["n_val"] == n_val and noise["architectures"] == done["arch_id"].nunique()
    assert noise["statement"] and ("does not separate" in noise["statement"]) == (noise["separates"] is False)
    report = (out / "report.md").read_text()
    assert "accuracy noise" in report and noise["statement"] in report


def test_picks_say_whether_they_beat_the_next_cheaper_front_member(own_run):
    out, _ = own_run
    pareto = pd.read_csv(out / "pareto.csv")
    for p in json.loads((out / "picks.json").read_text())["picks"]:
        if p["arch_id"] is None:
            continue
        cheaper = pareto[pareto["pred_latency_ms"] < p["predicted"]["latency_ms"]]
        if len(cheaper) == 0:
            assert p["vs_cheaper"] is None
            continue
        row = cheaper.sort_values("pred_latency_ms").iloc[-1]
        vs = p["vs_cheaper"]
        assert vs["arch_id"] == row["arch_id"]
        se = math.hypot(math.sqrt(p["predicted"]["val_acc"] * (1 - p["predicted"]["val_acc"]) / 6),
                        math.sqrt(row["val_acc"] * (1 - row["val_acc"]) / 6))
        if se > 0:
            assert vs["z"] == pytest.approx((p["predicted"]["val_acc"] - row["val_acc"]) / se)
        assert vs["distinguishable"] == (vs["z"] >= 1.96)


def test_onnx_export_classifies_png_files_prepared_as_the_card_says(own_run):
    import onnxruntime

    out, files = own_run
    pick = next(p for p in json.loads((out / "picks.json").read_text())["picks"] if p["arch_id"])
    d = out / pick["export_dir"]
    card = json.loads((d / "card.json").read_text())["card"]
    spec = card["input"]
    assert spec["resize"] == [16, 16] and spec["color_mode"] == "RGB" and spec["class_names"] == list(CLASSES)
    test_files = [(f, CLASSES.index(c)) for c in CLASSES for f in files[c] if f.parent.parent.name == "test"]
    batch, labels = [], []
    for path, label in test_files:  # what a deployer does with a new image file
        img = Image.open(path).convert(spec["color_mode"]).resize(tuple(spec["resize"][::-1]), Image.BILINEAR)
        pixels = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)
        x = (pixels / spec["pixel_max"] - np.asarray(spec["mean"], np.float32)[:, None, None]) \
            / np.asarray(spec["std"], np.float32)[:, None, None]
        batch.append(x)
        labels.append(label)
    session = onnxruntime.InferenceSession(str(d / "model.onnx"))
    logits = session.run(["logits"], {"images": np.stack(batch).astype(np.float32)})[0]
    assert (logits.argmax(1) == np.asarray(labels)).mean() == pytest.approx(card["test_acc"], abs=1e-9)
    text = (d / "MODEL_CARD.md").read_text()
    assert "From an image file: open with Pillow" in text


def test_resume_keeps_the_recorded_data_options_and_refuses_others(own_run, tmp_path, capsys):
    import shutil

    out, _ = own_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    cfg = json.loads((copy / "config.json").read_text())
    base = ["--dataset", "imagefolder", "--data-dir", cfg["data_dir"], "--space", cfg["space"], "--out", str(copy),
            "--resume", *ARGS]
    assert search_main([*base, "--image-size", "24"]) == 2
    assert "was run with data_options=" in capsys.readouterr().err
    assert search_main([*base, "--skip-bad-images"]) == 2  # laid over the recorded ones, then compared
    assert "skip_bad_images" in capsys.readouterr().err
    assert json.loads((copy / "config.json").read_text()) == cfg  # refused: nothing rewritten


def test_a_template_without_a_dataset_is_refused(tmp_path, capsys):
    assert search_main(["--space", "m", "--out", str(tmp_path / "r"), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "space 'm' is a template" in err and "pass --dataset" in err and not (tmp_path / "r").exists()


def test_a_data_option_the_dataset_does_not_take_is_refused(tmp_path, capsys):
    assert search_main(["--space", "digits-s", "--image-size", "16", "--out", str(tmp_path / "r"), *ARGS]) == 2
    err = capsys.readouterr().err
    assert "image_size" in err and not (tmp_path / "r").exists()

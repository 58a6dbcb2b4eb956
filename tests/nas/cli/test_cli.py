"""Tests for the ``nas`` command (nas.cli), run in-process through ``main(argv)``, plus the
installed console script."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nas.cli import main
from nas.data import CIFAR10_FILES, dataset_names, load_dataset
from nas.train import EpochRecord, evaluate
from search_spaces.presets import create_model, model_names

MIXERS = ("quadra_efficient", "quadra_plain", "gnconv", "first_order")
TINY_BENCH = ["bench", "mixer", "--width", "8", "--depth", "1", "--image-size", "8", "--batch-size", "2",
              "--repeats", "2", "--warmup", "0", "--kernel-size", "3", "--no-progress"]


def _first_column(text: str) -> list[str]:
    return [line.split()[0] for line in text.splitlines() if line.strip()]


# ---- listings --------------------------------------------------------------------------------

def test_models_lists_every_preset(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = _first_column(out)
    assert rows[0] == "name"  # header
    assert rows[1:] == model_names()
    assert len(model_names()) >= 10
    # One row, checked field by field.
    row = next(line.split() for line in out.splitlines() if line.startswith("quadranet_digits "))
    assert row[1:5] == ["1x8x8", "10", "1-1-2-1", "16-32-64-128"]
    assert row[5] == "quadra"


def test_datasets_lists_every_dataset(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert _first_column(out) == ["cifar10", "cluttered-digits", "csv", "digits", "elpv", "imagefolder", "npz",
                                  "synthetic"] == dataset_names()


def test_console_script_entry_point():
    script = Path(sys.executable).with_name("nas")
    assert script.exists(), f"console script not installed next to {sys.executable}"
    proc = subprocess.run([str(script), "models"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _first_column(proc.stdout)[1:] == model_names()


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


# ---- train-net: bad input ------------------------------------------------------------------

def _err(capsys) -> str:
    return capsys.readouterr().err


def test_train_net_unknown_model(capsys, tmp_path):
    out = tmp_path / "run"
    code = main(["train-net", "--model", "no_such_net", "--dataset", "digits", "--out", str(out), "--no-progress"])
    assert code == 2
    err = _err(capsys)
    assert "no_such_net" in err
    for name in model_names():
        assert name in err
    assert not out.exists(), "a failed run must not create its run directory"


def test_train_net_unknown_dataset(capsys, tmp_path):
    code = main(["train-net", "--model", "quadranet_digits", "--dataset", "mnist", "--out", str(tmp_path / "r"),
                 "--no-progress"])
    assert code == 2
    err = _err(capsys)
    assert "mnist" in err
    for name in ("cifar10", "digits", "synthetic"):
        assert name in err


def test_train_net_cifar10_missing_files(capsys, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "data_batch_1").write_bytes(b"present but never read")
    code = main(["train-net", "--model", "quadranet_cifar", "--dataset", "cifar10", "--data-dir", str(data),
                 "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 2
    err = _err(capsys)
    missing = err.split("missing CIFAR-10 python batch file(s)")[1].split(" in ")[0]
    assert [f.strip() for f in missing.split(",")] == [f for f in CIFAR10_FILES if f != "data_batch_1"]
    assert not (tmp_path / "r").exists()


def test_train_net_cifar10_without_data_dir(capsys, tmp_path):
    code = main(["train-net", "--model", "quadranet_cifar", "--dataset", "cifar10", "--out", str(tmp_path / "r"),
                 "--no-progress"])
    assert code == 2
    err = _err(capsys)
    assert "--data-dir" in err
    for f in CIFAR10_FILES:
        assert f in err


@pytest.mark.parametrize("flag,value,field", [
    ("--epochs", "0", "epochs"),
    ("--batch-size", "-1", "batch_size"),
    ("--lr", "0", "lr"),
    ("--label-smoothing", "1.0", "label_smoothing"),
    ("--lr", "inf", "lr"),                      # training would diverge to NaN
    ("--lr", "nan", "lr"),
    ("--weight-decay", "inf", "weight_decay"),
    ("--device", "not_a_device", "--device"),  # checked by the command, naming the option
])
def test_train_net_bad_config_value(capsys, tmp_path, flag, value, field):
    code = main(["train-net", "--model", "quadranet_digits", "--dataset", "digits", flag, value,
                 "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 2
    err = _err(capsys)
    assert err.startswith(f"nas train-net: error: {field} ")
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error shown when CUDA is missing")
def test_train_net_cuda_without_cuda(capsys, tmp_path):
    code = main(["train-net", "--model", "quadranet_digits", "--dataset", "digits", "--device", "cuda",
                 "--out", str(tmp_path / "r"), "--no-progress"])
    assert code == 2
    err = _err(capsys)
    assert err.startswith("nas train-net: error: --device cuda: no CUDA device is available here (torch ")
    assert err.rstrip().endswith("use --device cpu")
    assert not (tmp_path / "r").exists()


def test_train_net_missing_required_argument(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train-net", "--dataset", "digits"])
    assert info.value.code == 2
    assert "--model" in capsys.readouterr().err


def test_train_net_out_is_a_file(capsys, tmp_path):
    target = tmp_path / "occupied"
    target.write_text("keep me")
    code = main(["train-net", "--model", "quadranet_digits", "--dataset", "digits", "--epochs", "1",
                 "--out", str(target), "--no-progress"])
    assert code == 2
    assert "not a directory" in _err(capsys)
    assert target.read_text() == "keep me"


# ---- train-net: one real epoch -------------------------------------------------------------

@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    """One epoch of quadranet_digits on digits through the CLI: (exit code, stdout, stderr, dir)."""
    out = tmp_path_factory.mktemp("train") / "run"
    capture = pytest.MonkeyPatch()
    stdout, stderr = io.StringIO(), io.StringIO()
    capture.setattr(sys, "stdout", stdout)
    capture.setattr(sys, "stderr", stderr)
    try:
        code = main(["train-net", "--model", "quadranet_digits", "--dataset", "digits", "--epochs", "1",
                     "--out", str(out), "--no-progress"])
    finally:
        capture.undo()
    return code, stdout.getvalue(), stderr.getvalue(), out


def test_train_net_writes_run_directory(one_epoch_run):
    code, stdout, stderr, out = one_epoch_run
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "history.csv", "model.safetensors",
                                                       "result.json"]
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "quadranet_digits" and config["dataset"] == "digits"
    assert config["train"]["epochs"] == 1 and config["train"]["seed"] == 0
    assert config["splits"] == load_dataset("digits", seed=0).sizes

    with open(out / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1
    assert list(rows[0]) == [f.name for f in fields(EpochRecord)]
    assert int(rows[0]["epoch"]) == 1
    assert 0.0 <= float(rows[0]["val_acc"]) <= 1.0

    result = json.loads((out / "result.json").read_text())
    assert 0.0 <= result["test_acc"] <= 1.0
    assert result["params"] == sum(p.numel() for p in create_model("quadranet_digits").parameters())
    assert len(result["history"]) == 1
    assert result["history"][0]["val_acc"] == float(rows[0]["val_acc"])
    assert result["history"][0]["train_loss"] == float(rows[0]["train_loss"])


def test_train_net_weights_reproduce_reported_accuracy(one_epoch_run):
    code, _, stderr, out = one_epoch_run
    assert code == 0, stderr
    result = json.loads((out / "result.json").read_text())
    state = load_file(str(out / "model.safetensors"))
    model = create_model("quadranet_digits")
    model.load_state_dict(state, strict=True)
    test_loss, test_acc = evaluate(model, load_dataset("digits", seed=0).test)
    assert test_acc == result["test_acc"]
    assert test_loss == pytest.approx(result["test_loss"], rel=1e-5)
    # One epoch on digits is far above chance (0.1): the weights are the trained ones.
    assert test_acc > 0.5


def test_train_net_stdout_summary(one_epoch_run):
    code, stdout, stderr, out = one_epoch_run
    assert code == 0, stderr
    lines = stdout.strip().splitlines()
    assert lines[0] == f"run directory: {out}"
    result = json.loads((out / "result.json").read_text())
    m = re.search(r"test_acc=([\d.]+)% .* time=([\d.]+)s params=([\d,]+)$", lines[-1])
    assert m, lines[-1]
    assert m.group(1) == f"{100 * result['test_acc']:.2f}"
    assert m.group(2) == f"{result['seconds']:.1f}"
    assert m.group(3) == f"{result['params']:,}"


def test_train_net_refuses_non_empty_run_directory(one_epoch_run, capsys):
    code, _, stderr, out = one_epoch_run
    assert code == 0, stderr
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    code = main(["train-net", "--model", "quadranet_digits", "--dataset", "digits", "--epochs", "1",
                 "--out", str(out), "--no-progress"])
    assert code == 2
    err = _err(capsys)
    assert "already holds files" in err and str(out) in err
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in out.iterdir()}
    assert after == before


def test_train_net_is_reproducible(one_epoch_run, tmp_path, capsys):
    code, _, stderr, out = one_epoch_run
    assert code == 0, stderr
    torch.manual_seed(1234)  # a different global RNG state: train-net seeds from --seed itself
    again = tmp_path / "again"
    assert main(["train-net", "--model", "quadranet_digits", "--dataset", "digits", "--epochs", "1",
                 "--out", str(again), "--no-progress"]) == 0, _err(capsys)
    first, second = load_file(str(out / "model.safetensors")), load_file(str(again / "model.safetensors"))
    assert first.keys() == second.keys()
    for k in first:
        assert torch.equal(first[k], second[k]), k
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    with open(out / "history.csv", newline="") as a, open(again / "history.csv", newline="") as b:
        assert drop_time(csv.DictReader(a)) == drop_time(csv.DictReader(b))


@pytest.mark.slow
def test_train_net_default_epochs_reaches_target_accuracy(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train-net", "--model", "quadranet_digits", "--dataset", "digits", "--out", str(out),
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["epochs"] == 30
    assert len(result["history"]) == 30
    assert result["test_acc"] >= 0.97


# ---- bench mixer -----------------------------------------------------------------------------

def test_bench_mixer_json_record(capsys, tmp_path):
    out_file = tmp_path / "sub" / "bench.json"
    code = main(TINY_BENCH + ["--json", "--out", str(out_file)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out == out_file.read_text()
    record = json.loads(captured.out)
    assert record == json.loads(out_file.read_text())

    for name in MIXERS:
        r = record[name]
        for key in ("train_samples_per_s", "infer_samples_per_s", "saved_activation_mb", "params"):
            assert isinstance(r[key], (int, float)) and r[key] > 0, (name, key)
        assert r["peak_cuda_mb"] is None  # CPU run
        assert isinstance(r["params"], int)
        # Throughput is batch / median step time.
        assert r["train_samples_per_s"] == pytest.approx(2 / (r["train_step_ms"]["median"] / 1e3), rel=1e-12)
        assert r["infer_samples_per_s"] == pytest.approx(2 / (r["infer_step_ms"]["median"] / 1e3), rel=1e-12)

    q, p, g, f = (record[n] for n in MIXERS)
    assert record["memory_ratio_quadra_vs_gnconv"] == q["saved_activation_mb"] / g["saved_activation_mb"]
    assert record["throughput_ratio_quadra_vs_gnconv"] == q["train_samples_per_s"] / g["train_samples_per_s"]
    assert record["infer_throughput_ratio_quadra_vs_gnconv"] == q["infer_samples_per_s"] / g["infer_samples_per_s"]
    assert record["memory_ratio_efficient_vs_plain"] == q["saved_activation_mb"] / p["saved_activation_mb"]
    assert (record["saved_activation_ratio_efficient_vs_first_order"]
            == q["saved_activation_mb"] / f["saved_activation_mb"])
    assert record["peak_cuda_ratio_quadra_vs_gnconv"] is None

    # Memory claims: the efficient op saves what a first-order dwconv saves, less than the plain
    # composition and less than gnConv; same parameters as the plain composition.
    assert q["saved_activation_mb"] == f["saved_activation_mb"]
    assert q["saved_activation_mb"] < p["saved_activation_mb"]
    assert record["memory_ratio_quadra_vs_gnconv"] < 1
    assert q["params"] == p["params"]

    cfg = record["config"]
    assert (cfg["width"], cfg["depth"], cfg["image_size"], cfg["batch_size"], cfg["repeats"]) == (8, 1, 8, 2, 2)
    assert cfg["device"] == "cpu"


def test_bench_mixer_table_output(capsys):
    code = main(TINY_BENCH + ["--repeats", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0].split()[0] == "mixer"
    assert [line.split()[0] for line in lines[1:5]] == list(MIXERS)
    assert all(line.split()[4] == "-" for line in lines[1:5])  # no CUDA peak on CPU
    for key in ("memory_ratio_quadra_vs_gnconv", "memory_ratio_efficient_vs_plain"):
        assert any(line.startswith(f"{key}: ") for line in lines[5:])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error shown when CUDA is missing")
def test_bench_mixer_cuda_without_cuda(capsys):
    code = main(TINY_BENCH + ["--device", "cuda"])
    assert code == 2
    err = _err(capsys)
    assert err.startswith("nas bench: error:") and "cuda" in err and "--device cpu" in err


@pytest.mark.parametrize("flag,value,field", [
    ("--repeats", "0", "repeats"),
    ("--width", "6", "width"),      # not divisible by 4
    ("--batch-size", "0", "batch_size"),
    ("--warmup", "-1", "warmup"),
    ("--threads", "0", "threads"),
])
def test_bench_mixer_bad_values(capsys, flag, value, field):
    code = main(TINY_BENCH + [flag, value])
    assert code == 2
    err = _err(capsys)
    assert err.startswith(f"nas bench: error: {field} ")


def test_bench_mixer_unknown_device_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(TINY_BENCH + ["--device", "tpu"])
    assert info.value.code == 2
    assert "tpu" in capsys.readouterr().err


def test_diverging_training_exits_1_with_a_message(monkeypatch, tmp_path, capsys):
    import nas.train as train_mod

    def boom(self, loss):
        raise FloatingPointError("non-finite training loss nan at step 0")

    monkeypatch.setattr(train_mod.Trainer, "update", boom)
    code = main(["train-net", "--model", "quadranet_digits", "--dataset", "digits", "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 1
    assert "training stopped: non-finite training loss" in capsys.readouterr().err


# ---- file-system errors and unsupported devices: exit 2, nothing left behind ----------------

def test_run_maps_os_errors_to_exit_2(capsys):
    import argparse

    from nas.cli import run_command

    def fails(args):
        raise NotADirectoryError(20, "Not a directory", "somefile.txt/latency")

    assert run_command(argparse.Namespace(func=fails), prog="nas x") == 2
    assert _err(capsys) == "nas x: error: somefile.txt/latency: Not a directory\n"

    def interrupted(args):
        raise BrokenPipeError("pipe closed")

    assert run_command(argparse.Namespace(func=interrupted), prog="nas x") == 2
    assert _err(capsys) == "nas x: error: pipe closed\n"


def _file(tmp_path) -> Path:
    path = tmp_path / "file.txt"
    path.write_text("keep me")
    return path


def _only_file_left(tmp_path, path: Path) -> None:
    assert path.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], "a failed command must create nothing"


def test_space_sample_out_is_a_directory(capsys, tmp_path):
    out = tmp_path / "dir"
    out.mkdir()
    assert main(["space", "sample", "digits-s", "--out", str(out)]) == 2
    assert _err(capsys) == f"nas space: error: --out {out} is a directory; give the path of a file to write\n"
    assert list(out.iterdir()) == []


def test_space_sample_out_under_a_file(capsys, tmp_path):
    blocker = _file(tmp_path)
    assert main(["space", "sample", "digits-s", "--out", str(blocker / "sub" / "a.json")]) == 2
    err = _err(capsys)
    assert err.startswith("nas space: error: --out ") and f"{blocker} is a file, not a directory" in err
    _only_file_left(tmp_path, blocker)


@pytest.mark.parametrize("argv", [
    ["train-net", "--model", "quadranet_digits", "--dataset", "digits", "--epochs", "1", "--no-progress"],
    ["train-supernet", "--space", "digits-s", "--dataset", "digits", "--epochs", "1", "--no-progress"],
])
def test_training_out_under_a_file(capsys, tmp_path, argv):
    blocker = _file(tmp_path)
    assert main(argv + ["--out", str(blocker / "sub")]) == 2
    err = _err(capsys)
    assert f"run directory {blocker / 'sub'} cannot be created: {blocker} is a file, not a directory" in err
    _only_file_left(tmp_path, blocker)


def test_search_out_under_a_file(capsys, tmp_path):
    from nas.cli import search_main

    blocker = _file(tmp_path)
    assert search_main(["--quick", "--out", str(blocker / "sub"), "--no-progress"]) == 2
    err = _err(capsys)
    assert err.startswith("nas-search: error: run directory ") and f"{blocker} is a file, not a directory" in err
    _only_file_left(tmp_path, blocker)


def test_bench_ranking_out_is_a_file(capsys, tmp_path):
    blocker = _file(tmp_path)
    assert main(["bench", "ranking", "--k", "3", "--epochs", "1", "--seeds", "1", "--out", str(blocker),
                 "--no-progress"]) == 2
    assert _err(capsys) == (f"nas bench: error: --out {blocker} cannot be a run directory: {blocker} is a file, "
                            f"not a directory\n")
    _only_file_left(tmp_path, blocker)


@pytest.mark.parametrize("kind", ["directory", "under a file"])
def test_bench_mixer_bad_out_is_refused_before_the_run(capsys, tmp_path, monkeypatch, kind):
    import nas.bench.mixer as mixer_mod

    def must_not_run(*args, **kwargs):
        raise AssertionError("the benchmark ran before --out was checked")

    monkeypatch.setattr(mixer_mod, "run_mixer_bench", must_not_run)
    if kind == "directory":
        out = tmp_path / "dir"
        out.mkdir()
        message = f"--out {out} is a directory; give the path of a file to write"
    else:
        blocker = _file(tmp_path)
        out = blocker / "sub" / "bench.json"
        message = f"--out {out} cannot be written: {blocker} is a file, not a directory"
    assert main(TINY_BENCH + ["--out", str(out)]) == 2
    assert _err(capsys) == f"nas bench: error: {message}\n"
    if kind == "directory":
        assert list(out.iterdir()) == []
    else:
        _only_file_left(tmp_path, blocker)


_TRAINING = {
    "train-net": ["train-net", "--model", "quadranet_digits", "--dataset", "digits", "--epochs", "1", "--no-progress"],
    "train-supernet": ["train-supernet", "--space", "digits-s", "--dataset", "digits", "--epochs", "1",
                       "--no-progress"],
    "bench ranking": ["bench", "ranking", "--k", "3", "--epochs", "1", "--seeds", "1", "--no-progress"],
}


@pytest.mark.parametrize("command", sorted(_TRAINING))
@pytest.mark.parametrize("device", ["mps", "meta", "bogus", "CPU", "cuda:x"])
def test_training_refuses_unsupported_devices(capsys, tmp_path, command, device):
    out = tmp_path / "run"
    assert main(_TRAINING[command] + ["--device", device, "--out", str(out)]) == 2
    prog = "nas " + command.split()[0]
    assert _err(capsys) == f"{prog}: error: --device must be 'cpu' or 'cuda[:N]', got {device!r}\n"
    assert not out.exists(), "an unsupported device must not leave a run directory behind"


def _no_cuda(monkeypatch) -> str:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return f"--device cuda: no CUDA device is available here (torch {torch.__version__}); use --device cpu"


@pytest.mark.parametrize("command", sorted(_TRAINING))
def test_training_cuda_without_cuda_leaves_nothing(capsys, tmp_path, monkeypatch, command):
    message = _no_cuda(monkeypatch)
    out = tmp_path / "run"
    assert main(_TRAINING[command] + ["--device", "cuda", "--out", str(out)]) == 2
    assert _err(capsys) == f"nas {command.split()[0]}: error: {message}\n"
    assert not out.exists()


@pytest.mark.parametrize("device", ["bogus", "CPU", "mps"])
def test_supernet_eval_and_predict_refuse_unsupported_devices(capsys, tmp_path, device):
    # The device is checked first: the (missing) checkpoint, predictor and architecture are never read.
    missing = str(tmp_path / "missing")
    assert main(["supernet", "eval", "--checkpoint", missing, "--arch", missing, "--device", device]) == 2
    assert _err(capsys) == f"nas supernet: error: --device must be 'cpu' or 'cuda[:N]', got {device!r}\n"
    assert main(["predictors", "predict", "--predictor", missing, "--arch", missing, "--device", device]) == 2
    assert _err(capsys) == f"nas predictors: error: --device must be 'cpu' or 'cuda[:N]', got {device!r}\n"


def test_supernet_eval_and_predict_cuda_without_cuda(capsys, tmp_path, monkeypatch):
    message = _no_cuda(monkeypatch)
    missing = str(tmp_path / "missing")
    assert main(["supernet", "eval", "--checkpoint", missing, "--arch", missing, "--device", "cuda"]) == 2
    assert _err(capsys) == f"nas supernet: error: {message}\n"
    assert main(["predictors", "predict", "--predictor", missing, "--arch", missing, "--device", "cuda"]) == 2
    assert _err(capsys) == f"nas predictors: error: {message}\n"


def test_bench_staircase_with_a_missing_predictor_leaves_no_run_directory(tmp_path, capsys):
    out = tmp_path / "stair"
    assert main(["bench", "staircase", "--predictor", str(tmp_path / "nope"), "--out", str(out),
                 "--no-progress"]) == 2
    assert "nope" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("bench", ["staircase", "predictors"])
def test_bench_on_a_missing_cuda_device_leaves_no_run_directory(tmp_path, capsys, monkeypatch, bench):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "b"
    assert main(["bench", bench, "--device", "cuda", "--out", str(out), "--no-progress"]) == 2
    assert "cuda" in capsys.readouterr().err
    assert not out.exists()

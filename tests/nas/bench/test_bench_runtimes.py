"""``nas bench runtimes`` and ``nas bench device-check``.

References: the ratio distribution recomputed from the rows of ``runtimes.csv``; the
architectures recomputed with :meth:`SearchSpace.spread`; pytest summary lines written out; a
device check run with stand-in parts that pass, fail, skip and outlast the budget."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from nas.bench import device_check
from nas.bench.device_check import DeviceCheckConfig, PartSkipped, parse_pytest_summary, run_device_check
from nas.bench.runtimes import RuntimeBenchConfig, run_runtime_bench
from nas.cli import main
from nas.profiling.adaptive import macs_key
from search_spaces.space import create_space


@pytest.fixture(scope="module")
def runtime_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("rt") / "bench"
    config = RuntimeBenchConfig(space="digits-s", n=4, threads=(1, 2), runtimes=("onnxruntime", "torchscript"))
    return out, run_runtime_bench(config, out=out, progress=False)


def test_runtime_bench_times_every_runtime_beside_eager_at_every_thread_count(runtime_bench):
    out, record = runtime_bench
    rows = pd.read_csv(out / "runtimes.csv", dtype={"arch_id": str})
    space = create_space("digits-s")
    spread = space.spread(4, key=macs_key(space, 1), seed=0, pool=400)
    assert sorted(set(rows["arch_id"])) == sorted(a.arch_id for a in spread)
    assert len(rows) == 4 * 2 * 2
    assert np.allclose(rows["ratio"], rows["latency_ms"] / rows["torch_latency_ms"])
    for name in ("onnxruntime", "torchscript"):
        for threads in (1, 2):
            mine = rows[(rows["runtime"] == name) & (rows["threads"] == threads)]
            got = record["runtimes"][name]["by_threads"][str(threads)]
            assert got["ratio"]["median"] == pytest.approx(float(np.median(mine["ratio"])))
            assert got["ratio"]["min"] <= got["ratio"]["p10"] <= got["ratio"]["median"] <= got["ratio"]["p90"]
            assert got["ratio"]["share_below_1"] == pytest.approx(float(np.mean(mine["ratio"] < 1)))
            assert got["ratio"]["n"] == 4 and -1 <= got["kendall_tau_vs_torch"] <= 1
        a = rows[(rows["runtime"] == name) & (rows["threads"] == 1)].set_index("arch_id")
        b = rows[(rows["runtime"] == name) & (rows["threads"] == 2)].set_index("arch_id")
        speedup = record["runtimes"][name]["speedup_1_to_2_threads"]["median"]
        assert speedup == pytest.approx(float(np.median(a["latency_ms"] / b["latency_ms"])))
    assert json.loads((out / "runtimes.json").read_text())["config"]["n"] == 4


@pytest.mark.parametrize("kwargs, match", [
    ({"runtimes": ("torch",)}, "runtimes are compared with torch"),
    ({"runtimes": ("tflite",)}, "runtimes must be one of torch, torchscript, onnxruntime"),
    ({"runtimes": ()}, "runtimes must name at least one runtime"),
    ({"threads": ()}, "threads must name at least one thread count"),
    ({"threads": (0,)}, "threads must be a positive integer"),
    ({"n": 0}, "n must be a positive integer"),
    ({"space": "nope"}, "unknown search space 'nope'"),
])
def test_runtime_bench_config_names_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RuntimeBenchConfig(**kwargs)


def test_cli_bench_runtimes_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["bench", "runtimes", "--runtimes", "torch", "--out", str(out), "--no-progress"]) == 2
    assert "runtimes are compared with torch" in capsys.readouterr().err and not out.exists()


# ---- device check ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, counts", [
    ("....\n4 passed, 2127 deselected in 3.1s", {"passed": 4, "failed": 0, "skipped": 0, "errors": 0}),
    ("FAILED x\n1 failed, 9 passed, 2 skipped in 40.00s", {"passed": 9, "failed": 1, "skipped": 2, "errors": 0}),
    ("3 passed, 1 error in 2s", {"passed": 3, "failed": 0, "skipped": 0, "errors": 1}),
    ("no tests ran", {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}),
])
def test_pytest_summary_is_parsed(text, counts):
    got = parse_pytest_summary(text)
    assert {k: got[k] for k in counts} == counts


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the record without a CUDA device")
def test_without_a_gpu_every_part_is_skipped_saying_why(tmp_path, capsys):
    assert main(["bench", "device-check", "--json", "--out", str(tmp_path / "dc"), "--no-progress"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert list(record["parts"]) == list(device_check.PARTS)
    assert all(r["status"] == "skip" and "no CUDA device" in r["reason"] for r in record["parts"].values())
    assert record["ok"] and record["skipped"] == len(device_check.PARTS) and record["failed"] == 0
    assert json.loads((tmp_path / "dc" / "device_check.json").read_text())["parts"] == record["parts"]


def test_device_check_reports_pass_fail_skip_and_parts_past_the_budget(tmp_path, monkeypatch):
    clock = iter(range(0, 1000, 10))  # every perf_counter call is 10 s later

    def passing(config, out, left):
        return {"answer": 42}

    def failing(config, out, left):
        raise AssertionError("kernel differs by 0.5")

    def skipping(config, out, left):
        raise PartSkipped("no such provider")

    monkeypatch.setattr(device_check, "PARTS", {"a": passing, "b": failing, "c": skipping, "d": passing})
    monkeypatch.setattr(device_check.time, "perf_counter", lambda: float(next(clock)))
    record = run_device_check(DeviceCheckConfig(budget_s=95.0), out=tmp_path, progress=False)
    parts = record["parts"]
    assert parts["a"]["status"] == "pass" and parts["a"]["answer"] == 42
    assert parts["b"] == {"status": "fail", "error": "AssertionError: kernel differs by 0.5", "seconds": 10.0}
    assert parts["c"]["status"] == "skip" and parts["c"]["reason"] == "no such provider"
    assert parts["d"]["status"] == "not run" and "95 s budget was spent" in parts["d"]["reason"]
    assert (record["passed"], record["failed"], record["skipped"], record["not_run"]) == (1, 1, 1, 1)
    assert record["ok"] is False


def test_a_failing_part_fails_the_command(tmp_path, monkeypatch, capsys):
    def failing(config, out, left):
        raise RuntimeError("boom")

    monkeypatch.setattr(device_check, "PARTS", {"x": failing})
    assert main(["bench", "device-check", "--out", str(tmp_path / "dc"), "--no-progress"]) == 1
    assert "x" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, match", [
    ({"parts": ("warp_drive",)}, r"unknown device-check parts \['warp_drive'\]; valid: cuda_tests, triton_kernels"),
    ({"device": "cpu"}, "device must be a CUDA device"),
    ({"budget_s": 0}, "budget_s must be a positive number of seconds"),
])
def test_device_check_config_names_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeviceCheckConfig(**kwargs)


def test_device_check_parts_given_as_a_comma_list():
    assert DeviceCheckConfig(parts=("triton_kernels,staircase",)).parts == ("triton_kernels", "staircase")
    assert DeviceCheckConfig(parts="cuda_tests, staircase").parts == ("cuda_tests", "staircase")
    assert RuntimeBenchConfig(runtimes="onnxruntime,torchscript").runtimes == ("onnxruntime", "torchscript")

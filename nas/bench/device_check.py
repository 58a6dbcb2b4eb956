"""``nas bench device-check``: the prepared check of everything that needs a GPU, in one call.

A session that is lent a GPU machine runs it once (``nas bench device-check --json``, at most
``budget_s`` — 8 minutes by default) and gets one JSON record with pass / fail / skip per part:

- ``cuda_tests``: the test suite's CUDA tests (``pytest -m cuda``; every test that needs a CUDA
  device carries that marker, which ``tests/conftest.py`` enforces);
- ``triton_kernels``: the fused Triton quadratic kernels against the plain PyTorch composition,
  forward and backward (the input's and every weight's gradient), on several shapes, in float32
  and bfloat16;
- ``mixer_bench``: ``nas bench mixer --device cuda``; passes when the memory-efficient quadratic
  mixer saves less for backward than the plain one;
- ``kernel_records``: a profiled network's per-kernel records (grid, block, occupancy, waves);
- ``onnxruntime_cuda``: a network in ONNX Runtime's CUDA execution provider against PyTorch's
  output, and its latency (skipped where the installed ONNX Runtime has no CUDA provider);
- ``staircase``: ``nas bench staircase --device cuda`` with a small predictor.

Each part is a function of :data:`PARTS` (the only list of them); one that raises
:class:`PartSkipped` is skipped with its reason, any other exception fails it with its
message, and once the budget is spent the remaining parts are ``not run``. Without a CUDA
device every part is skipped, saying so.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from nas.rundir import write_json

__all__ = ["PARTS", "DeviceCheckConfig", "PartSkipped", "parse_pytest_summary", "run_device_check"]


class PartSkipped(Exception):
    """A part that cannot run here (no CUDA device, a package not installed): the reason."""


@dataclass(frozen=True)
class DeviceCheckConfig:
    device: str = "cuda"  # the CUDA device checked
    parts: tuple[str, ...] | None = None  # parts to run (default: all, see nas.bench.device_check.PARTS)
    budget_s: float = 480.0  # the whole check's time limit in seconds; parts not begun by then are not run

    def __post_init__(self) -> None:
        from profilers import check_device

        check_device(self.device)
        if not self.device.startswith("cuda"):
            raise ValueError(f"device must be a CUDA device (cuda or cuda:N), got {self.device!r}")
        if self.parts is not None:
            items = [self.parts] if isinstance(self.parts, str) else list(self.parts)  # --parts a,b
            parts = tuple(p.strip() for item in items for p in str(item).split(",") if p.strip())
            unknown = [p for p in parts if p not in PARTS]
            if unknown or not parts:
                raise ValueError(f"unknown device-check parts {unknown}; valid: {', '.join(PARTS)}")
            object.__setattr__(self, "parts", parts)
        if isinstance(self.budget_s, bool) or not isinstance(self.budget_s, (int, float)) or not self.budget_s > 0:
            raise ValueError(f"budget_s must be a positive number of seconds, got {self.budget_s!r}")


def _need_cuda(config: DeviceCheckConfig) -> torch.device:
    if not torch.cuda.is_available():
        raise PartSkipped(f"no CUDA device (torch {torch.__version__} sees none)")
    device = torch.device(config.device)
    if (device.index or 0) >= torch.cuda.device_count():
        raise PartSkipped(f"{config.device} is not present: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


_SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")


def parse_pytest_summary(text: str) -> dict[str, int]:
    """Counts from pytest's last summary line (``3 passed, 1 skipped, 2 deselected in 4.2s``)."""
    lines = [line for line in text.strip().splitlines() if _SUMMARY.search(line)]
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    if lines:
        for n, word in _SUMMARY.findall(lines[-1]):
            key = "errors" if word.startswith("error") else word
            counts[key] = counts.get(key, 0) + int(n)
    return counts


def cuda_tests(config: DeviceCheckConfig, out: Path, remaining_s: float) -> dict[str, Any]:
    _need_cuda(config)
    root = Path(__file__).resolve().parents[2]
    if not (root / "tests").is_dir():
        raise PartSkipped(f"no tests/ beside the installed package ({root}): run from a checkout")
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=max(10.0, remaining_s))
    (out / "cuda_tests.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    counts = parse_pytest_summary(proc.stdout)
    if proc.returncode != 0 or counts["failed"] or counts["errors"] or not counts["passed"]:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise AssertionError(f"pytest -m cuda exited {proc.returncode} ({counts}); last lines:\n{tail}")
    return {**counts, "log": str(out / "cuda_tests.log")}


def triton_kernels(config: DeviceCheckConfig, out: Path, remaining_s: float) -> dict[str, Any]:
    device = _need_cuda(config)
    from search_spaces import triton_quadratic
    from search_spaces.quadratic_op import quadratic_dwconv

    if not triton_quadratic.is_available():
        raise PartSkipped("triton is not installed or cannot compile for this device")
    shapes = [(2, 16, 15, 15, 3), (4, 32, 32, 32, 7), (1, 64, 9, 13, 5), (8, 48, 16, 16, 7)]
    tolerances = {torch.float32: 1e-4, torch.bfloat16: 3e-2}
    cases = []
    for (B, C, H, W, K) in shapes:
        for dtype, tol in tolerances.items():
            gen = torch.Generator().manual_seed(B * 1000 + C + K)
            tensors = [torch.randn(B, C, H, W, generator=gen)]
            tensors += [torch.randn(C, 1, K, K, generator=gen) / K for _ in range(3)]
            tensors += [torch.randn(C, generator=gen) * 0.1 for _ in range(3)]
            grads = []
            outputs = []
            for impl, backend in (("efficient", "triton"), ("plain", "torch")):
                leaves = [t.to(device=device, dtype=dtype).requires_grad_() for t in tensors]
                y = quadratic_dwconv(*leaves, padding=K // 2, impl=impl, backend=backend)
                (y.float() * torch.linspace(-1, 1, y.numel(), device=device).view_as(y)).sum().backward()
                outputs.append(y.detach().float())
                grads.append([leaf.grad.float() for leaf in leaves])
            scale = lambda t: float(t.abs().max()) or 1.0  # noqa: E731
            fwd_err = float((outputs[0] - outputs[1]).abs().max()) / scale(outputs[1])
            bwd_err = max(float((a - b).abs().max()) / scale(b) for a, b in zip(grads[0], grads[1]))
            ok = fwd_err <= tol and bwd_err <= tol
            cases.append({"shape": [B, C, H, W], "kernel": K, "dtype": str(dtype).removeprefix("torch."),
                          "forward_rel_err": fwd_err, "backward_rel_err": bwd_err, "tolerance": tol, "ok": ok})
    bad = [c for c in cases if not c["ok"]]
    if bad:
        raise AssertionError(f"{len(bad)} of {len(cases)} cases beyond tolerance: {bad}")
    return {"cases": cases}


def mixer_bench(config: DeviceCheckConfig, out: Path, remaining_s: float) -> dict[str, Any]:
    _need_cuda(config)
    from nas.bench.mixer import MixerBenchConfig, run_mixer_bench

    record = run_mixer_bench(MixerBenchConfig(device=config.device), progress=False)
    write_json(out / "mixer.json", record)
    if not record["memory_ratio_efficient_vs_plain"] < 1.0:
        raise AssertionError(f"the efficient quadratic mixer saves no less for backward than the plain one "
                             f"(ratio {record['memory_ratio_efficient_vs_plain']:.3f})")
    keys = ("memory_ratio_quadra_vs_gnconv", "throughput_ratio_quadra_vs_gnconv",
            "infer_throughput_ratio_quadra_vs_gnconv", "memory_ratio_efficient_vs_plain")
    return {k: record[k] for k in keys}


def kernel_records(config: DeviceCheckConfig, out: Path, remaining_s: float) -> dict[str, Any]:
    _need_cuda(config)
    from profilers import profile
    from search_spaces.space import create_space

    space = create_space("cifar10-m")
    rec = profile(space.max_arch(), device=config.device, batch_size=32, with_ops=True)
    kernels = rec.kernels
    if not kernels:
        raise AssertionError("the profiled network has no per-kernel records")
    bad = [k.name for k in kernels if not k.waves > 0]
    if bad:
        raise AssertionError(f"{len(bad)} kernel record(s) without waves: {bad[:5]}")
    write_json(out / "kernel_records.json", rec.to_dict(), default=str)
    return {"kernels": len(kernels), "total_waves": float(sum(k.waves for k in kernels)),
            "latency_ms": rec.latency.median_ms, "peak_infer_mem_mb": rec.peak_infer_mem_mb,
            "fingerprint": rec.fingerprint.describe()}


def onnxruntime_cuda(config: DeviceCheckConfig, out: Path, remaining_s: float) -> dict[str, Any]:
    device = _need_cuda(config)
    try:
        import onnxruntime as ort
    except ImportError:
        raise PartSkipped("onnxruntime is not installed") from None
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise PartSkipped(f"onnxruntime {ort.__version__} has no CUDA execution provider (install onnxruntime-gpu)")
    from profilers import create_runtime, profile
    from search_spaces.networks import QuadraNet
    from search_spaces.space import create_space

    space = create_space("cifar10-m")
    arch = space.max_arch()
    model = QuadraNet(space.to_net_config(arch)).eval()
    x = torch.randn(8, *space.input_shape, generator=torch.Generator().manual_seed(0))
    deployed = create_runtime("onnxruntime").deploy(model, input_shape=space.input_shape, device=device, threads=None)
    got = deployed.run(x)
    with torch.inference_mode():
        want = model.to(device)(x.to(device)).cpu()
    err = float((got - want).abs().max())
    if err > 1e-3:
        raise AssertionError(f"ONNX Runtime's CUDA provider differs from PyTorch by {err:.2e} (> 1e-3)")
    rec = profile(arch, device=config.device, batch_size=8, with_ops=False, runtime="onnxruntime")
    return {"max_abs_diff": err, "latency_ms": rec.latency.median_ms, "peak_infer_mem_mb": rec.peak_infer_mem_mb,
            "providers": deployed.session.get_providers()}


def staircase(config: DeviceCheckConfig, out: Path, remaining_s: float) -> dict[str, Any]:
    _need_cuda(config)
    from nas.bench.staircase import StaircaseBenchConfig, run_staircase_bench

    record = run_staircase_bench(StaircaseBenchConfig(device=config.device, n_train=24, repeats=1),
                                 out=out / "staircase", progress=False)
    if not record["rows"]:
        raise AssertionError("the staircase sweep measured no width")
    return {k: record[k] for k in ("spearman_latency_vs_macs", "flat_or_down_steps", "plot") if k in record}


# The parts, in the order they run: name -> function(config, out, seconds left) -> details.
PARTS: dict[str, Callable[[DeviceCheckConfig, Path, float], dict[str, Any]]] = {
    "cuda_tests": cuda_tests, "triton_kernels": triton_kernels, "mixer_bench": mixer_bench,
    "kernel_records": kernel_records, "onnxruntime_cuda": onnxruntime_cuda, "staircase": staircase,
}


def run_device_check(config: DeviceCheckConfig, *, out: str | Path, progress: bool = True) -> dict[str, Any]:
    """Run the parts (see the module docstring); the record is also ``OUT/device_check.json``."""
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = config.parts or tuple(PARTS)
    results: dict[str, Any] = {}
    for name in names:
        left = config.budget_s - (time.perf_counter() - t0)
        if left <= 0:
            results[name] = {"status": "not run", "reason": f"the {config.budget_s:g} s budget was spent"}
            continue
        if progress:
            print(f"device-check: {name} …", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            details = PARTS[name](config, out, left)
            results[name] = {"status": "pass", **details}
        except PartSkipped as why:
            results[name] = {"status": "skip", "reason": str(why)}
        except Exception as err:  # a failing part is reported, and the others still run
            results[name] = {"status": "fail", "error": f"{type(err).__name__}: {err}"}
        results[name]["seconds"] = time.perf_counter() - t
    statuses = [r["status"] for r in results.values()]
    record = {"device": config.device, "cuda_available": torch.cuda.is_available(),
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "torch": torch.__version__, "parts": results,
              "passed": statuses.count("pass"), "failed": statuses.count("fail"), "skipped": statuses.count("skip"),
              "not_run": statuses.count("not run"), "ok": "fail" not in statuses,
              "seconds": time.perf_counter() - t0, "config": asdict(config)}
    write_json(out / "device_check.json", record, default=str)
    return record

"""``nas bench mixer``: the same small QuadraNet-shaped network with four token mixers.

Variants (only the mixer differs; stem, blocks, MLP, head and seed are shared):

- ``quadra_efficient`` — QuadraConv with the memory-efficient autograd function;
- ``quadra_plain`` — QuadraConv as the plain PyTorch composition (the reference);
- ``gnconv`` — HorNet's gⁿConv, order 3;
- ``first_order`` — one depthwise conv (ConvNeXt-like).

All variants are timed in one process, interleaved (the order rotates every repeat), after
warm-up; figures are medians. A training step is forward + cross-entropy + backward + AdamW
update; an inference step is a forward under ``torch.no_grad`` in eval mode.

Per variant: ``train_samples_per_s``, ``infer_samples_per_s``, ``saved_activation_mb`` (bytes
saved for backward in one training forward, unique storages, parameters excluded — see
:func:`profilers.saved_activation_bytes`), ``peak_cuda_mb`` (``max_memory_allocated`` over one
training step; null on CPU) and ``params``. Ratios: ``memory_ratio_quadra_vs_gnconv`` and
``memory_ratio_efficient_vs_plain`` from ``saved_activation_mb``;
``throughput_ratio_quadra_vs_gnconv`` from training throughput and
``infer_throughput_ratio_quadra_vs_gnconv`` from inference throughput (quadra_efficient ÷
gnconv); ``peak_cuda_ratio_quadra_vs_gnconv`` on CUDA.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from profilers import ProfilerBackend, backend_for, check_device, saved_activation_bytes, summarize, time_once_ms
from search_spaces.networks import QuadraNet, count_params, uniform_net

__all__ = ["MIXER_VARIANTS", "MixerBenchConfig", "mixer_bench_net", "run_mixer_bench"]

MIXER_VARIANTS: dict[str, dict[str, Any]] = {
    "quadra_efficient": {"mixer": "quadra", "quadra_impl": "efficient"},
    "quadra_plain": {"mixer": "quadra", "quadra_impl": "plain"},
    "gnconv": {"mixer": "gnconv", "gn_orders": (3,)},
    "first_order": {"mixer": "first_order"},
}
_MB = 2.0**20


@dataclass(frozen=True)
class MixerBenchConfig:
    device: str = "cpu"  # the device the mixers run on
    batch_size: int = 32  # images per step
    width: int = 64  # channels of the network's one stage (divisible by 4: gnConv order 3)
    depth: int = 4  # blocks of the stage
    image_size: int = 32  # input height and width
    kernel_size: int = 7  # mixer kernel size
    repeats: int = 7  # interleaved timing rounds (medians reported)
    warmup: int = 2  # untimed rounds first
    threads: int | None = None  # CPU threads (default: torch's setting)
    seed: int = 0  # seed of the weights and the inputs

    def __post_init__(self) -> None:
        for name in ("batch_size", "width", "depth", "image_size", "kernel_size", "repeats"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be a non-negative integer, got {self.warmup!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {self.threads!r}")
        if self.width % 4:
            raise ValueError(f"width must be divisible by 4 (gnConv order 3), got {self.width}")
        check_device(self.device, name="--device", available=True)  # 'cpu' or 'cuda[:N]', and one that is here


def mixer_bench_net(variant: str, config: MixerBenchConfig) -> QuadraNet:
    """One stage of ``depth`` blocks at ``width`` channels on ``image_size``² RGB input."""
    try:
        arch = MIXER_VARIANTS[variant]
    except KeyError:
        raise ValueError(f"unknown mixer variant {variant!r}; valid: {', '.join(MIXER_VARIANTS)}") from None
    net = uniform_net(
        depths=(config.depth,), widths=(config.width,), input_shape=(3, config.image_size, config.image_size),
        num_classes=10, kernel_size=config.kernel_size, stem_kernel=3, stem_stride=1, name=f"bench_{variant}",
        **arch,
    )
    torch.manual_seed(config.seed)
    return QuadraNet(net)


def run_mixer_bench(config: MixerBenchConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run the benchmark and return its JSON-ready record."""
    backend = backend_for(config.device)
    with backend.threads(config.threads):  # a CPU's intra-op threads; torch's setting comes back after
        return _run(config, backend, progress)


def _run(config: MixerBenchConfig, backend: ProfilerBackend, progress: bool) -> dict[str, Any]:
    device = backend.device
    gen = torch.Generator().manual_seed(config.seed)
    x = torch.randn(config.batch_size, 3, config.image_size, config.image_size, generator=gen).to(device)
    y = torch.randint(0, 10, (config.batch_size,), generator=gen).to(device)
    names = list(MIXER_VARIANTS)
    models = {n: mixer_bench_net(n, config).to(device) for n in names}
    optims = {n: torch.optim.AdamW(models[n].parameters(), lr=1e-4) for n in names}

    def train_step(n: str) -> None:
        model = models[n]
        model.train()
        loss = F.cross_entropy(model(x), y)
        optims[n].zero_grad(set_to_none=True)
        loss.backward()
        optims[n].step()

    @torch.no_grad()
    def infer_step(n: str) -> None:
        models[n].eval()
        models[n](x)

    record: dict[str, Any] = {}
    for n in names:
        saved = saved_activation_bytes(models[n], x, loss_fn=lambda out: F.cross_entropy(out, y))
        # the allocator's peak of one step, the optimizer state allocated first; None on a CPU
        peak = backend.device_peak_bytes(partial(train_step, n), warm_up=True)
        peak = None if peak is None else peak / _MB
        record[n] = {"saved_activation_mb": saved / _MB, "peak_cuda_mb": peak, "params": count_params(models[n])}

    for _ in range(config.warmup):
        for n in names:
            train_step(n)
            infer_step(n)
    train_ms: dict[str, list[float]] = {n: [] for n in names}
    infer_ms: dict[str, list[float]] = {n: [] for n in names}
    bar = tqdm(total=config.repeats * len(names), desc="bench mixer", unit="step", disable=not progress, leave=False)
    for r in range(config.repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            train_ms[n].append(time_once_ms(partial(train_step, n), device))
            infer_ms[n].append(time_once_ms(partial(infer_step, n), device))
            bar.update(1)
    bar.close()

    for n in names:
        t_train, t_infer = summarize(train_ms[n]), summarize(infer_ms[n])
        record[n].update({
            "train_samples_per_s": config.batch_size / (t_train.median_ms / 1e3),
            "infer_samples_per_s": config.batch_size / (t_infer.median_ms / 1e3),
            "train_step_ms": {"median": t_train.median_ms, "p10": t_train.p10_ms, "p90": t_train.p90_ms},
            "infer_step_ms": {"median": t_infer.median_ms, "p10": t_infer.p10_ms, "p90": t_infer.p90_ms},
        })
        # Keys in the documented order first.
        record[n] = {k: record[n][k] for k in (
            "train_samples_per_s", "infer_samples_per_s", "saved_activation_mb", "peak_cuda_mb", "params",
            "train_step_ms", "infer_step_ms")}

    q, g, p = record["quadra_efficient"], record["gnconv"], record["quadra_plain"]
    record["memory_ratio_quadra_vs_gnconv"] = q["saved_activation_mb"] / g["saved_activation_mb"]
    record["throughput_ratio_quadra_vs_gnconv"] = q["train_samples_per_s"] / g["train_samples_per_s"]
    record["infer_throughput_ratio_quadra_vs_gnconv"] = q["infer_samples_per_s"] / g["infer_samples_per_s"]
    record["memory_ratio_efficient_vs_plain"] = q["saved_activation_mb"] / p["saved_activation_mb"]
    record["saved_activation_ratio_efficient_vs_first_order"] = (
        q["saved_activation_mb"] / record["first_order"]["saved_activation_mb"]
    )
    record["peak_cuda_ratio_quadra_vs_gnconv"] = (
        q["peak_cuda_mb"] / g["peak_cuda_mb"] if q["peak_cuda_mb"] is not None else None
    )
    record["config"] = {
        **asdict(config),
        "threads_used": backend.threads_in_use(),
        "device_name": backend.name(),
        "torch": torch.__version__,
        "timing": "median of interleaved repeats after warm-up",
    }
    return record

"""The model card of an export: a record (``card.json``), then its rendering (``MODEL_CARD.md``).

The record holds the architecture and its stages, parameters, the results given by the caller
(accuracy, measured and predicted latency and memory, device, budget, …), how to prepare the
input from raw pixels, the formats and files written. The rendering shows them, with the lines
that load each format written (from :data:`nas.export.formats.FORMATS`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import torch

from nas.export.formats import FORMATS
from search_spaces.arch import ArchConfig
from search_spaces.networks import QuadraNet, count_params
from search_spaces.space import SearchSpace

__all__ = ["CARD_FIELDS", "card_record", "check_card", "render_model_card"]

# Keys of ``card`` the model card shows in this order, with their labels ("—" when absent).
CARD_FIELDS = (
    ("test_acc", "test accuracy"),
    ("val_acc", "validation accuracy"),
    ("latency_ms", "latency, measured (ms)"),
    ("predicted_latency_ms", "latency, predicted (ms)"),
    ("peak_mem_mb", "peak memory (MB)"),
    ("device", "device"),
    ("batch_size", "batch size"),
    ("budget", "budget"),
)



def card_record(arch: ArchConfig, space: SearchSpace, net: QuadraNet, card: dict[str, Any],
                 formats: tuple[str, ...], files: dict[str, str]) -> dict[str, Any]:
    return {
        "arch_id": arch.arch_id,
        "space": arch.space,
        "layout": arch.describe(),
        "input_shape": list(space.input_shape),
        "num_classes": space.num_classes,
        "params": count_params(net),
        "n_blocks": sum(arch.depths),
        "n_quadratic": arch.n_quadratic,
        "stages": [
            {"width": s.width, "depth": s.depth, "n_quadratic": sum(b.is_quadratic for b in s.blocks),
             "layout": " ".join(f"{b.kernel_size}r{b.mlp_ratio}{'Q' if b.is_quadratic else 'L'}" for b in s.blocks)}
            for s in arch.stages
        ],
        "arch": arch.to_dict(),
        "card": card,
        "formats": list(formats),
        "files": files,
        "torch_version": torch.__version__,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list)):
        return f"`{json.dumps(value, sort_keys=True)}`"
    return str(value)


def render_model_card(record: dict[str, Any]) -> str:
    card = record["card"]
    c, h, w = record["input_shape"]
    lines = [
        f"# QuadraNet {record['arch_id']}",
        "",
        f"An architecture of search space `{record['space']}` (input {c}x{h}x{w}, "
        f"{record['num_classes']} classes), exported with torch {record['torch_version']}.",
        "",
        f"    {record['layout']}",
        "",
        "(per block: kernel size, `r` MLP ratio, Q quadratic / L first-order)",
        "",
        "| | |",
        "|---|---|",
        f"| arch_id | `{record['arch_id']}` |",
        f"| parameters | {record['params']:,} |",
        f"| quadratic blocks | {record['n_quadratic']} of {record['n_blocks']} |",
        "",
        "## Stages",
        "",
        "| stage | width | blocks | quadratic | layout |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {i} | {s['width']} | {s['depth']} | {s['n_quadratic']} | `{s['layout']}` |"
              for i, s in enumerate(record["stages"])]
    lines += ["", "## Results", "", "| | |", "|---|---|"]
    lines += [f"| {label} | {_fmt(card.get(key))} |" for key, label in CARD_FIELDS]
    known = {key for key, _ in CARD_FIELDS} | {"input", "data_license"}
    lines += [f"| {key} | {_fmt(card[key])} |" for key in sorted(card) if key not in known]
    lines += _input_section(card.get("input"), (c, h, w))
    if card.get("data_license"):
        lines += ["", "## Data licence", "", f"Trained on data licensed {card['data_license']}: the licence's terms "
                  f"(e.g. non-commercial, share-alike) bind this model and its uses."]
    lines += ["", "## Files", ""]
    lines += [f"- `{name}`" for name in record["files"].values()]
    files = set(record["files"].values())
    lines += ["", "## Loading", "", "```python", "import nas", "",
              'model = nas.load_model("path/to/this/directory")  # QuadraNet, eval mode, CPU']
    for fmt in FORMATS.values():
        if fmt.loading and fmt.file in files:
            lines += ["", *fmt.loading]
    lines += ["```", "", f"`x` is a float32 tensor of shape (batch, {c}, {h}, {w}), prepared as in *Input*.", ""]
    return "\n".join(lines)


def _input_section(spec: Any, shape: tuple[int, int, int]) -> list[str]:
    """The card's *Input* section: how raw pixels become the model's input."""
    c, h, w = shape
    lines = ["", "## Input", "", f"float32, NCHW, shape (batch, {c}, {h}, {w}); ONNX input `images`, output `logits`."]
    if not isinstance(spec, dict):
        return lines + ["The preprocessing was not recorded with this export: normalise as the model was trained."]
    if spec.get("image_file"):
        lines += ["", f"From an image file: {spec['image_file']}; then"]
    lines += ["", f"    {spec.get('normalise', '')}", "",
              f"- mean per channel: `{json.dumps(spec.get('mean'))}`",
              f"- std per channel: `{json.dumps(spec.get('std'))}`"]
    if spec.get("pixel_max") is not None:
        lines.append(f"- raw pixels run from 0 to {spec['pixel_max']:g}")
    if spec.get("class_names"):
        lines.append(f"- the logits follow the classes in this order: `{json.dumps(spec['class_names'])}`")
    return lines


def _plain_value(value: Any) -> Any:
    """numpy / torch scalars -> Python numbers; NaN (e.g. a missing table cell) -> None."""
    if not isinstance(value, (str, bytes, list, dict)) and callable(getattr(value, "item", None)):
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError):  # not a scalar: left to the JSON check
            pass
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def check_card(card: Mapping[str, Any] | None) -> dict[str, Any]:
    if card is None:
        return {}
    if not isinstance(card, Mapping) or not all(isinstance(k, str) for k in card):
        raise TypeError(f"card must be a dict with string keys, got {card!r}")
    card = {k: _plain_value(v) for k, v in card.items()}
    try:
        json.dumps(card, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"card must hold JSON values: {err}") from None
    return card

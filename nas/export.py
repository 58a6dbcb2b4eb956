"""Export a searched architecture as a stand-alone model directory, and load it back.

An export directory holds::

    arch.json          the architecture (ArchConfig JSON, what ``nas`` commands read)
    model.safetensors  the weights, float32; always written, since :func:`load_model` needs it
    model.pt           TorchScript (``torch.jit.trace``), if "torchscript" is asked for
    model.onnx         ONNX, opset 17: input ``images`` (B, C, H, W) -> output ``logits``
                       (B, num_classes), batch size free, if "onnx" is asked for
    MODEL_CARD.md      a short human card: architecture, parameters, accuracy, latency, …
    card.json          the same record as JSON, with the formats and files written

Everything is written into a temporary sibling directory that is renamed into place at the
end, so a crash never leaves a half export (with ``overwrite=True`` the old directory is
replaced only once the new one is complete). ``overwrite`` replaces only a previous export (a
directory holding nothing but the files its ``card.json`` lists) or an empty directory.

The traced formats (TorchScript, ONNX) are made from a CPU float32 copy of the model whose
quadratic mixers use the ``"plain"`` implementation: the same formula
``(W_a∗x) ⊙ (W_b∗x) + W_c∗x``, but as plain PyTorch ops, because the memory-efficient
implementation is a ``torch.autograd.Function`` that TorchScript cannot serialise. The model
passed in is never modified (mode, device and dtype are left as they were).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from nas.checkpoint import writer_alive
from search_spaces.arch import ArchConfig
from search_spaces.networks import NetConfig, QuadraNet, count_params
from search_spaces.space import SearchSpace, create_space, load_arch, parse_arch

__all__ = ["EXPORT_FORMATS", "check_onnx", "check_out_dir", "export_model", "load_arch_json", "load_model",
           "parse_formats"]

EXPORT_FORMATS = ("safetensors", "torchscript", "onnx")

# Name in the returned mapping and in card.json -> file name in the export directory.
FILES = {
    "arch": "arch.json",
    "safetensors": "model.safetensors",
    "torchscript": "model.pt",
    "onnx": "model.onnx",
    "model_card": "MODEL_CARD.md",
    "card": "card.json",
}

ONNX_OPSET = 17
EXAMPLE_BATCH = 2  # batch size of the example input the traced formats are made from

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


# --- formats -------------------------------------------------------------------------------
def parse_formats(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"safetensors,onnx"`` or ``["onnx", "torchscript"]`` -> valid names, deduplicated in order.

    ``None`` means every format; an unknown name or an empty selection raises ``ValueError``.
    """
    if value is None:
        return EXPORT_FORMATS
    items = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"export formats must be strings, got {item!r}; valid: {', '.join(EXPORT_FORMATS)}")
        for name in item.split(","):
            name = name.strip().lower()
            if name and name not in EXPORT_FORMATS:
                raise ValueError(f"unknown export format {name!r}; valid: {', '.join(EXPORT_FORMATS)}")
            if name and name not in names:
                names.append(name)
    if not names:
        raise ValueError(f"no export format given; valid: {', '.join(EXPORT_FORMATS)}")
    return tuple(names)


# --- architecture ----------------------------------------------------------------------------
def load_arch_json(text_or_dict: str | Mapping[str, Any], *, source: str,
                   space: SearchSpace | None = None) -> ArchConfig:
    """Parse architecture JSON (text or an already parsed dict) and validate it against ``space``
    (default: the space it names). Errors are :class:`ArchError` naming the field and ``source``."""
    return parse_arch(text_or_dict, source=source, space=space)


def _net_config(model: QuadraNet, arch: ArchConfig) -> tuple[SearchSpace, NetConfig]:
    """The space and stand-alone config of ``arch``; raise if ``model`` is not that network."""
    if not isinstance(model, QuadraNet):
        raise TypeError(f"export_model takes a QuadraNet, got {type(model).__name__}")
    if not isinstance(arch, ArchConfig):
        raise TypeError(f"export_model takes an ArchConfig, got {type(arch).__name__}")
    space = create_space(arch.space)
    config = space.to_net_config(space.validate(arch))
    have = model.config
    for name in ("input_shape", "num_classes", "stem_kernel", "stem_stride"):
        if getattr(have, name) != getattr(config, name):
            raise ValueError(f"model does not match arch {arch.arch_id}: its {name} is {getattr(have, name)!r}, "
                             f"the arch's is {getattr(config, name)!r}")
    if len(have.stages) != len(config.stages):
        raise ValueError(f"model does not match arch {arch.arch_id}: it has {len(have.stages)} stages, "
                         f"the arch {len(config.stages)}")
    for i, (got, want) in enumerate(zip(have.stages, config.stages)):
        if got != want:
            raise ValueError(f"model does not match arch {arch.arch_id}: stages[{i}] is {_stage_str(got)}, "
                             f"the arch's is {_stage_str(want)}")
    return space, config


def _stage_str(stage: Any) -> str:
    blocks = ", ".join(f"{b.mixer} k{b.kernel_size} r{b.mlp_ratio:g}" for b in stage.blocks)
    return f"width {stage.width} with blocks [{blocks}]"


def _export_copy(model: QuadraNet, config: NetConfig) -> QuadraNet:
    """A CPU float32 copy in eval mode, quadratic mixers as plain ops (traceable and serialisable)."""
    net = QuadraNet(replace(config, quadra_impl="plain"))
    state = {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items()}
    net.load_state_dict(state, strict=True)
    return net.eval()


# --- writers ----------------------------------------------------------------------------------
@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the tracer's and exporters' warnings: shape checks traced as constants (batch size
    stays free), and the deprecation notices of ``torch.jit.trace`` / the TorchScript ONNX exporter."""
    with warnings.catch_warnings():
        for category in (torch.jit.TracerWarning, DeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        yield


def _write_safetensors(net: QuadraNet, path: Path, arch: ArchConfig) -> None:
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"arch_id": arch.arch_id, "space": arch.space})


def _write_torchscript(net: QuadraNet, path: Path, example: torch.Tensor) -> None:
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(net, example)
        torch.jit.save(traced, str(path))


def _write_onnx(net: QuadraNet, path: Path, example: torch.Tensor) -> None:
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            net, (example,), str(path), dynamo=False, opset_version=ONNX_OPSET,
            input_names=["images"], output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )


# --- the card: a record, then its rendering ---------------------------------------------------
def _card_record(arch: ArchConfig, space: SearchSpace, net: QuadraNet, card: dict[str, Any],
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


def _render_model_card(record: dict[str, Any]) -> str:
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
    known = {key for key, _ in CARD_FIELDS} | {"input"}
    lines += [f"| {key} | {_fmt(card[key])} |" for key in sorted(card) if key not in known]
    lines += _input_section(card.get("input"), (c, h, w))
    lines += ["", "## Files", ""]
    lines += [f"- `{name}`" for name in record["files"].values()]
    files = record["files"].values()
    lines += ["", "## Loading", "", "```python", "import nas", "",
              'model = nas.load_model("path/to/this/directory")  # QuadraNet, eval mode, CPU']
    if FILES["torchscript"] in files:
        lines += ["", "import torch", "",
                  f'scripted = torch.jit.load("{FILES["torchscript"]}")  # logits = scripted(x)']
    if FILES["onnx"] in files:
        lines += ["", "import onnxruntime", "",
                  f'session = onnxruntime.InferenceSession("{FILES["onnx"]}")',
                  'logits = session.run(["logits"], {"images": x.numpy()})[0]  # any batch size']
    lines += ["```", "", f"`x` is a float32 tensor of shape (batch, {c}, {h}, {w}), prepared as in *Input*.", ""]
    return "\n".join(lines)


def _input_section(spec: Any, shape: tuple[int, int, int]) -> list[str]:
    """The card's *Input* section: how raw pixels become the model's input."""
    c, h, w = shape
    lines = ["", "## Input", "", f"float32, NCHW, shape (batch, {c}, {h}, {w}); ONNX input `images`, output `logits`."]
    if not isinstance(spec, dict):
        return lines + ["The preprocessing was not recorded with this export: normalise as the model was trained."]
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


def _check_card(card: Mapping[str, Any] | None) -> dict[str, Any]:
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


# --- the directory ----------------------------------------------------------------------------
def _export_files(out: Path) -> set[str]:
    """Names of the files of the export in directory ``out``, as its ``card.json`` lists them;
    empty when ``out`` holds no export (no ``card.json`` written by :func:`export_model`, or one
    that does not list ``arch.json`` and itself)."""
    try:
        record = json.loads((out / FILES["card"]).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, not UTF-8, not JSON
        return set()
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict):
        return set()
    names = {name for name in files.values() if name in FILES.values()}
    return names if {FILES["arch"], FILES["card"]} <= names else set()


def _listing(names: Sequence[str], limit: int = 5) -> str:
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def check_out_dir(out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Raise ``FileExistsError`` unless ``out_dir`` may become an export directory: it does not
    exist, or is an empty directory, or (only with ``overwrite``) is a previous export holding
    nothing but the files its ``card.json`` lists. Anything else is never replaced, since its
    files would be lost. Creates nothing; returns ``out_dir`` as a ``Path``."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"export directory {out} exists and is not a directory; choose another directory")
    if not out.is_dir():
        return out
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return out
    if not overwrite:
        raise FileExistsError(f"export directory {out} already holds files; choose another directory, or pass "
                              "--overwrite (overwrite=True from Python) to replace a previous export there")
    known = _export_files(out)
    foreign = [name for name in entries if name not in known or not (out / name).is_file()]
    if not known:
        raise FileExistsError(f"export directory {out} is not an export (no card.json listing arch.json) and holds "
                              f"{_listing(foreign)}; --overwrite (overwrite=True) only replaces a previous export "
                              "or an empty directory: choose another directory")
    if foreign:
        raise FileExistsError(f"export directory {out} holds files that are not part of its export: "
                              f"{_listing(foreign)}; --overwrite (overwrite=True) only replaces a directory holding "
                              "nothing but an export's files: move them away or choose another directory")
    return out


def _sibling(out: Path, tag: str) -> Path:
    """A new hidden directory next to ``out`` (made with ``mkdir``, so the umask applies,
    unlike ``tempfile.mkdtemp``'s 0700)."""
    path = out.parent / f".{out.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def _remove_stale_partials(out: Path) -> None:
    """Remove the partial exports (``.NAME.tmp-PID-…`` beside ``out``) of writers that are gone (a
    killed export). A set-aside previous export (``.NAME.old-…``) is never removed: it may be the
    only copy left."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.tmp-(\d+)-[0-9a-f]{{8}}")
    if not out.parent.is_dir():
        return
    for entry in out.parent.iterdir():
        m = pattern.fullmatch(entry.name)
        try:
            stale = m is not None and entry.is_dir() and not writer_alive(int(m.group(1)), entry.stat().st_mtime)
        except OSError:  # renamed into place by a concurrent export meanwhile
            continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the complete ``tmp`` to ``out``; an old ``out`` is set aside first, then removed."""
    if not out.exists():
        os.replace(tmp, out)
        return
    trash = _sibling(out, "old")
    try:
        os.replace(out, trash / out.name)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(trash / out.name, out)
            raise
    finally:
        if out.exists():  # else the old directory could not be put back: keep it in ``trash``
            shutil.rmtree(trash, ignore_errors=True)


def export_model(model: QuadraNet, arch: ArchConfig, out_dir: str | Path, *,
                 formats: str | Sequence[str] = EXPORT_FORMATS, card: dict[str, Any] | None = None,
                 overwrite: bool = False) -> dict[str, Path]:
    """Write ``model`` (a :class:`QuadraNet` of ``arch``) as an export directory ``out_dir``.

    ``formats`` picks among :data:`EXPORT_FORMATS`; ``model.safetensors`` is written whatever
    it says, because :func:`load_model` rebuilds the model from it. ``card`` holds results to
    show on the model card (``test_acc``, ``val_acc``, ``latency_ms``, ``predicted_latency_ms``,
    ``peak_mem_mb``, ``device``, ``batch_size``, ``budget``, or any other JSON value). A file
    or non-empty directory at ``out_dir`` is refused; with ``overwrite`` a previous export there
    is replaced, but never a directory holding anything else (see :func:`check_out_dir`). Returns
    ``{name: path}`` of the files written (names: keys of :data:`FILES`).
    """
    formats = parse_formats(formats)
    space, config = _net_config(model, arch)
    card = _check_card(card)
    out = Path(out_dir)
    check_out_dir(out, overwrite=overwrite)
    written = ("safetensors",) + tuple(f for f in formats if f != "safetensors")
    names = ["arch", *written, "model_card", "card"]
    files = {name: FILES[name] for name in names}

    net = _export_copy(model, config)
    example = torch.randn(EXAMPLE_BATCH, *space.input_shape, generator=torch.Generator().manual_seed(0))
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out)
    tmp = _sibling(out, "tmp")
    try:
        (tmp / FILES["arch"]).write_text(arch.to_json(indent=2) + "\n", encoding="utf-8")
        _write_safetensors(net, tmp / FILES["safetensors"], arch)
        if "torchscript" in written:
            _write_torchscript(net, tmp / FILES["torchscript"], example)
        if "onnx" in written:
            _write_onnx(net, tmp / FILES["onnx"], example)
        record = _card_record(arch, space, net, card, written, files)
        (tmp / FILES["card"]).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (tmp / FILES["model_card"]).write_text(_render_model_card(record), encoding="utf-8")
        check_out_dir(out, overwrite=overwrite)  # again: something may have appeared while we worked
        _move_into_place(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {name: out / filename for name, filename in files.items()}


# --- checking and loading ---------------------------------------------------------------------
def _import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("checking an ONNX export needs ONNX Runtime: pip install onnxruntime") from None
    return onnxruntime


@torch.no_grad()
def _eval_forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` in eval mode, the model's mode restored afterwards; (B, classes) on CPU."""
    was_training = model.training
    device = next(model.parameters()).device
    try:
        return model.eval()(x.to(device)).float().cpu()
    finally:
        model.train(was_training)


def check_onnx(path: str | Path, model: torch.nn.Module, x: torch.Tensor, *, atol: float = 1e-4) -> float:
    """Max abs difference between the ONNX file run in ONNX Runtime (CPU) and ``model(x)`` in
    eval mode; ``ValueError`` if it exceeds ``atol``."""
    ort = _import_onnxruntime()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX file at {path}")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    got = torch.from_numpy(session.run(None, {name: x.detach().cpu().float().numpy()})[0])
    want = _eval_forward(model, x)
    if got.shape != want.shape:
        raise ValueError(f"ONNX output of {path} has shape {tuple(got.shape)}, the model's {tuple(want.shape)}")
    diff = (got - want).abs().max().item()
    if not diff <= atol:  # also catches NaN
        raise ValueError(f"ONNX output of {path} differs from the PyTorch model by {diff:.3g} "
                         f"(max abs) > atol {atol:g}")
    return diff


def _state_mismatch(net: QuadraNet, state: dict[str, torch.Tensor]) -> str:
    """'' if ``state`` fits ``net`` exactly, else what does not fit (first few keys)."""
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    problems = [f"missing {k}" for k in expected if k not in state]
    problems += [f"unexpected {k}" for k in state if k not in expected]
    problems += [f"{k} has shape {tuple(v.shape)}, needs {expected[k]}"
                 for k, v in state.items() if k in expected and tuple(v.shape) != expected[k]]
    more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


def _load_weights(net: QuadraNet, path: Path, arch: ArchConfig) -> None:
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"no weights file {path} (every export directory has one)")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # safetensors raises its own error types for a damaged file
        raise ValueError(f"weights file {path} is unreadable (truncated or corrupted?): {err}") from None
    problem = _state_mismatch(net, state)
    if problem:
        saved_for = f" (they were saved for arch_id {metadata['arch_id']})" if "arch_id" in metadata else ""
        raise ValueError(f"the weights in {path} do not fit arch_id {arch.arch_id}{saved_for}: {problem}")
    net.load_state_dict(state, strict=True)


def load_model(directory: str | Path) -> QuadraNet:
    """The :class:`QuadraNet` of an export directory (``arch.json`` + ``model.safetensors``), in
    eval mode on CPU. Errors name the file (and for a bad architecture, the field)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no export directory at {directory}")
    arch = load_arch(directory / FILES["arch"])
    net = QuadraNet(create_space(arch.space).to_net_config(arch))
    _load_weights(net, directory / FILES["safetensors"], arch)
    return net.eval()

"""Export a searched architecture as a stand-alone model directory.

An export directory holds::

    arch.json          the architecture (ArchConfig JSON, what ``nas`` commands read)
    model.safetensors  the weights, float32; always written, since :func:`load_model` needs it
    model.pt           TorchScript (``torch.jit.trace``), if "torchscript" is asked for
    model.onnx         ONNX, opset 17: input ``images`` (B, C, H, W) -> output ``logits``
                       (B, num_classes), batch size free, if "onnx" is asked for
    MODEL_CARD.md      a short human card: architecture, parameters, accuracy, latency, …
    card.json          the same record as JSON, with the formats and files written

(the formats: :data:`nas.export.formats.FORMATS`). Everything is written into a temporary sibling
directory that is synced and renamed into place at the end
(:func:`search_spaces.atomic.replace_directory`), so a crash never leaves a half export (with
``overwrite=True`` the old directory is replaced only once the new one is complete); the next
export of the same name removes a killed export's partial directory. ``overwrite`` replaces only
a previous export (a directory holding nothing but the files its ``card.json`` lists) or an
empty directory.

The traced formats (TorchScript, ONNX) are made from a CPU float32 copy of the model whose
quadratic mixers use the ``"plain"`` implementation: the same formula
``(W_a∗x) ⊙ (W_b∗x) + W_c∗x``, but as plain PyTorch ops, because the memory-efficient
implementation is a ``torch.autograd.Function`` that TorchScript cannot serialise. The model
passed in is never modified (mode, device and dtype are left as they were).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nas.export.card import card_record, check_card, render_model_card
from nas.export.formats import FORMATS, parse_formats
from search_spaces.arch import ArchConfig
from search_spaces.atomic import replace_directory, temp_paths, temp_sibling
from search_spaces.deploy import EXAMPLE_BATCH, deploy_copy, example_input
from search_spaces.networks import NetConfig, QuadraNet
from search_spaces.space import SearchSpace, create_space, parse_arch

__all__ = ["ARCH_FILE", "CARD_FILE", "EXAMPLE_BATCH", "MODEL_CARD_FILE", "check_out_dir", "export_files",
           "export_model", "load_arch_json"]

ARCH_FILE = "arch.json"
MODEL_CARD_FILE = "MODEL_CARD.md"
CARD_FILE = "card.json"


def export_files() -> dict[str, str]:
    """Name in the returned mapping and in ``card.json`` -> file name in the export directory: the
    architecture, every registered format's file (:data:`~nas.export.formats.FORMATS`), the cards."""
    return {"arch": ARCH_FILE, **{f.name: f.file for f in FORMATS.values()}, "model_card": MODEL_CARD_FILE,
            "card": CARD_FILE}


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





def _export_files(out: Path) -> set[str]:
    """Names of the files of the export in directory ``out``, as its ``card.json`` lists them;
    empty when ``out`` holds no export (no ``card.json`` written by :func:`export_model`, or one
    that does not list ``arch.json`` and itself)."""
    try:
        record = json.loads((out / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, not UTF-8, not JSON
        return set()
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict):
        return set()
    names = {name for name in files.values() if name in export_files().values()}
    return names if {ARCH_FILE, CARD_FILE} <= names else set()


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



def _remove_stale_partials(out: Path) -> None:
    """Remove the partial exports of writers that are gone (a killed export) beside ``out``. A
    set-aside previous export (``.NAME.old-…``) is never removed: it may be the only copy left."""
    for partial in temp_paths(out.parent, [out.name], directories=True):
        if not partial.alive:
            shutil.rmtree(partial.path, ignore_errors=True)


def export_model(model: QuadraNet, arch: ArchConfig, out_dir: str | Path, *,
                 formats: str | Sequence[str] | None = None, card: dict[str, Any] | None = None,
                 overwrite: bool = False) -> dict[str, Path]:
    """Write ``model`` (a :class:`QuadraNet` of ``arch``) as an export directory ``out_dir``.

    ``formats`` picks among the registered formats (``None``: all of them,
    :data:`~nas.export.formats.FORMATS`); ``model.safetensors`` is written whatever
    it says, because :func:`load_model` rebuilds the model from it. ``card`` holds results to
    show on the model card (``test_acc``, ``val_acc``, ``latency_ms``, ``predicted_latency_ms``,
    ``peak_mem_mb``, ``device``, ``batch_size``, ``budget``, or any other JSON value). A file
    or non-empty directory at ``out_dir`` is refused; with ``overwrite`` a previous export there
    is replaced, but never a directory holding anything else (see :func:`check_out_dir`). Returns
    ``{name: path}`` of the files written (names: keys of :func:`export_files`).
    """
    formats = parse_formats(formats)
    space, config = _net_config(model, arch)
    card = check_card(card)
    out = Path(out_dir)
    check_out_dir(out, overwrite=overwrite)
    written = ("safetensors",) + tuple(f for f in formats if f != "safetensors")
    names = ["arch", *written, "model_card", "card"]
    every_file = export_files()
    files = {name: every_file[name] for name in names}

    net = deploy_copy(model, config)
    example = example_input(space.input_shape)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out)
    tmp = temp_sibling(out)
    try:
        (tmp / ARCH_FILE).write_text(arch.to_json(indent=2) + "\n", encoding="utf-8")
        for name in written:
            FORMATS[name].write(net, tmp / files[name], arch, example)
        record = card_record(arch, space, net, card, written, files)
        (tmp / CARD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (tmp / MODEL_CARD_FILE).write_text(render_model_card(record), encoding="utf-8")
        check_out_dir(out, overwrite=overwrite)  # again: something may have appeared while we worked
        replace_directory(tmp, out)  # synced, then renamed into place
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {name: out / filename for name, filename in files.items()}


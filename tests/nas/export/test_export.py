"""Export directories: ONNX / TorchScript parity with PyTorch, load_model round trip, the card,
and the errors for bad input (formats, occupied directories, malformed arch.json, weights);
``--overwrite`` replaces only a previous export, never a search run or other files."""

from __future__ import annotations

import csv
import json
import random
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import nas
from nas.cli import main
from nas.export import (
    FORMATS,
    ExportFormat,
    check_onnx,
    check_out_dir,
    export_formats,
    export_model,
    load_arch_json,
    load_model,
    parse_formats,
)
from search_spaces.arch import ArchConfig, ArchError
from search_spaces.elastic import QuadraSupernet
from search_spaces.networks import QuadraNet, count_params
from search_spaces.space import create_space
from support import REPO

SPACE = create_space("digits-s")
ARCHS = {
    "max": SPACE.max_arch(),
    "min": SPACE.min_arch(),
    "rand0": SPACE.sample(random.Random(0)),
    "rand1": SPACE.sample(random.Random(1)),
}
CARD = {"test_acc": 0.9375, "val_acc": 0.921875, "latency_ms": 12.5, "predicted_latency_ms": 11.25,
        "device": "cpu", "batch_size": 64, "budget": {"latency_ms": 20}}


def _inputs(batch: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, *SPACE.input_shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def supernet() -> QuadraSupernet:
    torch.manual_seed(0)
    net = QuadraSupernet(SPACE)
    gammas = [p for n, p in net.named_parameters() if n.rsplit(".", 1)[-1] in ("gamma1", "gamma2")]
    assert len(gammas) == 2 * sum(SPACE.max_arch().depths)
    with torch.no_grad():
        for p in gammas:  # layer scales start at 1e-6: blocks would be invisible in the output
            p.uniform_(0.3, 0.7)
    return net.eval()


@pytest.fixture(scope="module")
def exported(supernet, tmp_path_factory) -> dict[str, tuple]:
    """Every arch of ARCHS exported once, in every format: key -> (arch, net, files)."""
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for key, arch in ARCHS.items():
        net = supernet.extract(arch).eval()
        out[key] = (arch, net, export_model(net, arch, root / key, card=CARD))
    return out


def test_random_archs_differ_from_the_extremes_and_mix_orders():
    ids = {a.arch_id for a in ARCHS.values()}
    assert len(ids) == len(ARCHS)
    orders = {b.order for key in ("rand0", "rand1") for s in ARCHS[key].stages for b in s.blocks}
    assert orders == {1, 2}


def test_blocks_contribute_to_the_output(supernet):
    # Without this, parity below could hold for a model whose blocks add ~1e-6.
    arch = ARCHS["max"]
    net = supernet.extract(arch).eval()
    x = _inputs(4)
    with torch.no_grad():
        y = net(x)
        for stage in net.stages:
            for block in stage:
                block.gamma1.zero_()
                block.gamma2.zero_()
        assert (net(x) - y).abs().max() > 1e-2


# --- parity --------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ARCHS)
def test_onnx_runtime_matches_pytorch_at_another_batch_size(exported, key):
    ort = pytest.importorskip("onnxruntime")
    arch, net, files = exported[key]
    x = _inputs(5)  # the export traced a batch of 2
    session = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(["logits"], {"images": x.numpy()})[0])
    with torch.no_grad():
        want = net(x)
    assert got.shape == (5, SPACE.num_classes)
    assert (got - want).abs().max().item() <= 1e-4
    diff = check_onnx(files["onnx"], net, x)
    assert 0.0 <= diff <= 1e-4


def test_onnx_graph_has_named_io_with_a_free_batch_axis(exported):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(exported["max"][2]["onnx"]))
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert model.opset_import[0].version == 17
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == list(SPACE.input_shape)


def test_check_onnx_rejects_another_model(exported, supernet):
    pytest.importorskip("onnxruntime")
    _, net, files = exported["max"]
    other = supernet.extract(ARCHS["max"])
    with torch.no_grad():
        other.head.bias.add_(0.5)
    with pytest.raises(ValueError, match=r"differs from the PyTorch model by 0\.5"):
        check_onnx(files["onnx"], other, _inputs(3))


def test_check_onnx_says_how_to_install_onnxruntime(exported, monkeypatch):
    _, net, files = exported["min"]
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match="pip install onnxruntime"):
        check_onnx(files["onnx"], net, _inputs(2))


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("key", ARCHS)
def test_torchscript_matches_pytorch(exported, key):
    _, net, files = exported[key]
    scripted = torch.jit.load(str(files["torchscript"]))
    x = _inputs(3)
    with torch.no_grad():
        assert torch.allclose(scripted(x), net(x), rtol=0, atol=1e-5)


# --- load_model ------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ARCHS)
def test_load_model_round_trip(exported, supernet, key):
    arch, _, files = exported[key]
    model = load_model(files["arch"].parent)
    assert isinstance(model, QuadraNet) and not model.training
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in model.parameters())
    x = _inputs(4)
    supernet.set_active(arch)
    with torch.no_grad():
        got = model(x)
        assert torch.equal(got, supernet.extract(arch).eval()(x))
        assert torch.allclose(got, supernet(x), rtol=0, atol=1e-5)


def test_nas_load_model_is_export_load_model():
    assert nas.load_model is load_model
    assert "load_model" in dir(nas) and nas.__all__ == ["load_model"]
    with pytest.raises(AttributeError, match="no_such_name"):
        nas.no_such_name  # noqa: B018


def test_importing_nas_does_not_import_torch():
    code = "import sys, nas; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- the card and the files -----------------------------------------------------------------------
def test_card_json_and_model_card(exported):
    arch, net, files = exported["rand0"]
    out = files["arch"].parent
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in files.values())
    assert all(p.is_file() and p.stat().st_size > 0 for p in files.values())
    record = json.loads(files["card"].read_text())
    assert record["arch_id"] == arch.arch_id and record["space"] == "digits-s"
    assert record["params"] == count_params(net)
    assert record["n_quadratic"] == arch.n_quadratic == sum(s["n_quadratic"] for s in record["stages"])
    assert record["card"] == CARD
    assert record["formats"] == list(export_formats())
    assert record["files"] == {name: p.name for name, p in files.items()}
    assert json.loads(files["arch"].read_text()) == arch.to_dict()
    text = files["model_card"].read_text()
    for needle in (arch.arch_id, arch.describe(), f"{count_params(net):,}", "| test accuracy | 0.9375 |",
                   "| validation accuracy | 0.9219 |", "| latency, measured (ms) | 12.5 |",
                   "| latency, predicted (ms) | 11.25 |", "| peak memory (MB) | — |", "| batch size | 64 |",
                   "float32, NCHW, shape (batch, 1, 8, 8); ONNX input `images`, output `logits`",
                   "The preprocessing was not recorded with this export", 'torch.jit.load("model.pt")',
                   'onnxruntime.InferenceSession("model.onnx")'):
        assert needle in text, needle


def test_only_the_asked_formats_plus_safetensors(supernet, tmp_path):
    arch = ARCHS["min"]
    files = export_model(supernet.extract(arch), arch, tmp_path / "out", formats="onnx")
    assert set(files) == {"arch", "safetensors", "onnx", "model_card", "card"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["arch.json", "model.safetensors", "model.onnx", "MODEL_CARD.md", "card.json"])
    record = json.loads(files["card"].read_text())
    assert record["formats"] == ["safetensors", "onnx"] and record["card"] == {}
    assert "| test accuracy | — |" in files["model_card"].read_text()


@pytest.mark.parametrize("value, expected", [
    (None, export_formats()),
    ("safetensors,onnx", ("safetensors", "onnx")),
    (" onnx , torchscript,onnx ", ("onnx", "torchscript")),
    (["torchscript", "safetensors", "torchscript"], ("torchscript", "safetensors")),
    (("ONNX",), ("onnx",)),
])
def test_parse_formats(value, expected):
    assert parse_formats(value) == expected


@pytest.mark.parametrize("value", ["safetensors,tflite", ["onnx", "tflite"]])
def test_parse_formats_rejects_unknown_names(value):
    with pytest.raises(ValueError, match=r"'tflite'.*valid: safetensors, torchscript, onnx"):
        parse_formats(value)


@pytest.mark.parametrize("value", ["", " , ", []])
def test_parse_formats_rejects_an_empty_selection(value):
    with pytest.raises(ValueError, match="no export format"):
        parse_formats(value)


def test_export_refuses_an_unknown_format_before_writing(supernet, tmp_path):
    arch = ARCHS["min"]
    with pytest.raises(ValueError, match="tflite"):
        export_model(supernet.extract(arch), arch, tmp_path / "out", formats="onnx,tflite")
    assert list(tmp_path.iterdir()) == []


# --- directories -----------------------------------------------------------------------------------
def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_occupied_out_dir_is_refused_and_left_alone(supernet, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    arch = ARCHS["min"]
    with pytest.raises(FileExistsError, match=str(out)):
        export_model(supernet.extract(arch), arch, out)
    assert _snapshot(out) == {"notes.txt": b"mine"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary directory left


def test_a_file_at_out_dir_is_refused_even_with_overwrite(supernet, tmp_path):
    out = tmp_path / "out"
    out.write_text("a file")
    arch = ARCHS["min"]
    with pytest.raises(FileExistsError, match="not a directory"):
        export_model(supernet.extract(arch), arch, out, overwrite=True)
    assert out.read_text() == "a file"


def test_an_empty_out_dir_is_used(supernet, tmp_path):
    (tmp_path / "out").mkdir()
    arch = ARCHS["min"]
    files = export_model(supernet.extract(arch), arch, tmp_path / "out", formats="safetensors")
    assert load_model(tmp_path / "out").config.stages == SPACE.to_net_config(arch).stages
    assert all(p.is_file() for p in files.values())


def test_overwrite_replaces_the_old_export(supernet, tmp_path):
    out = tmp_path / "out"
    old, new = ARCHS["min"], ARCHS["rand1"]
    export_model(supernet.extract(old), old, out, formats="safetensors,onnx")
    files = export_model(supernet.extract(new), new, out, formats="safetensors,torchscript", overwrite=True)
    assert not (out / "model.onnx").exists()  # the old export's files do not linger
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in files.values())
    assert json.loads((out / "card.json").read_text())["arch_id"] == new.arch_id
    assert load_model(out).config.stages == SPACE.to_net_config(new).stages
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_crash_mid_export_leaves_no_half_export(supernet, tmp_path, monkeypatch, overwrite):
    out = tmp_path / "out"
    old, new = ARCHS["min"], ARCHS["max"]
    if overwrite:
        export_model(supernet.extract(old), old, out, formats="safetensors")
    before = _snapshot(out) if overwrite else None

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setitem(FORMATS, "onnx", replace(FORMATS["onnx"], write=crash))
    with pytest.raises(RuntimeError, match="disk full"):
        export_model(supernet.extract(new), new, out, overwrite=overwrite)
    if overwrite:
        assert _snapshot(out) == before
    else:
        assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == (["out"] if overwrite else [])


# --- overwrite replaces a previous export, nothing else -------------------------------------------
def _tree(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and directory or link (None) under ``root``, by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() and not p.is_symlink() else None
            for p in sorted(root.rglob("*"))}


def test_occupied_out_dir_message_names_the_overwrite_flag(supernet, tmp_path):
    out = tmp_path / "out"
    arch = ARCHS["min"]
    export_model(supernet.extract(arch), arch, out, formats="safetensors")
    with pytest.raises(FileExistsError, match=r"already holds files; .*--overwrite \(overwrite=True"):
        export_model(supernet.extract(arch), arch, out, formats="safetensors")
    with pytest.raises(FileExistsError, match=r"--overwrite \(overwrite=True"):
        check_out_dir(out)
    assert check_out_dir(out, overwrite=True) == out
    assert check_out_dir(tmp_path / "new") == tmp_path / "new" and not (tmp_path / "new").exists()


def _many_files(d: Path) -> None:
    for i in range(7):
        (d / f"notes{i}.txt").write_text(str(i))


def _a_subdirectory(d: Path) -> None:
    (d / "data").mkdir()
    (d / "data" / "x.bin").write_bytes(b"mine")


def _export_names_without_a_card(d: Path) -> None:
    (d / "arch.json").write_text(ARCHS["min"].to_json())
    (d / "model.onnx").write_bytes(b"my own model")


def _a_card_that_is_not_json(d: Path) -> None:
    (d / "arch.json").write_text(ARCHS["min"].to_json())
    (d / "card.json").write_text("my notes")


@pytest.mark.parametrize("make, listed", [
    (_many_files, "notes0.txt, notes1.txt, notes2.txt, notes3.txt, notes4.txt (+2 more)"),
    (_a_subdirectory, "data"),
    (_export_names_without_a_card, "arch.json, model.onnx"),
    (_a_card_that_is_not_json, "arch.json, card.json"),
], ids=["many-files", "subdirectory", "no-card", "card-not-json"])
def test_overwrite_refuses_a_directory_that_is_not_an_export(supernet, tmp_path, make, listed):
    out = tmp_path / "out"
    out.mkdir()
    make(out)
    before = _tree(tmp_path)
    arch = ARCHS["min"]
    with pytest.raises(FileExistsError) as info:
        export_model(supernet.extract(arch), arch, out, formats="safetensors", overwrite=True)
    message = str(info.value)
    assert message.startswith(f"export directory {out} is not an export (no card.json listing arch.json) "
                              f"and holds {listed}; ")
    assert "--overwrite (overwrite=True) only replaces a previous export or an empty directory" in message
    assert _tree(tmp_path) == before  # every file kept, byte for byte, and no temporary directory left


@pytest.mark.parametrize("extra", ["notes.txt", "model.onnx", "sub", "MODEL_CARD.md"])
def test_overwrite_refuses_an_export_holding_other_files(supernet, tmp_path, extra):
    out = tmp_path / "out"
    old, new = ARCHS["min"], ARCHS["rand1"]
    export_model(supernet.extract(old), old, out, formats="safetensors")
    if extra in ("notes.txt", "model.onnx"):  # model.onnx: an export's name, but not this export's file
        (out / extra).write_text("mine")
    else:  # a directory, also under the name of a file the export lists
        (out / extra).unlink(missing_ok=True)
        (out / extra).mkdir()
        (out / extra / "x.txt").write_text("mine")
    before = _tree(tmp_path)
    with pytest.raises(FileExistsError, match=f"export directory {out} holds files that are not part of its "
                                              f"export: {extra}; --overwrite"):
        export_model(supernet.extract(new), new, out, formats="safetensors", overwrite=True)
    assert _tree(tmp_path) == before


def _write_trials(path: Path, archs) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, ["arch_id", "arch_json", "val_acc", "pred_latency_ms", "pred_peak_mem_mb"])
        writer.writeheader()
        for arch in archs:
            writer.writerow({"arch_id": arch.arch_id, "arch_json": arch.to_json(), "val_acc": 0.5,
                             "pred_latency_ms": 1.5, "pred_peak_mem_mb": 2.5})


@pytest.fixture
def fake_run(supernet, tmp_path) -> Path:
    """A search run directory with what ``nas export`` reads (config.json, trials.csv, a supernet/
    holding the module's supernet), records it does not read, and an export of ARCHS["min"]."""
    from safetensors.torch import save_file

    run = tmp_path / "run"
    (run / "supernet").mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in supernet.state_dict().items()}, str(run / "supernet/supernet.safetensors"))
    (run / "supernet/config.json").write_text(json.dumps({"space": "digits-s", "dataset": "digits", "seed": 0}))
    (run / "supernet/checkpoint.pt").write_bytes(b"a checkpoint")
    (run / "config.json").write_text(json.dumps({"space": "digits-s", "device_name": "cpu", "batch_size": 8,
                                                 "trials": 2, "objectives": ["accuracy", "latency", "memory"]}))
    _write_trials(run / "trials.csv", [ARCHS["min"], ARCHS["rand0"]])
    (run / "study.db").write_bytes(b"SQLite format 3\x00 a study")
    (run / "predictors/latency").mkdir(parents=True)
    (run / "predictors/latency/predictor.json").write_text("{}")
    (run / "report.md").write_text("# a report")
    arch = ARCHS["min"]
    export_model(supernet.extract(arch), arch, run / "exports" / arch.arch_id, formats="safetensors,torchscript")
    return run


def _export(run: Path, *args: str, arch_id: str = ARCHS["min"].arch_id) -> int:
    return main(["export", "--run", str(run), "--arch-id", arch_id, "--format", "safetensors", *args])


@pytest.mark.parametrize("overwrite", [True, False], ids=["overwrite", "no-overwrite"])
@pytest.mark.parametrize("where, why", [
    ("run", "is the search run directory"),
    ("ancestor", "contains the search run directory"),
    ("link-to-run", "is the search run directory"),
    ("supernet", "lies among the records of search run"),
    ("supernet/new", "lies among the records of search run"),
    ("predictors", "lies among the records of search run"),
    ("report.md", "lies among the records of search run"),
    ("exports", "is the directory of all exports of search run"),
])
def test_nas_export_into_the_run_is_refused_and_the_run_kept(fake_run, tmp_path, capsys, where, why, overwrite):
    out = {"run": fake_run, "ancestor": tmp_path, "link-to-run": tmp_path / "link"}.get(where, fake_run / where)
    if where == "link-to-run":
        out.symlink_to(fake_run, target_is_directory=True)
    before = _tree(tmp_path)
    assert _export(fake_run, "--out", str(out), *(["--overwrite"] if overwrite else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nas export: error: export directory {out} {why}")
    assert f"under {fake_run / 'exports'}/ (default: {fake_run / 'exports' / ARCHS['min'].arch_id})" in err
    assert _tree(tmp_path) == before  # every file of the run kept, byte for byte


def test_nas_export_refuses_the_run_given_relative_to_it(fake_run, capsys, monkeypatch):
    before = _tree(fake_run)
    monkeypatch.chdir(fake_run / "exports")
    assert _export(Path(".."), "--out", "..", "--overwrite") == 2
    assert "export directory .. is the search run directory .." in capsys.readouterr().err
    assert _tree(fake_run) == before


@pytest.mark.parametrize("where", ["supernet", "parent", "inside"])
def test_nas_export_refuses_the_supernet_the_run_reused(fake_run, tmp_path, capsys, where):
    reused = tmp_path / "shared" / "supernet"
    reused.parent.mkdir()
    shutil.move(fake_run / "supernet", reused)
    cfg = json.loads((fake_run / "config.json").read_text())
    (fake_run / "config.json").write_text(json.dumps(dict(cfg, supernet=str(reused))))
    out = {"supernet": reused, "parent": reused.parent, "inside": reused / "exp"}[where]
    before = _tree(tmp_path)
    assert _export(fake_run, "--out", str(out), "--overwrite") == 2
    err = capsys.readouterr().err
    assert f"export directory {out} overlaps the supernet directory {reused} that run {fake_run} reused" in err
    assert _tree(tmp_path) == before


def test_nas_export_refuses_a_directory_of_other_files_and_says_so(fake_run, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert _export(fake_run, "--out", str(out)) == 2
    assert "already holds files; choose another directory, or pass --overwrite" in capsys.readouterr().err
    assert _export(fake_run, "--out", str(out), "--overwrite") == 2
    assert f"export directory {out} is not an export (no card.json listing arch.json) and holds thesis.tex" \
        in capsys.readouterr().err
    assert _tree(out) == {"thesis.tex": b"years of work"}


def test_nas_export_overwrites_a_previous_export_of_the_run(fake_run, capsys):
    arch = ARCHS["min"]
    out = fake_run / "exports" / arch.arch_id
    before = _tree(fake_run)
    assert _export(fake_run) == 2  # the default directory holds the export made before
    assert f"export directory {out} already holds files; choose another directory, or pass --overwrite" \
        in capsys.readouterr().err
    assert _tree(fake_run) == before
    assert _export(fake_run, "--overwrite") == 0
    assert f"card: {out / 'card.json'}" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["MODEL_CARD.md", "arch.json", "card.json", "model.safetensors"]
    record = json.loads((out / "card.json").read_text())
    assert record["arch_id"] == arch.arch_id and 0.0 <= record["card"]["test_acc"] <= 1.0
    assert record["card"]["predicted_latency_ms"] == 1.5
    assert load_model(out).config.stages == SPACE.to_net_config(arch).stages
    after = _tree(fake_run)  # the rest of the run is untouched, and no temporary directory is left
    assert {k: v for k, v in after.items() if not k.startswith("exports")} == \
        {k: v for k, v in before.items() if not k.startswith("exports")}
    assert [p.name for p in (fake_run / "exports").iterdir()] == [arch.arch_id]
    # a new export under RUN/exports/ is fine too
    assert _export(fake_run, "--out", str(fake_run / "exports" / "best"), arch_id=ARCHS["rand0"].arch_id) == 0
    assert json.loads((fake_run / "exports/best/card.json").read_text())["arch_id"] == ARCHS["rand0"].arch_id


def test_export_rejects_a_model_of_another_arch(supernet, tmp_path):
    arch, other = ARCHS["rand0"], ARCHS["rand1"]
    with pytest.raises(ValueError, match=f"model does not match arch {other.arch_id}"):
        export_model(supernet.extract(arch), other, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("training", [True, False])
def test_export_leaves_the_model_as_it_was(supernet, tmp_path, training):
    arch = ARCHS["rand0"]
    net = supernet.extract(arch).train(training)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    export_model(net, arch, tmp_path / "out")
    assert all(m.training is training for m in net.modules())
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    assert all(b.mixer.impl == "efficient" for s in net.stages for b in s if b.is_quadratic)


# --- loading errors ------------------------------------------------------------------------------
@pytest.fixture
def export_copy(exported, tmp_path) -> Path:
    """A writable copy of the "rand0" export."""
    src = exported["rand0"][2]["arch"].parent
    return Path(shutil.copytree(src, tmp_path / "export"))


def _bad_arch_texts() -> list:
    good = ARCHS["rand0"].to_dict()
    unknown = {"space": good["space"], "stagez": good["stages"]}
    kernel = json.loads(json.dumps(good))
    kernel["stages"][0]["blocks"][0]["kernel_size"] = 9
    too_deep = json.loads(json.dumps(good))
    too_deep["stages"][0]["blocks"] = [too_deep["stages"][0]["blocks"][0]] * 3  # digits-s: depths (1, 2)
    space = dict(good, space="mnist-xl")
    return [
        pytest.param(json.dumps(unknown), "stagez", "unknown field", id="unknown-field"),
        pytest.param(json.dumps(kernel), "stages[0].blocks[0].kernel_size", "9 not in allowed", id="kernel-9"),
        pytest.param(json.dumps(too_deep), "stages[0].blocks", "3 blocks given", id="three-blocks"),
        pytest.param(json.dumps(space), "space", "unknown search space 'mnist-xl'", id="unknown-space"),
        pytest.param('{"space": "digits-s", "stages": [', "arch", "not valid JSON", id="invalid-json"),
    ]


@pytest.mark.parametrize("text, field, detail", _bad_arch_texts())
def test_load_model_names_the_bad_field_and_the_file(export_copy, text, field, detail):
    path = export_copy / "arch.json"
    path.write_text(text)
    with pytest.raises(ArchError) as info:
        load_model(export_copy)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert detail in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("text, field, detail", _bad_arch_texts())
def test_load_arch_json_names_the_bad_field_and_the_source(text, field, detail):
    with pytest.raises(ArchError) as info:
        load_arch_json(text, source="picked.json")
    assert info.value.field == field and detail in str(info.value) and "picked.json" in str(info.value)
    if field != "arch":  # the same through an already parsed dict
        with pytest.raises(ArchError, match=r"picked\.json") as info:
            load_arch_json(json.loads(text), source="picked.json")
        assert info.value.field == field


def test_load_arch_json_round_trips():
    arch = ARCHS["rand1"]
    assert load_arch_json(arch.to_json(indent=2), source="x") == arch
    assert load_arch_json(arch.to_dict(), source="x") == arch


def test_missing_directory_and_files_are_named(export_copy, tmp_path):
    with pytest.raises(FileNotFoundError, match="no export directory"):
        load_model(tmp_path / "nowhere")
    (export_copy / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=str(export_copy / "model.safetensors")):
        load_model(export_copy)
    (export_copy / "arch.json").unlink()
    with pytest.raises(FileNotFoundError, match=str(export_copy / "arch.json")):
        load_model(export_copy)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_weights_are_named(export_copy, damage):
    path = export_copy / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(b"not a safetensors file" if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"weights file {path} is unreadable"):
        load_model(export_copy)


def test_weights_of_another_arch_are_refused(export_copy, exported):
    arch = ARCHS["rand0"]
    other = ARCHS["rand1"]
    shutil.copy(exported["rand1"][2]["safetensors"], export_copy / "model.safetensors")
    path = export_copy / "model.safetensors"
    with pytest.raises(ValueError, match=f"weights in {path} do not fit arch_id {arch.arch_id}") as info:
        load_model(export_copy)
    assert f"saved for arch_id {other.arch_id}" in str(info.value)


def test_card_values_from_numpy_and_pandas_become_json(supernet, tmp_path):
    np = pytest.importorskip("numpy")
    arch = ARCHS["min"]
    card = {"test_acc": np.float32(0.75), "batch_size": np.int64(32), "val_acc": float("nan"),
            "latency_ms": torch.tensor(2.5)}
    files = export_model(supernet.extract(arch), arch, tmp_path / "out", formats="safetensors", card=card)
    record = json.loads(files["card"].read_text())
    assert record["card"] == {"test_acc": 0.75, "batch_size": 32, "val_acc": None, "latency_ms": 2.5}
    assert type(record["card"]["batch_size"]) is int
    text = files["model_card"].read_text()
    assert "| validation accuracy | — |" in text and "| batch size | 32 |" in text


def test_a_card_that_is_not_json_is_refused_before_writing(supernet, tmp_path):
    arch = ARCHS["min"]
    with pytest.raises(ValueError, match="card must hold JSON values"):
        export_model(supernet.extract(arch), arch, tmp_path / "out", card={"test_acc": {0.9}})
    with pytest.raises(ValueError, match="card must hold JSON values"):
        export_model(supernet.extract(arch), arch, tmp_path / "out", card={"latency_ms": float("inf")})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_exporting_a_cuda_model_leaves_it_on_cuda(supernet, tmp_path):
    arch = ARCHS["rand0"]
    net = supernet.extract(arch).cuda().train()
    export_model(net, arch, tmp_path / "out", formats="safetensors")
    assert net.training and all(p.is_cuda for p in net.parameters())
    x = _inputs(2)
    with torch.no_grad():
        assert torch.allclose(load_model(tmp_path / "out")(x), net.eval()(x.cuda()).cpu(), rtol=0, atol=1e-4)


def test_nas_export_of_a_supernet_directory_says_it_is_not_a_search_run(fake_run, tmp_path, capsys):
    out = tmp_path / "e"
    assert main(["export", "--run", str(fake_run / "supernet"), "--arch-id", ARCHS["min"].arch_id,
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is not a nas-search run directory" in err and "nas report" not in err
    assert not out.exists()


def test_export_and_supernet_eval_read_the_dataset_from_data_dir(fake_run, tmp_path, monkeypatch, capsys):
    """Data moved since the supernet was trained: --data-dir says where it lies now (the record's
    directory otherwise)."""
    import nas.data
    import nas.export.from_run

    real = nas.data.load_dataset
    seen = []

    def recording(name, *, seed=0, data_dir=None, **kw):
        seen.append(data_dir)
        return real(name, seed=seed, **kw)  # digits reads no files
    monkeypatch.setattr(nas.export.from_run, "load_dataset", recording)
    monkeypatch.setattr(nas.data, "load_dataset", recording)
    moved = tmp_path / "moved-data"
    assert _export(fake_run, "--out", str(tmp_path / "e1"), "--data-dir", str(moved)) == 0
    assert _export(fake_run, "--out", str(tmp_path / "e2")) == 0
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(ARCHS["min"].to_json())
    assert main(["supernet", "eval", "--checkpoint", str(fake_run / "supernet"), "--arch", str(arch_file),
                 "--data-dir", str(moved)]) == 0
    assert "inherited val_acc=" in capsys.readouterr().out
    assert seen == [str(moved), None, str(moved)]


def test_a_killed_exports_partial_directory_is_removed_by_the_next_export(supernet, tmp_path):
    arch = ARCHS["min"]
    out = tmp_path / "exports" / arch.arch_id
    out.parent.mkdir()
    dead = tmp_path / "exports" / f".{arch.arch_id}.tmp-{2**22 + 12345}-0123abcd"  # a PID no process has
    dead.mkdir()
    (dead / "arch.json").write_text("{")  # half written when the process was killed
    kept = tmp_path / "exports" / f".{arch.arch_id}.old-{2**22 + 12345}-0123abcd"  # maybe the only old copy
    kept.mkdir()
    other = tmp_path / "exports" / ".notes.tmp-1-0123abcd"  # not this export's
    other.mkdir()
    export_model(supernet.extract(arch), arch, out, formats="safetensors")
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([arch.arch_id, kept.name, other.name])


def test_export_by_arch_id_finds_a_pick_that_is_not_a_trial(fake_run, tmp_path, capsys):
    """The space's smallest architecture can be a budget's pick without being a trial."""
    arch = ARCHS["rand1"]  # not in the fake run's trials.csv
    pick = {"arch_id": arch.arch_id, "arch": arch.to_dict(), "status": "met", "trial_number": None,
            "predicted": {"val_acc": 0.5, "latency_ms": 1.0, "peak_mem_mb": 0.2}, "measured": None}
    (fake_run / "picks.json").write_text(json.dumps({"picks": [pick]}))
    out = tmp_path / "e"
    assert _export(fake_run, "--out", str(out), arch_id=arch.arch_id) == 0
    assert ArchConfig.from_json((out / "arch.json").read_text()) == arch
    assert json.loads((out / "card.json").read_text())["card"]["predicted_latency_ms"] == 1.0
    capsys.readouterr()
    assert _export(fake_run, "--out", str(tmp_path / "f"), arch_id="0123456789ab") == 2  # in neither
    assert "is not among the 2 trials" in capsys.readouterr().err


def test_a_format_registered_later_is_written_listed_on_the_card_and_replaceable(supernet, tmp_path, monkeypatch):
    """The formats registry is the only list: a new entry needs nothing else to be exported."""
    arch = ARCHS["min"]

    def write(net, path, arch_, example):
        path.write_text(f"{arch_.arch_id} {tuple(example.shape)}\n")

    monkeypatch.setitem(FORMATS, "text", ExportFormat(name="text", file="model.txt", description="a test format",
                                                      write=write, loading=("text = open('model.txt').read()",)))
    out = tmp_path / "e"
    files = export_model(supernet.extract(arch), arch, out, formats="safetensors,text")
    assert files["text"] == out / "model.txt"
    assert files["text"].read_text() == f"{arch.arch_id} (2, {', '.join(map(str, SPACE.input_shape))})\n"
    card = json.loads((out / "card.json").read_text())
    assert card["formats"] == ["safetensors", "text"] and card["files"]["text"] == "model.txt"
    assert "text = open('model.txt').read()" in (out / "MODEL_CARD.md").read_text()
    export_model(supernet.extract(arch), arch, out, formats="text", overwrite=True)  # its file belongs to the export
    assert (out / "model.txt").is_file()
    assert parse_formats(None) == (*export_formats()[:-1], "text") == tuple(FORMATS)


def test_a_corrupt_picks_json_is_named_not_left_off_the_card(fake_run, tmp_path, capsys):
    (fake_run / "picks.json").write_text('{"picks": [')  # cut short
    out = tmp_path / "e"
    assert _export(fake_run, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "picks.json in run directory" in err and "not valid JSON" in err
    assert not out.exists()


def test_model_card_states_the_data_licence_and_how_to_prepare_an_image_file(tmp_path):
    from nas.export.card import render_model_card

    spec = {"normalise": "x[:, c] = (pixels[:, c] / 255 - mean[c]) / std[c]", "mean": [0.5], "std": [0.25],
            "pixel_max": 255.0, "class_names": ["functional", "defective"], "resize": [32, 32], "color_mode": "L",
            "image_file": "open with Pillow, convert('L'), resize((32, 32), Image.BILINEAR), take the pixels"}
    arch = ARCHS["min"]
    record = {"arch_id": arch.arch_id, "space": SPACE.name, "layout": arch.describe(), "input_shape": [1, 8, 8],
              "num_classes": 10, "params": 1, "n_blocks": 1, "n_quadratic": 0, "stages": [], "files": {},
              "torch_version": "x", "card": {"input": spec, "data_license": "CC BY-NC-SA 4.0 (ELPV dataset)"}}
    text = render_model_card(record)
    assert "## Data licence" in text and "CC BY-NC-SA 4.0 (ELPV dataset)" in text
    assert "From an image file: open with Pillow, convert('L'), resize((32, 32)" in text
    assert "| data_license |" not in text  # said once, in its own section

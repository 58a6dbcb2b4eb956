"""The runtimes a network is deployed with (profilers.runtimes) and the Target record.

References: PyTorch eager's logits for the same weights; the files ``nas export`` writes, loaded
in their own runtime by hand; the ONNX model's initializers summed by hand; the fingerprint id
of a torch measurement recomputed from the identity fields it had before runtimes existed."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import numpy as np
import onnxruntime
import pytest
import torch

from nas.export import export_model
from profilers import RUNTIMES, Deployed, LatencySettings, Target, create_runtime, device_fingerprint, profile
from profilers.fingerprint import DeviceFingerprint
from profilers.runtimes import OnnxRuntime, _initializer_bytes
from search_spaces.deploy import deploy_copy, example_input, write_onnx
from search_spaces.networks import QuadraNet
from search_spaces.space import create_space

SPACE = create_space("digits-s")
FAST = dict(warmup=1, warmup_seconds=0.0, min_repeats=4, max_repeats=8)


def _model(arch=None, seed=0):
    torch.manual_seed(seed)
    net = QuadraNet(SPACE.to_net_config(arch or SPACE.min_arch())).eval()
    with torch.no_grad():  # weights away from their initial values (layer scale 1e-6 hides the blocks)
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


def _x(batch=3):
    return torch.randn(batch, *SPACE.input_shape, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", list(RUNTIMES))
def test_every_runtime_reproduces_the_eager_logits(name):
    net = _model(SPACE.max_arch())
    deployed = create_runtime(name).deploy(net, input_shape=SPACE.input_shape, device=torch.device("cpu"),
                                           threads=1)
    assert isinstance(deployed, Deployed) and deployed.runtime == name
    x = _x()
    with torch.inference_mode():
        want = net(x)
    got = deployed.run(x)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)
    deployed.infer_fn(x)()  # the timed call runs


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load, as the model card shows it
def test_runtimes_measure_the_very_files_nas_export_writes(tmp_path):
    import onnxruntime as ort

    net = _model(SPACE.max_arch())
    arch = SPACE.max_arch()
    files = export_model(net, arch, tmp_path / "exp", formats="onnx,torchscript")
    x = _x()
    session = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    by_hand = session.run(["logits"], {"images": x.numpy()})[0]
    ort_runtime = create_runtime("onnxruntime").deploy(net, input_shape=SPACE.input_shape,
                                                        device=torch.device("cpu"), threads=1)
    assert np.array_equal(ort_runtime.run(x).numpy(), by_hand)  # the same bytes, the same session output
    scripted = torch.jit.load(str(files["torchscript"]))
    ts_runtime = create_runtime("torchscript").deploy(net, input_shape=SPACE.input_shape,
                                                       device=torch.device("cpu"), threads=1)
    with torch.inference_mode():
        assert torch.equal(ts_runtime.run(x), scripted(x))


def test_onnxruntime_memory_counts_weights_input_and_its_arena(tmp_path):
    net = _model(SPACE.max_arch())
    path = tmp_path / "m.onnx"
    write_onnx(deploy_copy(net), path, example_input(SPACE.input_shape))
    data = path.read_bytes()
    params = sum(p.numel() * p.element_size() for p in net.parameters())
    assert _initializer_bytes(data) >= params  # every weight is an initializer (shape constants may add a few)
    assert _initializer_bytes(data) < params * 1.05
    deployed = OnnxRuntime().deploy(net, input_shape=SPACE.input_shape, device=torch.device("cpu"), threads=1)
    x = _x(1)
    peak = deployed.peak_infer_bytes(x)
    assert peak > deployed.initializer_bytes + x.numel() * 4  # plus the arena's peak (activations, pre-packing)
    assert peak == deployed.peak_infer_bytes(x)  # ONNX Runtime's own count: repeatable to the byte


def test_onnxruntime_without_its_arena_record_says_which_version_is_needed(monkeypatch, tmp_path):
    deployed = OnnxRuntime().deploy(_model(), input_shape=SPACE.input_shape, device=torch.device("cpu"), threads=1)
    monkeypatch.setattr(json, "loads", lambda text: [{"cat": "Node", "args": {}}])
    with pytest.raises(RuntimeError, match=r"reports no arena memory \(mem_in_use_peak\)"):
        deployed.peak_infer_bytes(_x(1))


def test_unknown_or_missing_runtimes_are_refused_naming_what_is_valid(monkeypatch):
    with pytest.raises(ValueError, match=r"runtime must be one of torch, torchscript, onnxruntime, got 'tflite'"):
        create_runtime("tflite")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ValueError, match=r"needs the onnxruntime package, which is not installed; install it "
                                         r"\(pip install onnxruntime\) or use runtime torch"):
        create_runtime("onnxruntime")
    with pytest.raises(ValueError, match="onnxruntime"):
        profile(SPACE.min_arch(), runtime="onnxruntime")


@pytest.mark.parametrize("runtime", ["torchscript", "onnxruntime"])
def test_profile_in_a_runtime_records_it_in_the_fingerprint(runtime):
    rec = profile(SPACE.min_arch(), runtime=runtime, threads=1, latency=LatencySettings(**FAST),
                  reference=SPACE.max_arch(), with_ops=True)
    fp = rec.fingerprint
    assert fp.runtime == runtime and fp.threads == 1
    assert fp.runtime_version == (onnxruntime.__version__ if runtime == "onnxruntime" else None)
    torch_fp = device_fingerprint("cpu", threads=1)
    assert fp.fingerprint_id != torch_fp.fingerprint_id and fp == device_fingerprint("cpu", threads=1, runtime=runtime)
    assert rec.latency.median_ms > 0 and rec.ref_latency.median_ms > rec.latency.median_ms  # the max arch is slower
    assert rec.peak_infer_mem_mb > rec.param_mb > 0 and rec.peak_train_mem_mb > 0
    if runtime == "onnxruntime":
        assert rec.ops == () and rec.kernels == ()  # torch.profiler does not see ONNX Runtime's calls
    else:
        assert rec.ops  # TorchScript's ops are torch ops


def test_a_reference_deployed_in_another_runtime_is_refused():
    ref = create_runtime("torch").deploy(_model(), input_shape=SPACE.input_shape, device=torch.device("cpu"),
                                         threads=1)
    with pytest.raises(ValueError, match="reference is deployed in torch, the measurement runs in onnxruntime"):
        profile(SPACE.min_arch(), runtime="onnxruntime", reference=ref)


def test_a_torch_fingerprint_keeps_the_id_it_had_before_runtimes_were_recorded():
    fp = DeviceFingerprint(kind="cpu", name="Test CPU", torch_version="x", cpu_cores=2, threads=2)
    before = {k: v for k, v in fp.__dict__.items() if k not in ("runtime", "runtime_version")}
    canonical = json.dumps(before, sort_keys=True, separators=(",", ":"))
    assert fp.fingerprint_id == hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert "runtime" not in fp.to_dict()
    ort_fp = DeviceFingerprint(kind="cpu", name="Test CPU", torch_version="x", cpu_cores=2, threads=2,
                               runtime="onnxruntime", runtime_version="1.0")
    assert ort_fp.to_dict()["runtime"] == "onnxruntime" and ort_fp.fingerprint_id != fp.fingerprint_id
    assert DeviceFingerprint.from_dict(ort_fp.to_dict()) == ort_fp and DeviceFingerprint.from_dict(fp.to_dict()) == fp
    assert "runtime: 'torch' != 'onnxruntime'" in "; ".join(fp.differences(ort_fp))
    assert "onnxruntime 1.0" in ort_fp.describe()


# ---- Target ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, target", [
    ("cpu:onnxruntime:1", Target("cpu", "onnxruntime", 1, 1)),
    ("cpu:torch:2:b8", Target("cpu", "torch", 2, 8)),
    ("cuda:torchscript", Target("cuda", "torchscript", None, 1)),
    ("cuda:1:onnxruntime:b4", Target("cuda:1", "onnxruntime", None, 4)),
])
def test_target_parses_and_labels_round_trip(text, target):
    assert Target.parse(text) == target
    assert Target.parse(target.label) == target
    assert Target.from_dict(target.to_dict()) == target
    assert target.runtime in target.describe()


@pytest.mark.parametrize("text, match", [
    ("cpu", r"target 'cpu' names no runtime \(torch, torchscript, onnxruntime\)"),
    ("cpu:tflite:1", r"target runtime must be one of torch, torchscript, onnxruntime, got 'tflite'"),
    ("gpu:torch", r"target device must be 'cpu' or 'cuda\[:N\]', got 'gpu'"),
    ("cpu:torch:x", r"target 'cpu:torch:x': cannot read 'x'; write DEVICE:RUNTIME\[:THREADS\]\[:bBATCH\]"),
    ("cpu:torch:0", r"target threads must be a positive integer or None, got 0"),
    ("cpu:torch:b0", r"target batch_size must be a positive integer, got 0"),
    ("", r"a target is written DEVICE:RUNTIME"),
])
def test_target_parse_names_what_is_wrong(text, match):
    with pytest.raises(ValueError, match=match):
        Target.parse(text)


def test_target_from_dict_refuses_unknown_fields():
    with pytest.raises(ValueError, match="target has unknown field 'precision'"):
        Target.from_dict({"device": "cpu", "runtime": "torch", "precision": "fp16"})
    with pytest.raises(ValueError, match="a target is a JSON object"):
        Target.from_dict(["cpu"])

"""The real torch.onnx.export files in tests/fixtures/exports/ and their loader (tests/real_exports.py).

These check the fixtures themselves (onnx + onnxruntime only, no torch): every file of the
manifest loads, its stripped tensors are refilled, onnx.checker passes, ONNX Runtime runs it,
its graph still has the op counts the manifest recorded, and it holds exactly the float
parameters torch counted once BatchNorm folding is accounted for.
"""

from __future__ import annotations

import math

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import real_exports
from onnx import TensorProto

FILES = [r["file"] for r in real_exports.manifest()]
CLASSES = {"hand-written CIFAR": 10, "kuangliu-style": 10, "timm": 1000,
           "insightface arcface_torch": 512}  # an IResNet's output is its 512-d embedding
# the opset each exporter setting wrote: TorchScript 17, insightface's torch2onnx.py 11, dynamo 18
OPSETS = {"torchscript": 17, "torchscript_nofold": 17, "torch2onnx": 11, "dynamo": 18}


def run(model: onnx.ModelProto, shape: list[int], seed: int = 0) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    (out,) = sess.run(None, {sess.get_inputs()[0].name: x})
    return out


@pytest.fixture(scope="module", params=FILES)
def export(request) -> tuple[str, onnx.ModelProto]:
    """(file, refilled model), loaded once per file: pytest groups the tests by this fixture."""
    return request.param, real_exports.load(request.param)


def test_manifest_names_exactly_the_committed_files():
    on_disk = sorted(p.name for p in real_exports.EXPORTS.glob("*.onnx"))
    assert on_disk == sorted(FILES)
    assert len(FILES) >= 20


def test_stripped_flag_and_refill(export):
    file, model = export
    rec = real_exports.record(file)
    raw = onnx.load(str(real_exports.path(file)))
    assert real_exports.is_stripped(raw) == rec["stripped"]
    big = [t for t in raw.graph.initializer
           if t.data_type == TensorProto.FLOAT and int(np.prod(t.dims)) > 64]
    assert big, "every export has float tensors above the stripping threshold"
    empty = [t.name for t in big if not t.raw_data and not t.float_data]
    if rec["stripped"]:
        assert len(empty) == len(big)
        assert all(t.raw_data or t.float_data for t in model.graph.initializer
                   if t.data_type == TensorProto.FLOAT and int(np.prod(t.dims)) > 0)
    else:
        assert empty == []
        assert model.SerializeToString() == raw.SerializeToString()


def test_checker_and_onnxruntime(export):
    file, model = export
    rec = real_exports.record(file)
    onnx.checker.check_model(model)
    assert model.graph.input[0].name == rec["input_name"]
    out = run(model, rec["input_shape"])
    assert out.shape == (rec["input_shape"][0], CLASSES[rec["source"]])
    assert np.isfinite(out).all()
    assert float(np.abs(out).max()) > 0


def test_op_counts_match_the_manifest(export):
    file, model = export
    assert dict(Counter(n.op_type for n in model.graph.node)) == real_exports.record(file)["op_counts"]
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == real_exports.record(file)["opset"] == OPSETS[file.split(".")[-2]]


def test_float_parameters_match_torch_after_bn_folding(export):
    """The file holds torch's parameter count less one C per BatchNorm folded away.

    torch counts a BatchNorm2d(C) as 2C parameters (scale and shift; running mean and variance
    are buffers). An exporter that folds it into the preceding bias-free convolution leaves one
    new C-element conv bias instead, so each folded BN removes C floats; a BN left in the graph
    keeps its 2C. Hence: floats in the file = parameters - (BN channels in the net - BN channels
    left in the graph). The TorchScript exporter folds with constant folding on (the default);
    its do_constant_folding=False file keeps every BN; the dynamo exporter's optimizer folds
    those that follow a convolution.
    """
    file, model = export
    rec = real_exports.record(file)
    folded = rec["bn_features"] - real_exports.bn_channels_in_graph(model)
    assert folded >= 0
    # IResNet's BatchNorm1d follows an fc that has a bias: folded into it (the dynamo
    # exporter's Gemm) it leaves no new tensor, so it removes both of its C-element vectors
    gemms = {n.output[0] for n in model.graph.node if n.op_type == "Gemm"}
    if rec["source"] == "insightface arcface_torch" and not any(
            n.op_type == "BatchNormalization" and n.input[0] in gemms for n in model.graph.node):
        folded += 512
    # ResNeSt's attention fc1 is a convolution with a bias and a BatchNorm after it: folded,
    # both of the BatchNorm's C-element vectors go (the fc1 reads the pooled branch)
    if rec["model"].startswith("timm_resnest"):
        producer = {out: n for n in model.graph.node for out in n.output}
        sizes = {t.name: list(t.dims) for t in model.graph.initializer}
        folded += sum(sizes[n.input[1]][0] for n in model.graph.node if n.op_type == "Conv"
                      and producer.get(n.input[0]) is not None
                      and producer[n.input[0]].op_type in ("ReduceMean", "GlobalAveragePool"))
    # timm's BlurPool filter is a buffer, not a parameter: the dynamo exporter stores it as
    # the initializer of the depthwise convolution after each reflect Pad (TorchScript as a
    # Constant node, which the count leaves out)
    buffers = blur_filters(model)
    assert real_exports.float_parameter_count(model) - buffers == rec["parameters"] - folded


def blur_filters(model: onnx.ModelProto) -> int:
    """Floats of the initializers that filter a reflect-padded map (timm's BlurPool)."""
    sizes = {t.name: math.prod(t.dims) for t in model.graph.initializer}
    pads = {n.output[0] for n in model.graph.node if n.op_type == "Pad" and any(
        a.name == "mode" and a.s == b"reflect" for a in n.attribute)}
    return sum(sizes[n.input[1]] for n in model.graph.node if n.op_type == "Conv"
               and n.input[0] in pads and n.input[1] in sizes)


# Parameter counts torch reported when make_exports.py built the nets (and the ones the brief
# of this fixture set gives for the CIFAR ResNets, which make_exports.py also asserts).
TORCH_COUNTS = {
    "cifar_resnet20": 269_722, "cifar_resnet32": 464_154, "cifar_resnet44": 658_586,
    "cifar_resnet56": 853_018, "cifar_resnet110": 1_727_962,
    "kuangliu_resnet18": 11_173_962, "kuangliu_resnet34": 21_282_122,
    "kuangliu_resnet50": 23_520_842, "kuangliu_resnet101": 42_512_970,
    "kuangliu_resnet152": 58_156_618,
}


@pytest.mark.parametrize("model", sorted(TORCH_COUNTS))
def test_manifest_counts_are_the_published_ones(model):
    recs = [r for r in real_exports.manifest() if r["model"] == model]
    assert recs and {r["parameters"] for r in recs} == {TORCH_COUNTS[model]}


def test_resnet20_exports_agree():
    """The unstripped ResNet-20 files carry the same trained-like weights: every exporter's
    file must compute the same logits (BN folded, unfolded, dynamo-optimised)."""
    files = ["cifar_resnet20.torchscript.onnx", "cifar_resnet20.torchscript_nofold.onnx",
             "cifar_resnet20.dynamo.onnx"]
    outs = [run(real_exports.load(f), [1, 3, 32, 32], seed=7) for f in files]
    for o in outs[1:]:
        assert np.abs(o - outs[0]).max() <= 1e-4 * max(1.0, float(np.abs(outs[0]).max()))


def test_untrained_export_ties_equal_bn_tensors():
    """A freshly initialised net (all BN scales 1, shifts 0) exported without folding: the
    exporter keeps one initializer per distinct tensor and Identity nodes for the rest."""
    model = real_exports.load("cifar_resnet20_untrained.torchscript_nofold.onnx")
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["BatchNormalization"] == 19 and ops["Identity"] > 0
    inits = {t.name for t in model.graph.initializer}
    aliased = [n for n in model.graph.node if n.op_type == "Identity" and n.input[0] in inits]
    assert len(aliased) == ops["Identity"]


def test_refill_is_deterministic_and_scaled():
    """Two loads give the same bytes; values follow the documented rules (BN scale in
    [0.5, 1.5], conv weights with He's standard deviation)."""
    file = "kuangliu_resnet18.dynamo.onnx"
    a, b = real_exports.load(file), real_exports.load(file)
    assert a.SerializeToString() == b.SerializeToString()
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in a.graph.initializer}
    w = weights["layer4.0.conv2.weight"]  # 512 x 512 x 3 x 3
    assert w.shape == (512, 512, 3, 3) and abs(w.std() / np.sqrt(2 / (512 * 9)) - 1) < 0.01
    raw = onnx.load(str(real_exports.path(file)))
    big = [t for t in raw.graph.initializer if t.data_type == TensorProto.FLOAT and int(np.prod(t.dims)) > 64]
    assert real_exports.refill(raw) == len(big) == 36  # 20 conv weights, 15 folded biases of > 64, fc weight


def test_load_rejects_unknown_file():
    with pytest.raises(FileNotFoundError, match="no export"):
        real_exports.load("nonexistent.onnx")

"""MXNet Gluon model-zoo ResNets as mx.onnx.export_model writes them (tests/fixtures/mxnet/):
netgen reads them, names the v1 nets, and converts them to Caffe files (as they are, and onto
netgen's own network with --like) that give ONNX Runtime's numbers on the source in OpenCV.
No MXNet needed: the fixtures are committed (stripped, refilled by mxnet_exports.load)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnx
import pytest
from mxnet_exports import NAMES, SIZE, load, save
from torchvision_exports import reference_forward, relative_error

from netgen.caffe.reader import read_prototxt

cv2 = pytest.importorskip("cv2")

TOLERANCE = 1e-4
# Gluon's v1 nets as netgen names them. Both: the 7x7/2 stem conv without bias, MaxPool2D(3, 2, 1)
# (pad 1, rounding down: torchvision's pool1), a projection only where the shape changes
# (option B), no Softmax. BottleneckV1 puts the stride on the first 1x1 (netgen's default) and
# gives both 1x1 convs a bias before their BatchNorm (a representation, which BatchNorm cancels);
# ResNet-50-B's default conv1 bias (the published caffemodel's) is what "noconv1bias" turns off.
V1_NAMES = {"resnet18_v1": f"resnet18-B-torchpool-input{SIZE}",
            "resnet50_v1": f"resnet50-B-noconv1bias-torchpool-input{SIZE}"}


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, SIZE, SIZE)).astype(np.float32)


def ort_logits(name: str, batch: np.ndarray) -> np.ndarray:
    """The source's fc output under ONNX Runtime, one image at a time (the export fixes batch 1)."""
    model = load(name)
    return np.concatenate([reference_forward(model, batch[i:i + 1]) for i in range(len(batch))])


def opencv_output(prototxt, caffemodel, batch: np.ndarray, layer: str) -> np.ndarray:
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    out = []
    for i in range(len(batch)):
        net.setInput(batch[i:i + 1])
        out.append(net.forward(layer).reshape(1, -1))
    return np.concatenate(out)


@pytest.mark.parametrize("name,convs,norms,inputs", [("resnet18_v1", 20, 20, 103),
                                                     ("resnet50_v1", 53, 53, 300),
                                                     ("resnet18_v2", 20, 19, 99)])
def test_fixtures_are_mxnet_exports(name, convs, norms, inputs):
    """Opset 19, every initializer also a graph input, BatchNormalization nodes (v2: one on the
    input, scale=False center=False), Flatten + Gemm for the Dense layer, logits out."""
    model = load(name)
    onnx.checker.check_model(model)  # once refilled: a stripped tensor has no value field
    ops = Counter(n.op_type for n in model.graph.node)
    assert model.opset_import[0].version == 19 and model.graph.name == "mxnet_converted_model"
    assert ops["Conv"] == convs and ops["BatchNormalization"] == norms
    assert ops["Gemm"] == 1 and ops["GlobalAveragePool"] == 1 and "Softmax" not in ops
    assert len(model.graph.input) == inputs == len(model.graph.initializer) + 1
    pool = next(n for n in model.graph.node if n.op_type == "MaxPool")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in pool.attribute}
    assert attrs["pads"] == [1, 1, 1, 1] and attrs["strides"] == [2, 2] and attrs["ceil_mode"] == 0
    if name == "resnet18_v2":
        assert model.graph.node[0].op_type == "BatchNormalization"
        assert model.graph.node[0].input[0] == "data"


@pytest.mark.parametrize("name", NAMES)
def test_mxnet_export_converts_to_caffe_with_the_files_numbers(tmp_path, run_cli, name):
    source = save(name, tmp_path / f"{name}.onnx")
    out = tmp_path / "caffe"
    result = run_cli("convert", source, "-o", out / "deploy.prototxt")
    assert result.code == 0, result.err
    graph = read_prototxt(out / "deploy.prototxt")
    fc = [layer.name for layer in graph.layers if layer.type == "InnerProduct"]
    assert len(fc) == 1 and graph.layers[-1].name == fc[0]
    x = images(2, seed=1)
    want = ort_logits(name, x)
    got = opencv_output(out / "deploy.prototxt", out / "model.caffemodel", x, fc[0])
    assert got.shape == want.shape == (2, 1000) and np.abs(want).max() > 0.5
    assert relative_error(got, want) <= TOLERANCE


@pytest.mark.parametrize("name", sorted(V1_NAMES))
def test_identify_names_gluons_v1_nets(tmp_path, run_cli, name):
    result = run_cli("identify", save(name, tmp_path / f"{name}.onnx"), "--json")
    assert result.code == 0, result.out + result.err
    report = json.loads(result.out)
    assert report["name"] == V1_NAMES[name] and report["equivalent"] is True
    assert report["findings"] == []


def test_resnet50_v1_is_not_the_other_bottleneck_variants(tmp_path, run_cli):
    """The stride on the first 1x1 and pad-1 pool1 are what make the name: the stride-on-3x3
    (torchvision, Gluon's v1b) and MSRA-pool1 variants are different networks."""
    source = save("resnet50_v1", tmp_path / "r50.onnx")
    result = run_cli("diff", source, V1_NAMES["resnet50_v1"])
    assert result.code == 0 and "verdict: EQUIVALENT" in result.out, result.out
    assert "conv bias directly before BatchNorm" in result.out
    for other in (f"resnet50-B-stride3x3-noconv1bias-torchpool-input{SIZE}",
                  f"resnet50-B-noconv1bias-input{SIZE}"):
        result = run_cli("diff", source, other)
        assert result.code == 1 and "verdict: DIFFERENT" in result.out, (other, result.out)


def test_resnet18_v2_is_not_netgens_preresnet18(tmp_path, run_cli):
    """Gluon's ResNetV2 normalises the image with a BatchNorm(scale=False, center=False) before
    conv1, and its first block pre-activates again (BN ReLU) after the stem's BN ReLU max pool;
    netgen's preresnet18 (fb.resnet.torch's) has neither: exit 1 with exactly those two."""
    result = run_cli("identify", save("resnet18_v2", tmp_path / "v2.onnx"), "--json")
    assert result.code == 1, result.out + result.err
    report = json.loads(result.out)
    assert report["name"] is None and report["closest"] == f"preresnet18-input{SIZE}"
    assert report["equivalent"] is False
    assert report["build"] == ["netgen", "build", "--depth", "18", "--preact", "--input-size", str(SIZE)]
    assert [f["kind"] for f in report["findings"]] == ["body", "stem"]
    assert report["findings"][0]["text"] == (
        "residual branch of the first block of stage 2 (A resnetv20_stage1__plus0; B res2a): "
        "A BN ReLU Conv ReLU Conv | B Conv ReLU Conv")
    assert report["findings"][1]["text"] == (
        "stem: A BN, 7x7 conv 64 /2, ReLU, 3x3 max pool /2 | B 7x7 conv 64 /2, ReLU, 3x3 max pool /2")


@pytest.mark.parametrize("name", sorted(V1_NAMES))
def test_mxnet_v1_weights_onto_netgens_network(tmp_path, run_cli, name):
    """convert --like: the file's weights (the 1x1 conv biases folded into the BatchNorm means)
    on netgen's own network, with the source's logits at netgen's fc1000 in OpenCV."""
    source = save(name, tmp_path / f"{name}.onnx")
    result = run_cli("convert", source, "--like", V1_NAMES[name], "-o", tmp_path / "like")
    assert result.code == 0, result.err
    x = images(2, seed=3)
    want = ort_logits(name, x)
    got = opencv_output(tmp_path / "like" / "deploy.prototxt", tmp_path / "like" / "model.caffemodel",
                        x, "fc1000")
    assert got.shape == want.shape == (2, 1000)
    assert relative_error(got, want) <= TOLERANCE

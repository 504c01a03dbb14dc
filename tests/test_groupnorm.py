"""GroupNorm (timm's resnet50_gn) and InstanceNorm in stock Caffe layers, exactly.

PyTorch exports nn.GroupNorm as Reshape (N, G, -1), InstanceNormalization, Reshape back,
Mul gamma, Add beta. Caffe's MVN divides by sqrt(var) + eps, not sqrt(var + eps), so
netgen uses MVN for the mean only: Reshape to N x G x L x 1, MVN (normalize_variance
false), Eltwise PROD of it with itself, global average Pooling (the variance), Power
(power -0.5, shift eps), Flatten + two-bottom Scale (axis 0), Reshape back, Scale with
bias. OpenCV on the Caffe files and ONNX Runtime on the ONNX written back agree with ONNX
Runtime on the source within 1e-4 relative.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
import real_exports
from onnx import TensorProto, helper, numpy_helper

from netgen.arch import ir
from netgen.caffe import proto as caffe_proto
from netgen.caffe.reader import read_prototxt
from netgen.errors import NetgenError
from netgen.jobs.convert import convert
from netgen.onnx.reader import import_model
from netgen.onnx.runtime import create_session

TOLERANCE = 1e-4
FILES = ["timm_resnet50_gn.torchscript.onnx", "timm_resnet50_gn.dynamo.onnx"]
STOCK = {"Convolution", "Pooling", "InnerProduct", "Scale", "Eltwise", "ReLU", "Power",
         "MVN", "Flatten", "Reshape", "Crop"}  # Crop: the stem pooling rounding down


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got.astype(np.float64) - want)) / np.max(np.abs(want)))


def opencv(deploy, x: np.ndarray, shape) -> np.ndarray:
    cv2 = pytest.importorskip("cv2")
    caffe = read_prototxt(deploy)
    last = next(l.name for l in reversed(caffe.layers) if caffe.outputs[0] in l.tops)
    reader = cv2.dnn.readNetFromCaffe(str(deploy), str(deploy.with_name("model.caffemodel")))
    reader.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    reader.enableWinograd(False)
    reader.setInput(x)
    return np.asarray(reader.forward(last)).reshape(shape)


def convert_and_compare(tmp_path, model: onnx.ModelProto, x: np.ndarray) -> tuple[float, float]:
    """(OpenCV on the Caffe files, ORT on the ONNX written back) against ORT on `model`."""
    source = tmp_path / "source.onnx"
    onnx.save(model, str(source))
    deploy = tmp_path / "caffe" / "deploy.prototxt"
    convert(source, None, deploy)
    net = caffe_proto.parse_net(deploy.read_text(), "deploy")
    assert {layer.type for layer in net.layer} <= STOCK | {"Input"}
    want = next(iter(create_session(model, "cpu").run(x).values()))
    got = opencv(deploy, x, want.shape)
    back = tmp_path / "back.onnx"
    convert(deploy, deploy.with_name("model.caffemodel"), back)
    again = next(iter(create_session(onnx.load(str(back)), "cpu").run(x).values()))
    return rel_err(got, want), rel_err(again.reshape(want.shape), want)


@pytest.mark.parametrize("file", [
    FILES[0], pytest.param(FILES[1], marks=pytest.mark.slow)])
def test_resnet50_gn_converts_exactly(tmp_path, file):
    model = real_exports.load(file)
    graph, _ = import_model(model)
    types = Counter(layer.type for layer in graph.layers)
    # 53 GroupNorms (stem, 3 per bottleneck x 16, 4 downsamples): one MVN, one Power each
    assert types["MVN"] == types["Power"] == types["Flatten"] == 53
    assert types["Reshape"] == 2 * 53 and types["Convolution"] == 53
    assert "BatchNorm" not in types
    powers = {(l.param.power, l.param.scale, l.param.shift) for l in graph.layers
              if l.type == "Power"}
    assert powers == {(-0.5, 1.0, 1e-5)}  # (var + eps) ** -0.5, GroupNorm's eps
    assert all(not l.param.normalize_variance for l in graph.layers if l.type == "MVN")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    by_opencv, by_onnx = convert_and_compare(tmp_path, model, x)
    print(file, by_opencv, by_onnx)
    assert by_opencv <= TOLERANCE and by_onnx <= TOLERANCE

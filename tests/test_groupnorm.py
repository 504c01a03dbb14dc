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

from caffe_roundtrip import TOLERANCE, caffe_and_back_errors, ort_output

from netgen.arch import ir
from netgen.errors import NetgenError
from netgen.onnx.reader import import_model

FILES = ["timm_resnet50_gn.torchscript.onnx", "timm_resnet50_gn.dynamo.onnx"]
# the Caffe layer types of resnet50_gn (Crop: the stem's max pooling rounds down)
STOCK = {"Convolution", "Pooling", "Crop", "InnerProduct", "Scale", "Eltwise", "ReLU",
         "Power", "MVN", "Flatten", "Reshape"}


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
    by_opencv, by_onnx, types = caffe_and_back_errors(tmp_path, model, x)
    assert types == STOCK
    print(file, by_opencv, by_onnx)
    assert by_opencv <= TOLERANCE and by_onnx <= TOLERANCE

"""Reflect (and edge, wrap) padding in stock Caffe layers, exactly.

BVLC Caffe has no reflect padding, but every row or column a reflect pad adds is a copy of
one of the input's: a Slice along W cuts the columns to copy out as pieces of their own, a
Concat puts [copies, the whole input, copies] together, then the same along H. timm's
resnetblur50 (BlurPool: a reflect pad of 1, then a fixed depthwise 3 x 3 convolution of
stride 2) converts within 1e-4 (OpenCV on the Caffe files, ORT on the ONNX written back);
what Slice and Concat cannot copy is refused in one line.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
import real_exports
from onnx import TensorProto, helper, numpy_helper
from caffe_roundtrip import TOLERANCE, caffe_and_back_errors, ort_output

from netgen.errors import NetgenError
from netgen.onnx.reader import import_model

FILES = ["timm_resnetblur50.torchscript.onnx", "timm_resnetblur50.dynamo.onnx"]


@pytest.mark.parametrize("file", [
    FILES[0], pytest.param(FILES[1], marks=pytest.mark.slow)])
def test_resnetblur50_converts_exactly(tmp_path, file):
    model = real_exports.load(file)
    graph, _ = import_model(model)
    types = Counter(layer.type for layer in graph.layers)
    # 4 blur pools (stem, first block of stages 2-4): a Slice and a Concat on W, then on H
    assert types["Slice"] == types["Concat"] == 8
    blurs = [l for l in graph.layers if l.type == "Convolution" and l.param.group > 1]
    assert [(l.param.group, l.param.kernel, l.param.stride, l.param.pad) for l in blurs] == [
        (c, (3, 3), (2, 2), (0, 0)) for c in (64, 128, 256, 512)]
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    by_opencv, by_onnx, types = caffe_and_back_errors(tmp_path, model, x)
    assert types == {"Convolution", "ReLU", "Pooling", "Slice", "Concat",
                     "Eltwise", "InnerProduct"}
    print(file, by_opencv, by_onnx)
    assert by_opencv <= TOLERANCE and by_onnx <= TOLERANCE

"""Option A's shortcut, as stock Caffe layers, is exactly x[:, :, ::2, ::2] plus zero channels.

Checked by running netgen's layers in OpenCV's independent Caffe importer against numpy.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from netgen.arch import ir
from netgen.arch.builder import build
from netgen.arch.shapes import conv_out, infer, pool_out
from netgen.arch.spec import make_spec
from netgen.arch.weights import initial_weights
from netgen.caffe import prototxt
from netgen.caffe.caffemodel import write_caffemodel

cv2 = pytest.importorskip("cv2")


def _shortcut_only(spec, block: str, input_shape) -> ir.Graph:
    """The shortcut layers of `block`, fed from a net input of the given shape."""
    graph = build(spec)
    layers = [replace(l, top_shapes=(), blob_shapes=()) for l in graph.layers
              if l.name.startswith(f"res{block}_branch1")]
    source = layers[0].bottoms[0]
    return infer("shortcut", [ir.Blob(source, tuple(input_shape))], layers)


def _run_caffe(graph: ir.Graph, x: np.ndarray, tmp_path) -> np.ndarray:
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(prototxt.render_deploy(graph))
    write_caffemodel(tmp_path / "model.caffemodel", graph, initial_weights(graph))
    net = cv2.dnn.readNetFromCaffe(str(deploy), str(tmp_path / "model.caffemodel"))
    net.setInput(x, graph.inputs[0].name)
    return net.forward(graph.layers[-1].tops[0])


@pytest.mark.parametrize("size", [32, 33, 7])
def test_subsample_and_zero_pad_equal_numpy(size, tmp_path):
    graph = _shortcut_only(make_spec("cifar10", 20), "3a", (2, 16, size, size))
    x = np.random.default_rng(size).standard_normal((2, 16, size, size)).astype(np.float32)
    expected = np.concatenate([x[:, :, ::2, ::2], np.zeros_like(x[:, :, ::2, ::2])], axis=1)
    assert graph.layers[-1].top_shapes[0] == expected.shape
    got = _run_caffe(graph, x, tmp_path)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_bottleneck_zero_pad_without_subsample(tmp_path):
    graph = _shortcut_only(make_spec("imagenet", 50, "A"), "2a", (1, 64, 9, 9))
    x = np.random.default_rng(1).standard_normal((1, 64, 9, 9)).astype(np.float32)
    expected = np.concatenate([x, np.zeros((1, 192, 9, 9), np.float32)], axis=1)
    np.testing.assert_array_equal(_run_caffe(graph, x, tmp_path), expected)


def test_pooling_would_round_up_where_convolution_does_not():
    # Why option A is a convolution: Caffe's pooling (kernel 1, stride 2) gives 17 on 32.
    assert pool_out(32, 1, 2, 0) == 17
    assert conv_out(32, 1, 2, 0) == 16 == len(range(0, 32, 2))
    assert conv_out(33, 1, 2, 0) == 17 == len(range(0, 33, 2))


def test_caffe_pooling_rounding_rules():
    assert pool_out(112, 3, 2, 0) == 56          # ResNet pool1: ceil
    assert conv_out(224, 7, 2, 3) == 112          # conv1: floor
    assert pool_out(5, 2, 2, 1) == 3              # last window would start in the padding
    assert pool_out(6, 3, 2, 0) == 3

"""Keras 3 exports (issue 18): channels-last ResNet50 / ResNet50V2 files as Keras writes them
(tests/fixtures/keras/) -> Caffe files that run in OpenCV, and ONNX back, with the file's
numbers on the same image channels-first; and the netgen names Keras's networks are."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from keras_exports import SIZE, keras_resnet, load
from onnx import helper, numpy_helper
from torchvision_exports import reference_forward, relative_error

from netgen.caffe.reader import read_prototxt
from netgen.onnx.normalize import normalize as normalized
from netgen.onnx.normalize.layout import input_layout
from netgen.onnx.reader import import_model

cv2 = pytest.importorskip("cv2")

TOLERANCE = 1e-4


def with_logits(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with the Softmax's input as its only output: random weights saturate the
    softmax (1.0 and 0.0), the logits before it are what a comparison can see."""
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(softmax.input[0], onnx.TensorProto.FLOAT, None))
    return model


def nhwc_batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, SIZE, SIZE, 3)).astype(np.float32)


def test_fixtures_have_the_shape_of_keras_torch_backend_exports():
    model = load("ResNet50")
    ops = Counter(n.op_type for n in model.graph.node)
    assert model.opset_import[0].version == 20
    assert [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] \
        == ["batch", SIZE, SIZE, 3]
    assert ops["Conv"] == 53 and ops["Transpose"] >= 2 * 53 and ops["Cast"] > 250
    assert ops["Sub"] == 53 and ops["Identity"] > 100 and ops["Pad"] == 2
    assert ops["ReduceMean"] == 1 and ops["MatMul"] == 1 and ops["Softmax"] == 1
    assert "BatchNormalization" not in ops
    mean = next(n for n in model.graph.node if n.op_type == "ReduceMean")
    assert helper.get_attribute_value(mean.attribute[0]) == 0  # keepdims=0
    v2 = Counter(n.op_type for n in load("ResNet50V2").graph.node)
    assert v2["Pad"] == 2 + 16 and v2["MaxPool"] == 4 and v2["Sub"] == 49


@pytest.mark.parametrize("name,convs,norms", [("ResNet50", 53, 53), ("ResNet50V2", 54, 49)])
def test_normalized_graph_is_channels_first_with_batchnorms(name, convs, norms):
    model = load(name)
    out = normalized(model)
    ops = Counter(n.op_type for n in out.graph.node)
    assert not {"Transpose", "Cast", "Pad", "Sub", "Identity", "Constant"} & set(ops)
    assert ops["Conv"] == convs and ops["BatchNormalization"] == norms
    assert input_layout(out) == "NHWC" and input_layout(model) == "NCHW"  # the caller's untouched
    dims = [d.dim_param or d.dim_value for d in out.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, SIZE, SIZE]
    x = nhwc_batch(2)
    want = reference_forward(with_logits(load(name)), x)
    got = reference_forward(with_logits(out), np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    assert relative_error(got, want) <= 1e-5


def opencv_logits(prototxt, caffemodel, batch: np.ndarray, layer: str) -> np.ndarray:
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    out = []
    for i in range(len(batch)):  # the deploy declares batch 1
        net.setInput(batch[i:i + 1])
        out.append(net.forward(layer).reshape(1, -1))
    return np.concatenate(out)


def converted_to_caffe(tmp_path, run_cli, name: str, x: np.ndarray) -> tuple[np.ndarray, Path, str]:
    """`netgen convert` of the fixture, then OpenCV on the same batch channels-first: the
    logits (the fc's output), the Caffe folder and convert's report."""
    onnx.save(load(name), tmp_path / "keras.onnx")
    out = tmp_path / "caffe"
    result = run_cli("convert", tmp_path / "keras.onnx", "-o", out / "deploy.prototxt")
    assert result.code == 0, result.err
    graph = read_prototxt(out / "deploy.prototxt")
    fc = next(layer.name for layer in graph.layers if layer.type == "InnerProduct")
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    return opencv_logits(out / "deploy.prototxt", out / "model.caffemodel", nchw, fc), out, \
        result.out


@pytest.mark.parametrize("name", ["ResNet50", "ResNet50V2", "ResNet50-tf", "ResNet50V2-tf"])
def test_keras_export_converts_to_caffe_with_the_files_numbers(tmp_path, run_cli, name):
    x = nhwc_batch(2, seed=1)
    got, out, report = converted_to_caffe(tmp_path, run_cli, name, x)
    assert "channels-last (NHWC)" in report and f"[1, 3, {SIZE}, {SIZE}]" in report
    fc = next(layer.name for layer in read_prototxt(out / "deploy.prototxt").layers
              if layer.type == "InnerProduct")
    want = reference_forward(with_logits(load(name)), x)
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    assert got.shape == want.shape == (2, 1000) and np.abs(want).max() > 1.0
    assert relative_error(got, want) <= TOLERANCE
    # and back: the Caffe files to ONNX, under ONNX Runtime
    result = run_cli("convert", out / "deploy.prototxt", out / "model.caffemodel",
                     "-o", tmp_path / "back.onnx")
    assert result.code == 0, result.err
    back = onnx.load(tmp_path / "back.onnx")
    producer = {o: n for n in back.graph.node for o in n.output}
    fc_out = next(o for o, n in producer.items() if n.op_type in ("Gemm", "MatMul", "Add")
                  and n.name.startswith(fc))
    del back.graph.output[:]
    back.graph.output.append(helper.make_tensor_value_info(fc_out, onnx.TensorProto.FLOAT, None))
    assert relative_error(reference_forward(back, nchw), want) <= TOLERANCE


def test_resnet50_caffe_layers_are_msras_counts(tmp_path, run_cli):
    onnx.save(load("ResNet50"), tmp_path / "keras.onnx")
    assert run_cli("convert", tmp_path / "keras.onnx", "-o", tmp_path / "deploy.prototxt").code == 0
    types = Counter(layer.type for layer in read_prototxt(tmp_path / "deploy.prototxt").layers)
    assert types == {"Convolution": 53, "BatchNorm": 53, "Scale": 53, "ReLU": 49, "Pooling": 2,
                     "Eltwise": 16, "InnerProduct": 1, "Softmax": 1}


def test_keras_resnet50_is_netgens_resnet50_with_torchvisions_pool1(tmp_path, run_cli):
    """Stride on the first 1x1 (v1), ZeroPadding2D(1) + valid 3x3/2 max pool after the ReLU
    (torchvision's pool1), conv biases before BatchNorm (representation)."""
    onnx.save(load("ResNet50"), tmp_path / "keras.onnx")
    result = run_cli("diff", tmp_path / "keras.onnx", f"resnet50-B-torchpool-input{SIZE}")
    assert result.code == 0 and "verdict: EQUIVALENT" in result.out, result.out
    assert "conv bias directly before BatchNorm" in result.out
    assert "input layout: A's file takes channels-last (NHWC) images" in result.out
    result = run_cli("diff", tmp_path / "keras.onnx", f"resnet50-B-input{SIZE}")
    assert result.code == 1 and "pool1" in result.out
    result = run_cli("diff", tmp_path / "keras.onnx", f"resnet50-B-stride3x3-torchpool-input{SIZE}")
    assert result.code == 1


def test_keras_resnet50v2_differs_from_preresnet50(tmp_path, run_cli):
    """Keras's V2 downsamples in the last block of a stage (a 1x1 max-pool shortcut), has a
    conv1 bias and no stem BN: not netgen's preresnet50 (fb.resnet.torch's)."""
    onnx.save(load("ResNet50V2"), tmp_path / "keras.onnx")
    result = run_cli("diff", tmp_path / "keras.onnx", f"preresnet50-input{SIZE}")
    assert result.code == 1 and "verdict: DIFFERENT" in result.out
    # the same blocks per stage (the stage that subsamples in its last block is cut there),
    # and what differs, one line each
    assert "architecture: 16 bottleneck blocks 3-4-6-3, depth 50 (both)" in result.out
    # pool1's ZeroPadding2D (on the signed conv1 output, so not the pool's own padding) is a
    # fixed depthwise 1x1 in Caffe: no parameters, not a layer of the depth; what is left is
    # the count Keras's model.summary() gives as trainable params
    assert "parameters: A 25,568,360  B 25,549,352" in result.out
    findings = [line[4:] for line in result.out.splitlines() if line.startswith("  - ")]
    findings = findings[:findings.index(next(f for f in findings if f.startswith("BatchNorm")))]
    assert len(findings) == 6, findings
    assert findings[0] == "second 1x1 convolution of all 16 blocks: shift A True | B False"
    assert findings[2].startswith("conv strides of blocks") and \
        findings[2].endswith(": A [1, 2, 1] | B [1, 1, 1]")
    assert findings[3].endswith("A subsample | B identity")
    assert "A subsample (1x1 max pool, stride 2) | B identity" in result.out
    assert findings[4].startswith("conv strides of the first block of stages 3 to 5")
    assert findings[5].startswith("stem: A 7x7 conv 64 /2, zero pad 1, 3x3 max pool /2")


def test_helper_built_keras_resnet_has_the_fixtures_nodes():
    """keras_resnet (the bench's ResNet-152 without keras) writes the export's node pattern:
    the same op counts as the real ResNet50 export but for the Identity nodes on shared
    constants, and the same network after normalisation."""
    real = Counter(n.op_type for n in load("ResNet50").graph.node)
    built = keras_resnet(50, SIZE)
    assert Counter(n.op_type for n in built.graph.node) == real - Counter({"Identity": real["Identity"]})
    x = nhwc_batch(2, seed=2)
    out = normalized(built)
    assert Counter(n.op_type for n in out.graph.node) == Counter(
        n.op_type for n in normalized(load("ResNet50")).graph.node)
    got = reference_forward(with_logits(out), np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    assert relative_error(got, reference_forward(with_logits(keras_resnet(50, SIZE)), x)) <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("depth,layers", [(101, 449), (152, 670)])
def test_helper_built_deeper_keras_resnets_have_msras_layer_counts(depth, layers):
    graph, _ = import_model(keras_resnet(depth, 32, classes=10))
    assert len(graph.layers) == layers


@pytest.mark.parametrize("file", ["ResNet50", "ResNet50-tf"])
def test_keras_resnet50_weights_onto_netgens_network(tmp_path, run_cli, file):
    """convert --like: the file's weights (conv biases folded into the BatchNorm means; from
    tf2onnx, conv bias and Scale unfolded into identity statistics and Scale) on netgen's
    own resnet50-B-torchpool, with the file's numbers in OpenCV."""
    onnx.save(load(file), tmp_path / "keras.onnx")
    name = f"resnet50-B-torchpool-input{SIZE}"
    result = run_cli("convert", tmp_path / "keras.onnx", "--like", name, "-o", tmp_path / "like")
    assert result.code == 0, result.err
    assert "the file's input is channels-last (NHWC)" in result.out
    x = nhwc_batch(1, seed=3)
    want = reference_forward(with_logits(load(file)), x)
    got = opencv_logits(tmp_path / "like" / "deploy.prototxt", tmp_path / "like" / "model.caffemodel",
                        np.ascontiguousarray(x.transpose(0, 3, 1, 2)), "fc1000")
    assert relative_error(got, want) <= TOLERANCE


def test_keras_conversion_is_byte_identical_across_runs(tmp_path, run_cli):
    onnx.save(load("ResNet50V2"), tmp_path / "keras.onnx")
    written = []
    for run in ("a", "b"):
        assert run_cli("convert", tmp_path / "keras.onnx", "-o", tmp_path / run / "deploy.prototxt").code == 0
        written.append([(tmp_path / run / f).read_bytes() for f in ("deploy.prototxt", "model.caffemodel")])
    assert written[0] == written[1]


def test_identify_names_keras_resnet50_a_torchpool_resnet50(tmp_path, run_cli):
    onnx.save(load("ResNet50"), tmp_path / "keras.onnx")
    result = run_cli("identify", tmp_path / "keras.onnx")
    first = result.out.splitlines()[0]
    assert result.code == 0 and "resnet50-B-" in first and first.endswith(f"torchpool-input{SIZE}")


@pytest.mark.parametrize("name, trainable", [("ResNet50", 25_583_592),
                                             ("ResNet50V2", 25_568_360)])
def test_summary_counts_what_keras_calls_trainable(tmp_path, run_cli, name, trainable):
    """model.summary()'s 'Trainable params' of keras.applications (BatchNorm's moving mean
    and variance are its non-trainable ones, statistics here too); V2's zero padding before
    pool1 is a fixed layer and counts nothing."""
    onnx.save(load(name), tmp_path / "keras.onnx")
    result = run_cli("summary", tmp_path / "keras.onnx", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["parameters"] == trainable


# --------------------------------------------------------------------------- Flatten + Dense


@pytest.mark.parametrize("name", ["ResNet50-flatten", "ResNet50-flatten-tf"])
def test_flatten_dense_head_converts_with_the_files_numbers(tmp_path, run_cli, name):
    """Keras's transfer-learning head: Flatten() of the channels-last 2x2x2048 map, then
    Dense(10). The file's features are in (h, w, c) order; Caffe's InnerProduct flattens
    (c, h, w): the fc's weight columns must be reordered, or the logits are others."""
    ops = Counter(n.op_type for n in load(name).graph.node)
    # Flatten as the exporters write it: a Reshape to (Shape(x)[0], -1)
    assert ops["Shape"] == 1 and ops["Reshape"] >= 1 and ops["MatMul"] == 1 and ops["Conv"] == 53
    assert not {"ReduceMean", "GlobalAveragePool", "Softmax"} & set(ops)
    x = nhwc_batch(2, seed=3)
    got, out, _ = converted_to_caffe(tmp_path, run_cli, name, x)
    want = reference_forward(load(name), x)
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    assert got.shape == want.shape == (2, 10) and np.abs(want).max() > 0.1
    assert relative_error(got, want) <= TOLERANCE
    result = run_cli("convert", out / "deploy.prototxt", out / "model.caffemodel",
                     "-o", tmp_path / "back.onnx")
    assert result.code == 0, result.err
    assert relative_error(reference_forward(onnx.load(tmp_path / "back.onnx"), nchw),
                          want) <= TOLERANCE


def test_flatten_dense_weight_is_the_files_in_channels_first_order():
    """The fc weight, element by element: netgen's column c*H*W + h*W + w is the file's row
    (h*W + w)*C + c (computed here with explicit indices, not with the pass's transposes)."""
    model = load("ResNet50-flatten")
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul")
    file_weight = next(numpy_helper.to_array(t) for t in model.graph.initializer
                       if t.name == matmul.input[1])
    graph, weights = import_model(model)
    fc = next(layer for layer in graph.layers if layer.type == "InnerProduct")
    mine = weights[fc.name][0]
    channels, height, width = 2048, SIZE // 32, SIZE // 32
    assert mine.shape == (10, channels * height * width)
    rng = np.random.default_rng(0)
    for c, h, w in zip(rng.integers(0, channels, 50), rng.integers(0, height, 50),
                       rng.integers(0, width, 50)):
        column = (c * height + h) * width + w
        row = (h * width + w) * channels + c
        np.testing.assert_array_equal(mine[:, column], file_weight[row, :])


def _channels_last_flatten(reader: str) -> onnx.ModelProto:
    """NHWC input -> Transpose -> Conv -> Transpose back -> Reshape(N, -1) -> READER -> MatMul."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([0, -1], np.int64), "shape"),
             numpy_helper.from_array(rng.standard_normal((4 * 8 * 8, 5)).astype(np.float32), "fc"),
             numpy_helper.from_array(np.float32(2.0), "two")]
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["t", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["c"], ["back"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["back", "shape"], ["flat"])]
    if reader == "Mul":
        nodes += [helper.make_node("Mul", ["flat", "two"], ["scaled"], name="/scale"),
                  helper.make_node("MatMul", ["scaled", "fc"], ["y"])]
    else:
        nodes += [helper.make_node("Relu", ["flat"], ["r"]),
                  helper.make_node("MatMul", ["r", "fc"], ["y"])]
    graph = helper.make_graph(
        nodes, "flat", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8, 8, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 5])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_an_elementwise_op_on_the_flat_features_carries_their_order():
    model = _channels_last_flatten("Relu")
    x = np.random.default_rng(1).standard_normal((1, 8, 8, 3)).astype(np.float32)
    want = reference_forward(model, x)
    got = reference_forward(normalized(model), np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    assert relative_error(got, want) <= 1e-6


def test_other_readers_of_the_flat_features_are_refused(tmp_path, run_cli):
    onnx.save(_channels_last_flatten("Mul"), tmp_path / "m.onnx")
    result = run_cli("convert", tmp_path / "m.onnx", "-o", tmp_path / "out" / "deploy.prototxt")
    assert result.code == 2 and result.out == ""
    assert result.err.strip() == (
        "error: node 'Transpose_back' (Transpose): a channels-last map flattened for a fully "
        "connected layer reaches node '/scale' (Mul); only a MatMul or Gemm with a constant "
        "weight can take its (H, W, C) feature order")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- tf2onnx's BatchNorm


def test_tf2onnx_batchnorm_is_one_scale_with_bias(tmp_path, run_cli):
    """tf2onnx writes a BatchNormalization after a biased Conv2D as Mul + Add of (1, C, 1, 1)
    constants: one Scale with bias_term in Caffe (OpenCV has no Bias layer), 53 of them."""
    ops = Counter(n.op_type for n in load("ResNet50-tf").graph.node)
    assert ops["Mul"] == 53 and ops["Add"] == 53 + 16 + 1 and "BatchNormalization" not in ops
    onnx.save(load("ResNet50-tf"), tmp_path / "keras.onnx")
    assert run_cli("convert", tmp_path / "keras.onnx", "-o", tmp_path / "deploy.prototxt").code == 0
    layers = read_prototxt(tmp_path / "deploy.prototxt").layers
    types = Counter(layer.type for layer in layers)
    assert "Bias" not in types and types["Scale"] == 53 and types["Convolution"] == 53
    assert all(layer.param.bias_term for layer in layers if layer.type == "Scale")


def test_both_backends_export_the_same_network(tmp_path, run_cli):
    """The same keras.applications model from the torch backend (Sub/Mul/Add BatchNorms) and
    from TensorFlow's (tf2onnx: Mul + Add, pre-activation ones standing alone): diff finds
    them EQUIVALENT; ResNet50's file still counts what Keras calls trainable (tf2onnx kept
    each conv bias and each BatchNorm's two vectors)."""
    for name in ("ResNet50", "ResNet50V2"):
        onnx.save(load(name), tmp_path / "torch.onnx")
        onnx.save(load(f"{name}-tf"), tmp_path / "tf.onnx")
        result = run_cli("diff", tmp_path / "tf.onnx", tmp_path / "torch.onnx")
        assert result.code == 0 and "verdict: EQUIVALENT" in result.out, result.out
    result = run_cli("diff", tmp_path / "tf.onnx", tmp_path / "torch.onnx", "--strict")
    assert result.code == 1  # layer by layer, a Scale is not a BatchNorm
    onnx.save(load("ResNet50-tf"), tmp_path / "tf.onnx")
    info = json.loads(run_cli("summary", tmp_path / "tf.onnx", "--json").out)
    assert info["parameters"] == 25_583_592
    result = run_cli("diff", tmp_path / "tf.onnx", f"resnet50-B-torchpool-input{SIZE}")
    assert result.code == 0 and "verdict: EQUIVALENT" in result.out, result.out

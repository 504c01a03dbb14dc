"""ONNX -> IR: netgen's own exports, a PyTorch-style export, op mappings and refusals."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from torch_style import torch_resnet

from netgen.arch import ir
from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.spec import make_spec
from netgen.arch.weights import initial_weights
from netgen.caffe.reader import read_caffe
from netgen.errors import NetgenError
from netgen.onnx.export import to_onnx
from netgen.onnx.reader import import_model, read_onnx
from netgen.onnx.runtime import create_session, random_batch


def run(model: onnx.ModelProto, batch: np.ndarray) -> list[np.ndarray]:
    return create_session(model, device="cpu").run_list(batch)


@pytest.mark.parametrize("kwargs", [
    dict(dataset="imagenet", depth=50),
    dict(dataset="imagenet", depth=18, shortcut="A"),
    dict(dataset="imagenet", depth=34, shortcut="C"),
    dict(dataset="imagenet", depth=18, plain=True),
    dict(dataset="cifar10", depth=20),
])
def test_netgen_onnx_imports_back_to_the_same_ir_and_weights(kwargs):
    built = build(make_spec(**kwargs))
    weights = initial_weights(built, 5)
    graph, read = import_model(to_onnx(built, weights))
    assert graph == built  # names, BN + Scale split back, option A's Slice/Where/Concat, fixed
    assert read.keys() == weights.keys()
    for name, blobs in weights.items():
        assert all(np.array_equal(a, b) for a, b in zip(read[name], blobs)), name


def test_pytorch_style_resnet18_maps_onto_caffe_layers():
    model = torch_resnet(18)
    graph, weights = import_model(model)
    counts = count(graph)
    assert counts.layer_types == {"BatchNorm": 20, "Convolution": 20, "Eltwise": 8,
                                  "InnerProduct": 1, "Pooling": 2, "ReLU": 17, "Scale": 20}
    assert counts.params == 11_689_512 and counts.macs == 1_814_073_344
    assert [s.stage for s in counts.stages] == ["conv1", "conv2_x", "conv3_x", "conv4_x",
                                                "conv5_x", "head"]
    first = graph.layers[:4]
    assert [(layer.name, layer.type) for layer in first] == [
        ("/conv1/Conv", "Convolution"), ("/bn1/BatchNormalization", "BatchNorm"),
        ("/bn1/BatchNormalization_scale", "Scale"), ("/relu/Relu", "ReLU")]
    assert all(layer.in_place for layer in first[1:])  # Caffe style: BN, Scale, ReLU in place
    assert weights["/bn1/BatchNormalization"][2].tolist() == [1.0]  # moving-average factor
    fc = graph.layer("/fc/Gemm")  # Flatten + Gemm is one InnerProduct, no Flatten layer
    assert fc.bottoms == ("/avgpool/GlobalAveragePool_output_0",) and fc.blob_shapes == ((1000, 512), (1000,))
    assert graph.outputs == ("output",)
    batch = random_batch((2, 3, 224, 224), 1)
    want = run(model, batch)[0]
    got = run(to_onnx(graph, weights), batch)[0]
    assert np.max(np.abs(got - want)) < 1e-4 * max(1.0, np.max(np.abs(want)))


def test_round_trip_onnx_to_caffe_files_and_back_is_numerically_equal(tmp_path):
    from netgen.caffe.caffemodel import write_caffemodel
    from netgen.caffe.prototxt import render_deploy

    built = build(make_spec("cifar10", 20))
    weights = initial_weights(built, 2)
    original = to_onnx(built, weights)
    onnx.save(original, tmp_path / "model.onnx")
    graph, read = read_onnx(tmp_path / "model.onnx")
    (tmp_path / "deploy.prototxt").write_text(render_deploy(graph))
    write_caffemodel(tmp_path / "model.caffemodel", graph, read)
    again, again_weights = read_caffe(tmp_path / "deploy.prototxt", tmp_path / "model.caffemodel")
    assert again == built
    batch = random_batch((4, 3, 32, 32), 0)
    for want, got in zip(run(original, batch), run(to_onnx(again, again_weights), batch)):
        assert np.array_equal(want, got)


# ----------------------------------------------------------------------------- single ops


def _model(nodes, inits, in_shape, out_name="y", opset=17, extra_inputs=()):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape), *extra_inputs],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(v, dtype=v.dtype if hasattr(v, "dtype") else np.float32), k)
         for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def test_mixed_ops_map_and_compute_the_same():
    rng = np.random.default_rng(0)
    f = np.float32
    inits = {
        "w": rng.standard_normal((8, 3, 3, 3)).astype(f), "b": rng.standard_normal(8).astype(f),
        "slope": rng.random((8, 1, 1)).astype(f), "mul": rng.random((1, 8, 1, 1)).astype(f),
        "sub": rng.random((8, 1, 1)).astype(f), "two": np.array(2.0, f),
        "shift": rng.random((1, 8, 1, 1)).astype(f),
        "dw": np.ones((8, 1, 1, 1), f),
        "pads": np.array([0, 0, 0, 0, 0, 8, 0, 0], np.int64),
        "starts": np.array([0, 0], np.int64), "ends": np.array([1 << 40, 1 << 40], np.int64),
        "axes": np.array([2, 3], np.int64), "steps": np.array([2, 2], np.int64),
        "shape": np.array([0, -1], np.int64),
        "mm": rng.standard_normal((256, 6)).astype(f), "mb": rng.standard_normal(6).astype(f),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["c", "slope"], ["p"], name="prelu"),
        helper.make_node("Mul", ["p", "mul"], ["m"], name="mul"),
        helper.make_node("Add", ["m", "shift"], ["a"], name="shift"),
        helper.make_node("Div", ["a", "two"], ["d"], name="half"),
        helper.make_node("LeakyRelu", ["d"], ["l"], name="leaky", alpha=0.2),
        helper.make_node("Sub", ["l", "sub"], ["s"], name="sub"),
        helper.make_node("Identity", ["s"], ["i"], name="identity"),
        helper.make_node("Dropout", ["i"], ["o"], name="drop"),
        helper.make_node("Slice", ["o", "starts", "ends", "axes", "steps"], ["sl"], name="sub2"),
        helper.make_node("Pad", ["sl", "pads"], ["pad"], name="widen", mode="constant"),
        helper.make_node("MaxPool", ["pad"], ["mp"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Reshape", ["mp", "shape"], ["r"], name="reshape"),
        helper.make_node("MatMul", ["r", "mm"], ["mmo"], name="fc/MatMul"),
        helper.make_node("Add", ["mmo", "mb"], ["fco"], name="fc/Add"),
        helper.make_node("Softmax", ["fco"], ["y"], name="softmax", axis=1),
    ]
    model = _model(nodes, inits, ["N", 3, 16, 16])
    graph, weights = import_model(model)
    types = [(layer.name, layer.type) for layer in graph.layers]
    # X * c + d is one Scale with bias (OpenCV has no Bias layer); X - c after a ReLU a Bias
    assert types == [("conv", "Convolution"), ("prelu", "PReLU"), ("mul", "Scale"),
                     ("half", "Power"), ("leaky", "ReLU"), ("sub", "Bias"),
                     ("sub2", "Convolution"), ("widen_zeros", "Power"), ("widen", "Concat"),
                     ("pool", "Pooling"), ("fc/MatMul", "InnerProduct"), ("softmax", "Softmax")]
    assert graph.layer("half").param == ir.PowerParam(scale=0.5)
    assert graph.layer("leaky").param.negative_slope == pytest.approx(0.2)
    assert graph.layer("sub2").fixed and graph.layer("sub2").param.group == 8
    assert graph.layer("widen").bottoms == ("sl", "widen_zeros")
    assert graph.layer("widen").top_shapes == ((1, 16, 8, 8),)
    fc = graph.layer("fc/MatMul")  # Reshape [0, -1] + MatMul + Add: one InnerProduct
    assert fc.param == ir.InnerProductParam(6, bias_term=True, axis=1)
    assert fc.bottoms == ("mp",) and fc.tops == ("fco",)
    assert np.array_equal(weights["fc/MatMul"][0], inits["mm"].T)
    assert np.array_equal(weights["sub"][0], -inits["sub"].reshape(8))
    scale = graph.layer("mul")
    assert scale.param.bias_term and scale.tops == ("a",)  # the PReLU before it in place
    assert [w.tolist() for w in weights["mul"]] == [inits["mul"].reshape(8).tolist(),
                                                   inits["shift"].reshape(8).tolist()]
    batch = random_batch((3, 3, 16, 16), 4)
    want = run(model, batch)[0]
    got = run(to_onnx(graph, weights), batch)
    assert np.max(np.abs(got[-1] - want)) < 1e-5


def test_asymmetric_pads_are_accepted_only_where_caffe_gives_the_same_windows():
    w = np.ones((2, 3, 7, 7), np.float32)
    ok = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="stem", kernel_shape=[7, 7],
                                  strides=[2, 2], pads=[3, 3, 2, 2])], {"w": w}, [1, 3, 224, 224])
    graph, _ = import_model(ok)
    assert graph.layer("stem").param.pad == (3, 3) and graph.layer("stem").top_shapes == ((1, 2, 112, 112),)
    bad = _model([helper.make_node("Conv", ["x", "w"], ["y"], name="stem", kernel_shape=[7, 7],
                                   strides=[1, 1], pads=[3, 3, 2, 2])], {"w": w}, [1, 3, 224, 224])
    with pytest.raises(NetgenError, match=r"node 'stem' \(Conv\): asymmetric pads \[3, 3, 2, 2\]"):
        import_model(bad)


def test_torchvision_maxpool_rounding_imports_as_floor_pooling():
    graph, _ = import_model(torch_resnet(18, maxpool=(3, 2, 1, 0), stages=(1, 1, 1, 1)))
    pool = graph.layer("/maxpool/MaxPool")
    assert pool.param == ir.PoolingParam("MAX", (3, 3), (2, 2), (1, 1), round_mode="FLOOR")
    assert pool.top_shapes == ((1, 64, 56, 56),)
    # ceil_mode=1 with the same pads agrees with Caffe's rounding (57)
    graph, _ = import_model(torch_resnet(18, maxpool=(3, 2, 1, 1), stages=(1, 1, 1, 1)))
    assert graph.layer("/maxpool/MaxPool").param.round_mode == "CEIL"
    assert graph.layer("/maxpool/MaxPool").top_shapes == ((1, 64, 57, 57),)
    # ceil_mode=0 where both roundings agree (kernel 2 on an even size) is Caffe's default
    graph, _ = import_model(torch_resnet(18, maxpool=(2, 2, 0, 0), stages=(1, 1, 1, 1)))
    assert graph.layer("/maxpool/MaxPool").param.round_mode == "CEIL"


def test_dynamo_style_head_with_constant_nodes():
    """ReduceMean(keepdims=0) with axes from a Constant(value_ints), then Gemm: one global
    average pooling and one InnerProduct, no Flatten."""
    w = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    nodes = [helper.make_node("Constant", [], ["axes"], name="c", value_ints=[-1, -2]),
             helper.make_node("ReduceMean", ["x", "axes"], ["m"], name="mean", keepdims=0),
             helper.make_node("Gemm", ["m", "w"], ["y"], name="fc", transB=1)]
    model = _model(nodes, {"w": w}, [2, 3, 4, 4], opset=18)
    graph, _ = import_model(model)
    assert [(layer.name, layer.type) for layer in graph.layers] == [("mean", "Pooling"),
                                                                    ("fc", "InnerProduct")]
    batch = random_batch((2, 3, 4, 4), 2)
    assert np.allclose(run(to_onnx(graph, import_model(model)[1]), batch)[0], run(model, batch)[0],
                       atol=1e-6)


def test_pooling_neither_rounding_gives_is_refused_naming_the_node():
    # SAME_UPPER-like trailing pad of 2 with kernel 2 stride 2: ONNX 57, Caffe 56 either way
    node = helper.make_node("MaxPool", ["x"], ["y"], name="odd", kernel_shape=[2, 2],
                            strides=[2, 2], pads=[0, 0, 2, 2])
    with pytest.raises(NetgenError, match=r"node 'odd' \(MaxPool\): ceil_mode=0 with pads "
                                          r"\[0, 0, 2, 2\] gives \[57, 57\] outputs .* gives "
                                          r"\[56, 56\] rounding up and \[56, 56\] rounding down"):
        import_model(_model([node], {}, [1, 3, 112, 112]))


@pytest.mark.parametrize("node,message", [
    (helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], foo=1),
     r"node 'p' \(MaxPool\): attribute 'foo' has no meaning in netgen's IR \(the MaxPool "
     r"attributes it reads: auto_pad, ceil_mode"),
    (helper.make_node("Relu", ["x"], ["y"], name="r", alpha=0.1),
     r"node 'r' \(Relu\): attribute 'alpha' has no meaning in netgen's IR \(the Relu "
     r"attributes it reads: none\)"),
    (helper.make_node("Dropout", ["x", "", "t"], ["y"], name="d"),
     r"node 'd' \(Dropout\): training_mode true"),
    (helper.make_node("ReduceMean", ["x", "a"], ["y"], name="m", keepdims=1),
     r"node 'm' \(ReduceMean\): axes \[1\] of a \[1, 3, 8, 8\] input"),
    (helper.make_node("BatchNormalization", ["x", "s", "s", "s", "s"], ["y"], name="bn", spatial=0),
     r"node 'bn' \(BatchNormalization\): spatial=0 \(statistics per activation"),
    (helper.make_node("Add", ["x", "s"], ["y"], name="old", broadcast=1, axis=1),
     r"node 'old' \(Add\): attribute 'axis' has no meaning in netgen's IR \(the Add "
     r"attributes it reads: broadcast\)"),
])
def test_attributes_without_meaning_in_the_ir_name_the_node_and_attribute(node, message):
    inits = {"t": np.array(True), "a": np.array([1], np.int64), "s": np.ones(3, np.float32)}
    used = {k: v for k, v in inits.items() if k in node.input}
    with pytest.raises(NetgenError, match=message):
        import_model(_model([node], used, [1, 3, 8, 8]))


@pytest.mark.parametrize("node,inits,message", [
    (helper.make_node("Erf", ["x"], ["y"], name="erf"), {},
     r"node 'erf' \(Erf\): no Caffe equivalent; netgen imports Add, AveragePool"),
    (helper.make_node("LRN", ["x"], ["y"], name="norm", size=3), {},
     r"node 'norm' \(LRN\): no Caffe equivalent"),
    (helper.make_node("AveragePool", ["x"], ["y"], name="avg", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
     {}, r"node 'avg' \(AveragePool\): count_include_pad=0 with padding"),
    (helper.make_node("Add", ["x", "c"], ["y"], name="bcast"), {"c": np.ones((8,), np.float32)},
     r"node 'bcast' \(Add\): a constant of shape \[8\] added to \[1, 3, 8, 8\]"),
    # (zero padding of H and W is a layer's padding or a fixed depthwise conv: normalize.pads)
    # (a reflect pad of H and W is Slice + Concat: tests/test_reflect_pad.py)
    (helper.make_node("Pad", ["x", "p"], ["y"], name="spatial", mode="reflect"),
     {"p": np.array([0, 1, 0, 0, 0, 0, 0, 0], np.int64)},
     r"node 'spatial' \(Pad\): reflect pads \[0, 1, 0, 0, 0, 0, 0, 0\] of a \[1, 3, 8, 8\] "
     r"input: only pads of H and W"),
    (helper.make_node("Conv", ["x", "x"], ["y"], name="dyn", kernel_shape=[1, 1]), {},
     r"node 'dyn' \(Conv\): the weight \('x'\) must be a constant"),
])
def test_ops_without_caffe_equivalent_name_the_node_and_op(node, inits, message):
    with pytest.raises(NetgenError, match=message):
        import_model(_model([node], inits, [1, 3, 8, 8]))


def test_softmax_of_old_opsets_over_several_axes_is_refused():
    node = helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=1)
    with pytest.raises(NetgenError, match=r"node 'sm' \(Softmax\): opset 11 Softmax normalises"):
        import_model(_model([node], {}, [1, 3, 4, 4], opset=11))
    graph, _ = import_model(_model([node], {}, [1, 3, 4, 4], opset=13))
    assert graph.layer("sm").param.axis == 1


def test_dynamic_spatial_input_and_unreadable_files_are_errors(tmp_path):
    node = helper.make_node("Relu", ["x"], ["y"], name="r")
    with pytest.raises(NetgenError, match=r"graph input 'x' has a dynamic dimension 2 \(H\)"):
        import_model(_model([node], {}, ["N", 3, "H", 8]))
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x01garbage\xff\xff")
    with pytest.raises(NetgenError, match="bad.onnx: not a readable ONNX model"):
        read_onnx(tmp_path / "bad.onnx")
    with pytest.raises(NetgenError, match="missing.onnx: cannot read"):
        read_onnx(tmp_path / "missing.onnx")

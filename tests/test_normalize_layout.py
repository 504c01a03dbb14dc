"""The channels-last passes of netgen/onnx/normalize/ (layout, affine, pads; issue 18) on tiny
graphs: each rewrite is checked for what it writes and, under ONNX Runtime, for computing
what the original does. (The generic passes' tests are in test_normalize.py.)"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from netgen.errors import NetgenError
from netgen.onnx.normalize import PASSES, normalize
from netgen.onnx.normalize.affine import UNIT_VARIANCE, fuse_affine
from netgen.onnx.normalize.layout import input_layout, to_channels_first
from netgen.onnx.normalize.pads import fold_pads
from netgen.onnx.reader import import_model

RNG = np.random.default_rng(0)


def model(nodes, inits, shape, out_shape=None, opset=17):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def run(m: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(m.SerializeToString(), options).run(None, {"x": x})[0]


def rewritten(pass_, m):
    clone = onnx.ModelProto()
    clone.CopyFrom(m)
    pass_(clone)
    return clone


def ops(m):
    return Counter(n.op_type for n in m.graph.node)


def f32(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


# ------------------------------------------------------------------ the pipeline


def test_channels_last_passes_come_after_folding_and_before_pruning():
    names = [p.__name__ for p in PASSES]
    assert names.index("fold_constants") < names.index("to_channels_first") \
        < names.index("fuse_affine") < names.index("fold_pads") < names.index("prune_unused")


def test_a_channels_first_graph_is_left_as_it_is():
    m = model([helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
               helper.make_node("Relu", ["c"], ["y"])], {"w": f32(4, 3, 3, 3)}, [1, 3, 8, 8])
    before = m.SerializeToString()
    for step in (to_channels_first, fuse_affine, fold_pads):
        assert rewritten(step, m).SerializeToString() == before


# ------------------------------------------------------------------ layout


def keras_like(tail="reduce"):
    """NHWC input -> Pad -> T -> Conv -> T -> Add(bias) -> Relu -> Pad -> T -> MaxPool -> T
    -> [Sub/Mul/Add] -> ReduceMean(1, 2) -> MatMul, as Keras 3 writes it."""
    nodes = [
        helper.make_node("Pad", ["x", "pad3"], ["p0"], name="zp"),
        helper.make_node("Transpose", ["p0"], ["t0"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Conv", ["t0", "w"], ["c0"], kernel_shape=[3, 3], strides=[2, 2], name="conv"),
        helper.make_node("Transpose", ["c0"], ["t1"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Add", ["t1", "bias"], ["a0"], name="bias_add"),
        helper.make_node("Sub", ["a0", "mean"], ["s0"], name="bn_sub"),
        helper.make_node("Mul", ["s0", "scale"], ["m0"], name="bn_mul"),
        helper.make_node("Add", ["m0", "beta"], ["b0"], name="bn_add"),
        helper.make_node("Relu", ["b0"], ["r0"], name="relu"),
        helper.make_node("Pad", ["r0", "pad1"], ["p1"], name="pool_pad"),
        helper.make_node("Transpose", ["p1"], ["t2"], perm=[0, 3, 1, 2]),
        helper.make_node("MaxPool", ["t2"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], name="pool"),
        helper.make_node("Transpose", ["mp"], ["t3"], perm=[0, 2, 3, 1], name="back"),
    ]
    if tail == "reduce":
        nodes += [helper.make_node("ReduceMean", ["t3", "axes"], ["g"], keepdims=0, name="gap"),
                  helper.make_node("MatMul", ["g", "fc"], ["y"], name="fc")]
    inits = {"pad3": np.array([0, 1, 1, 0, 0, 1, 1, 0], np.int64), "w": f32(8, 3, 3, 3, scale=0.3),
             "bias": f32(1, 1, 1, 8), "mean": f32(1, 1, 1, 8),
             "scale": RNG.uniform(0.5, 1.5, (1, 1, 1, 8)).astype(np.float32),
             "beta": f32(1, 1, 1, 8), "pad1": np.array([0, 1, 1, 0, 0, 1, 1, 0], np.int64),
             "axes": np.array([1, 2], np.int64), "fc": f32(8, 5)}
    return model(nodes, {k: v for k, v in inits.items() if any(k in n.input for n in nodes)},
                 [2, 15, 15, 3], opset=18)


def test_layout_pushes_every_transpose_out_of_a_keras_graph():
    m = keras_like()
    out = rewritten(to_channels_first, m)
    assert "Transpose" not in ops(out)
    assert input_layout(out) == "NHWC" and input_layout(m) == "NCHW"
    assert [d.dim_value for d in out.graph.input[0].type.tensor_type.shape.dim] == [2, 3, 15, 15]
    inits = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    by_name = {n.name: n for n in out.graph.node}
    assert inits[by_name["zp"].input[1]].tolist() == [0, 0, 1, 1, 0, 0, 1, 1]
    assert inits[by_name["bias_add"].input[1]].shape == (1, 8, 1, 1)
    assert inits[by_name["gap"].input[1]].tolist() == [2, 3]
    x = f32(2, 15, 15, 3)
    assert np.allclose(run(out, np.ascontiguousarray(x.transpose(0, 3, 1, 2))), run(m, x),
                       rtol=1e-5, atol=1e-5)


def test_whole_pipeline_gives_conv_bias_batchnorm_and_folded_pads():
    m = keras_like()
    out = normalize(m)
    assert ops(out) == {"Conv": 1, "BatchNormalization": 1, "Relu": 1, "MaxPool": 1,
                        "ReduceMean": 1, "MatMul": 1}
    by_name = {n.name: n for n in out.graph.node}
    attrs = {a.name: helper.get_attribute_value(a) for a in by_name["conv"].attribute}
    assert attrs["pads"] == [1, 1, 1, 1] and len(by_name["conv"].input) == 3
    pool = {a.name: helper.get_attribute_value(a) for a in by_name["pool"].attribute}
    assert pool["pads"] == [1, 1, 1, 1]
    x = f32(2, 15, 15, 3)
    assert np.allclose(run(out, np.ascontiguousarray(x.transpose(0, 3, 1, 2))), run(m, x),
                       rtol=1e-5, atol=1e-5)
    graph, _ = import_model(m)  # and the importer takes it
    assert [layer.type for layer in graph.layers] == ["Convolution", "BatchNorm", "Scale", "ReLU",
                                                      "Pooling", "Pooling", "InnerProduct"]


def test_inverse_pair_inside_a_channels_first_graph_cancels():
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Relu", ["t"], ["r"]),
             helper.make_node("Concat", ["r", "r"], ["c"], axis=3),
             helper.make_node("Softmax", ["c"], ["s"], axis=-1),
             helper.make_node("Transpose", ["s"], ["y"], perm=[0, 3, 1, 2])]
    m = model(nodes, {}, [1, 3, 4, 5])
    out = rewritten(to_channels_first, m)
    assert ops(out) == {"Relu": 1, "Concat": 1, "Softmax": 1, "Identity": 1}
    assert input_layout(out) == "NCHW" and out.graph.output[0].name == "y"
    assert [helper.get_attribute_value(n.attribute[0]) for n in out.graph.node
            if n.op_type in ("Concat", "Softmax")] == [1, 1]
    x = f32(1, 3, 4, 5)
    assert np.allclose(run(out, x), run(m, x))


@pytest.mark.parametrize("tail,message", [
    ([helper.make_node("Flatten", ["t3"], ["y"], name="flat")],
     r"node 'back' \(Transpose\): a channels-last map flattened for a fully connected layer "
     r"reaches graph output 'y'; only a MatMul or Gemm with a constant weight can take its "
     r"\(H, W, C\) feature order"),
    ([helper.make_node("Flatten", ["t3"], ["f"], name="flat", axis=2),
      helper.make_node("Relu", ["f"], ["y"])],
     r"node 'back' \(Transpose\): its permutation \[0, 2, 3, 1\] cannot be moved out of the "
     r"network: node 'flat' \(Flatten\) has no channels-first equivalent"),
    ([helper.make_node("Relu", ["t3"], ["y"], name="last")],
     r"node 'back' \(Transpose\): .* graph output 'y' has no channels-first"),
    ([helper.make_node("Transpose", ["t3"], ["t4"], perm=[0, 2, 1, 3], name="swap"),
      helper.make_node("Conv", ["t4", "w"], ["y"], kernel_shape=[3, 3], name="conv2")],
     r"node 'swap' \(Transpose\): its permutation \[0, 3, 2, 1\] .* node 'conv2' \(Conv\)"),
])
def test_a_transpose_that_cannot_leave_is_refused_naming_it(tail, message):
    base = keras_like(tail="none")
    nodes = list(base.graph.node) + tail
    inits = {t.name: numpy_helper.to_array(t) for t in base.graph.initializer}
    inits["w"] = f32(8, 8, 3, 3)
    m = model(nodes, inits, [2, 15, 15, 3], opset=18)
    with pytest.raises(NetgenError, match=message):
        normalize(m)


def test_cli_refuses_in_one_line_and_writes_nothing(tmp_path, run_cli):
    base = keras_like(tail="none")
    nodes = list(base.graph.node) + [helper.make_node("Flatten", ["t3"], ["y"], name="flat")]
    inits = {t.name: numpy_helper.to_array(t) for t in base.graph.initializer}
    onnx.save(model(nodes, inits, [2, 15, 15, 3], opset=18), tmp_path / "bad.onnx")
    result = run_cli("convert", tmp_path / "bad.onnx", "-o", tmp_path / "out" / "deploy.prototxt")
    assert result.code == 2 and result.err.count("\n") == 1
    assert result.err.startswith("error: node 'back' (Transpose): a channels-last map flattened")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ affine


def test_conv_add_becomes_the_conv_bias_and_sub_mul_add_a_batchnorm():
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[1, 1]),
             helper.make_node("Add", ["bias", "c"], ["a"]),
             helper.make_node("Sub", ["a", "mean"], ["s"]),
             helper.make_node("Div", ["s", "std"], ["d"], name="norm"),
             helper.make_node("Sub", ["d", "shift"], ["y"])]
    inits = {"w": f32(4, 3, 1, 1), "b": f32(4), "bias": f32(1, 4, 1, 1), "mean": f32(4, 1, 1),
             "std": RNG.uniform(0.5, 2, (1, 4, 1, 1)).astype(np.float32), "shift": f32(1, 4, 1, 1)}
    m = model(nodes, inits, [1, 3, 5, 5])
    out = rewritten(fuse_affine, m)
    assert [n.op_type for n in out.graph.node] == ["Conv", "BatchNormalization"]
    values = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    bn = out.graph.node[1]
    assert np.array_equal(values[bn.input[4]], np.full(4, UNIT_VARIANCE, np.float32))
    eps = helper.get_attribute_value(bn.attribute[0])
    assert np.sqrt(np.float32(UNIT_VARIANCE) + np.float32(eps)) == np.float32(1.0)
    assert np.allclose(values[out.graph.node[0].input[2]], inits["b"] + inits["bias"].reshape(-1))
    x = f32(1, 3, 5, 5)
    assert np.allclose(run(out, x), run(m, x), rtol=1e-5, atol=1e-6)


def test_mul_add_is_left_for_the_scale_layer():
    """netgen's own exporter writes a Caffe Scale with bias as Mul + Add: it must read back
    as a Scale, not a BatchNorm."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Mul", ["r", "g"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    m = model(nodes, {"g": f32(1, 3, 1, 1), "b": f32(1, 3, 1, 1)}, [1, 3, 4, 4])
    assert ops(rewritten(fuse_affine, m)) == {"Relu": 1, "Mul": 1, "Add": 1}


def test_a_chain_read_twice_midway_is_not_fused():
    nodes = [helper.make_node("Sub", ["x", "m"], ["s"]), helper.make_node("Mul", ["s", "g"], ["p"]),
             helper.make_node("Add", ["p", "s"], ["y"])]
    m = model(nodes, {"m": f32(1, 3, 1, 1), "g": f32(1, 3, 1, 1)}, [1, 3, 4, 4])
    assert ops(rewritten(fuse_affine, m)) == {"Sub": 1, "Mul": 1, "Add": 1}


# ------------------------------------------------------------------ pads


def test_pad_before_a_maxpool_without_relu_becomes_a_padding_convolution():
    nodes = [helper.make_node("Pad", ["x", "p"], ["q"], name="zp"),
             helper.make_node("MaxPool", ["q"], ["y"], kernel_shape=[3, 3], strides=[2, 2])]
    m = model(nodes, {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)}, [1, 3, 8, 8])
    out = rewritten(fold_pads, m)
    conv = out.graph.node[0]
    assert conv.op_type == "Conv" and conv.name == "zp"
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    assert attrs == {"kernel_shape": [1, 1], "pads": [1, 1, 1, 1], "group": 3}
    x = f32(1, 3, 8, 8) - 3.0  # all negative: a pool's own padding (-inf) would differ
    assert np.array_equal(run(out, x), run(m, x))
    graph, _ = import_model(m)
    assert [layer.type for layer in graph.layers] == ["Convolution", "Pooling"]


def test_pad_after_relu_folds_into_maxpool_and_conv_pads_add_up():
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Pad", ["r", "p"], ["q"]),
             helper.make_node("MaxPool", ["q"], ["m"], kernel_shape=[3, 3], strides=[2, 2]),
             helper.make_node("Pad", ["m", "p"], ["q2"]),
             helper.make_node("Conv", ["q2", "w"], ["y"], kernel_shape=[3, 3], pads=[1, 0, 1, 0])]
    m = model(nodes, {"p": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "w": f32(2, 3, 3, 3)},
              [1, 3, 9, 9])
    out = rewritten(fold_pads, m)
    assert [n.op_type for n in out.graph.node] == ["Relu", "MaxPool", "Conv"]
    pads = [helper.get_attribute_value(next(a for a in n.attribute if a.name == "pads"))
            for n in out.graph.node[1:]]
    assert pads == [[1, 1, 1, 1], [2, 1, 2, 1]]
    x = f32(1, 3, 9, 9)
    assert np.allclose(run(out, x), run(m, x), rtol=1e-5, atol=1e-6)


def test_asymmetric_or_channel_pads_stay_for_the_importer():
    nodes = [helper.make_node("Pad", ["x", "p"], ["y"], name="odd")]
    m = model(nodes, {"p": np.array([0, 0, 1, 0, 0, 0, 0, 1], np.int64)}, [1, 3, 8, 8])
    assert ops(rewritten(fold_pads, m)) == {"Pad": 1}
    with pytest.raises(NetgenError, match=r"node 'odd' \(Pad\)"):
        import_model(m)

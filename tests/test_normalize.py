"""The ONNX normalisation passes, each on tiny graphs in the shapes exporters write, checked
against ONNX Runtime on the graph before and after (and by what the pass must leave)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from netgen.errors import NetgenError
from netgen.onnx.normalize import fold
from netgen.onnx.normalize import PASSES, normalize
from netgen.onnx.normalize.constants import constants_to_initializers
from netgen.onnx.normalize.eca import drop_broadcast_expands, eca_to_2d
from netgen.onnx.normalize.fold import fold_constants
from netgen.onnx.normalize.noops import drop_noops
from netgen.onnx.normalize.prune import prune_unused
from netgen.onnx.normalize.slices import merge_slices
from netgen.onnx.runtime import create_session

INT64_MAX = 2**63 - 1
F = TensorProto.FLOAT


def const_node(name: str, value) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], name=f"c_{name}",
                            value=numpy_helper.from_array(np.asarray(value), "value"))


def init(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def model(nodes, inits=(), shape=("N", 4, 6, 6), out_shape=None, opset=17, out="y"):
    graph = helper.make_graph(list(nodes), "t", [helper.make_tensor_value_info("x", F, list(shape))],
                              [helper.make_tensor_value_info(out, F, list(shape) if out_shape is None
                                                             else out_shape)], list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def run(m: onnx.ModelProto, batch: int) -> np.ndarray:
    shape = [batch] + [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim[1:]]
    x = np.random.default_rng(batch).standard_normal(shape).astype(np.float32)
    return create_session(m, device="cpu").run_list(x)[0]


def ops(m: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in m.graph.node]


def inits_of(m: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}


def torch_flatten(x: str = "p", out: str = "y") -> list[onnx.NodeProto]:
    """out.view(out.size(0), -1) as the TorchScript exporter writes it."""
    return [const_node("zero", np.array(0, np.int64)), const_node("axes", np.array([0], np.int64)),
            const_node("rest", np.array([-1], np.int64)),
            helper.make_node("Shape", [x], ["s"], name="/Shape"),
            helper.make_node("Gather", ["s", "zero"], ["g"], name="/Gather", axis=0),
            helper.make_node("Unsqueeze", ["g", "axes"], ["u"], name="/Unsqueeze"),
            helper.make_node("Concat", ["u", "rest"], ["target"], name="/Concat", axis=0),
            helper.make_node("Reshape", [x, "target"], [out], name="/Reshape")]


def test_passes_share_one_interface_and_normalize_leaves_the_callers_model_alone():
    assert all(callable(p) for p in PASSES) and PASSES[-1] is prune_unused
    m = model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["y"])])
    before = m.SerializeToString()
    for step in PASSES:
        assert step(onnx.ModelProto.FromString(before)) is None  # in place, returns nothing
    out = normalize(m)
    assert m.SerializeToString() == before
    assert ops(out) == ["Relu"] and out.graph.node[0].output[0] == "y"


def test_constant_nodes_become_initializers_and_identity_of_a_constant_goes():
    nodes = [const_node("shape", np.array([0, -1], np.int64)),
             helper.make_node("Constant", [], ["k"], name="ints", value_ints=[2, 3]),
             helper.make_node("Constant", [], ["f"], name="float", value_float=0.5),
             helper.make_node("Identity", ["w"], ["w_id"], name="id"),
             helper.make_node("Mul", ["x", "f"], ["xf"]),
             helper.make_node("Add", ["xf", "w_id"], ["xa"]),
             helper.make_node("Reshape", ["xa", "shape"], ["y"])]
    m = model(nodes, [init("w", np.full((4, 1, 1), 2.0, np.float32))], out_shape=["N", 144])
    out = normalize(m, (constants_to_initializers,))
    assert ops(out) == ["Mul", "Add", "Reshape"]
    values = inits_of(out)
    assert values["shape"].tolist() == [0, -1] and values["k"].tolist() == [2, 3]
    assert values["f"] == np.float32(0.5) and values["f"].dtype == np.float32
    assert out.graph.node[1].input[1] == "w"  # reads the weight itself
    np.testing.assert_array_equal(run(out, 2), run(m, 2))


def test_a_constant_that_is_a_graph_output_keeps_its_node():
    m = model([const_node("y", np.ones((1,), np.float32))], out_shape=[1])
    assert ops(normalize(m, (constants_to_initializers,))) == ["Constant"]


def test_identity_and_casts_to_the_same_type_are_dropped_others_kept():
    nodes = [helper.make_node("Cast", ["x"], ["c"], name="same", to=F),
             helper.make_node("Identity", ["c"], ["i"], name="id"),
             helper.make_node("Relu", ["i"], ["r"]),
             helper.make_node("Cast", ["r"], ["h"], name="half", to=TensorProto.FLOAT16),
             helper.make_node("Cast", ["h"], ["y"], name="back", to=F)]
    m = model(nodes)
    out = normalize(m, (drop_noops,))
    assert ops(out) == ["Relu", "Cast", "Cast"]
    assert out.graph.node[0].input[0] == "x"
    np.testing.assert_array_equal(run(out, 3), run(m, 3))


def test_an_identity_writing_a_graph_output_renames_its_producer():
    m = model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Identity", ["r"], ["y"])])
    out = normalize(m, (drop_noops,))
    assert ops(out) == ["Relu"] and list(out.graph.node[0].output) == ["y"]
    # input straight to output: the node must stay, as an Identity
    m = model([helper.make_node("Cast", ["x"], ["y"], to=F)])
    assert ops(normalize(m, (drop_noops,))) == ["Identity"]


def test_torchscript_flatten_folds_to_a_reshape_copying_the_batch():
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"])] + torch_flatten()
    m = model(nodes, out_shape=["N", 4])
    out = normalize(m, (constants_to_initializers, fold_constants, prune_unused))
    assert ops(out) == ["GlobalAveragePool", "Reshape"]
    target = out.graph.node[1].input[1]
    assert inits_of(out)[target].tolist() == [0, -1]
    assert inits_of(out).keys() == {target}
    for batch in (1, 3):  # holds for every batch, not just the two it was evaluated at
        np.testing.assert_array_equal(run(out, batch), run(m, batch))


def test_a_fixed_batch_folds_to_its_value_and_allowzero_is_dropped_where_it_changes_nothing():
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"])] + torch_flatten()
    fixed = model(nodes, shape=(2, 4, 6, 6), out_shape=[2, 4])
    out = normalize(fixed, (constants_to_initializers, fold_constants))
    assert inits_of(out)[out.graph.node[-1].input[1]].tolist() == [2, -1]
    nodes[-1] = helper.make_node("Reshape", ["p", "target"], ["y"], name="/Reshape", allowzero=1)
    m = model(nodes, out_shape=["N", 4], opset=18)
    out = normalize(m, (constants_to_initializers, fold_constants))
    reshape = out.graph.node[-1]
    assert inits_of(out)[reshape.input[1]].tolist() == [0, -1]
    assert [a.i for a in reshape.attribute if a.name == "allowzero"] == [0]
    np.testing.assert_array_equal(run(out, 3), run(m, 3))


def test_torchscript_pads_subgraph_folds_to_onnx_pads():
    nodes = [const_node("pad", np.array([0, 0, 0, 0, 2, 6], np.int64)),
             const_node("ext", np.array([2], np.int64)),
             helper.make_node("ConstantOfShape", ["ext"], ["zeros"],
                              value=numpy_helper.from_array(np.array([0], np.int64), "value")),
             helper.make_node("Concat", ["pad", "zeros"], ["all"], axis=0),
             const_node("pairs", np.array([-1, 2], np.int64)),
             helper.make_node("Reshape", ["all", "pairs"], ["m"]),
             const_node("s", np.array([-1], np.int64)), const_node("e", np.array([-INT64_MAX], np.int64)),
             const_node("a", np.array([0], np.int64)), const_node("st", np.array([-1], np.int64)),
             helper.make_node("Slice", ["m", "s", "e", "a", "st"], ["flip"]),
             helper.make_node("Transpose", ["flip"], ["t"], perm=[1, 0]),
             const_node("flat", np.array([-1], np.int64)),
             helper.make_node("Reshape", ["t", "flat"], ["f"]),
             helper.make_node("Cast", ["f"], ["pads"], to=TensorProto.INT64),
             const_node("value", np.array(0.0, np.float32)),
             helper.make_node("Pad", ["x", "pads", "value"], ["y"], name="pad", mode="constant")]
    m = model(nodes, out_shape=["N", 12, 6, 6])
    out = normalize(m)
    assert ops(out) == ["Pad"]
    pad = out.graph.node[0]
    assert inits_of(out)[pad.input[1]].tolist() == [0, 2, 0, 0, 0, 6, 0, 0]
    assert inits_of(out)[pad.input[2]] == 0.0
    np.testing.assert_array_equal(run(out, 2), run(m, 2))


@pytest.mark.parametrize("nodes, inits, message", [
    # the batch times two in a Reshape's target
    ([helper.make_node("Shape", ["x"], ["s"]),
      helper.make_node("Gather", ["s", "zero"], ["g"], axis=0),
      helper.make_node("Mul", ["g", "two"], ["g2"]),
      helper.make_node("Unsqueeze", ["g2", "axes"], ["u"]),
      helper.make_node("Concat", ["u", "rest"], ["t"], axis=0),
      helper.make_node("Reshape", ["x", "t"], ["y"], name="twice")],
     [init("zero", np.array(0, np.int64)), init("two", np.array(2, np.int64)),
      init("axes", np.array([0], np.int64)), init("rest", np.array([-1], np.int64))],
     "node 'twice' (Reshape): its target shape 't' changes with the batch size other than as "
     "the batch itself ([2, -1] at batch 1, [4, -1] at batch 2)"),
    # the shape of the input as a Tile's repeats
    ([helper.make_node("Shape", ["x"], ["s"]),
      helper.make_node("Tile", ["x", "s"], ["y"], name="tile")], [],
     "node 'tile' (Tile): input 's' is computed from tensor shapes and changes with the "
     "batch size ([1, 4, 6, 6] at batch 1, [2, 4, 6, 6] at batch 2); only a Reshape's target "
     "shape may depend on the batch"),
    # a constant expanded to the input's shape: computed, but different at each batch (an
    # Add or Mul would broadcast it anyway: drop_broadcast_expands drops those Expands)
    ([helper.make_node("Shape", ["x"], ["s"]),
      helper.make_node("Expand", ["one", "s"], ["e"]),
      helper.make_node("Sub", ["x", "e"], ["y"], name="sub")],
     [init("one", np.ones(1, np.float32))],
     "node 'sub' (Sub): input 'e' is computed from tensor shapes and changes with the "
     "batch size ([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, ...] at batch 1"),
])
def test_batch_dependent_values_elsewhere_are_refused_naming_the_node(nodes, inits, message):
    with pytest.raises(NetgenError) as err:
        normalize(model(nodes, inits))
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_a_shape_not_fixed_once_the_batch_is_given_is_refused():
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="size_of_x"),
             helper.make_node("Reshape", ["x", "s"], ["y"])]
    with pytest.raises(NetgenError, match=r"^node 'size_of_x' \(Shape\): the shape of 'x' "
                       r"\(\[1, 4, \?, \?\]\) is not fixed once the batch is given"):
        normalize(model(nodes, shape=("N", 4, "H", "W")))


def test_a_huge_computed_constant_is_refused_before_it_is_made():
    nodes = [helper.make_node("ConstantOfShape", ["big"], ["z"], name="huge"),
             helper.make_node("Add", ["x", "z"], ["y"])]
    with pytest.raises(NetgenError, match=r"^node 'huge' \(ConstantOfShape\): would make a "
                       r"constant of 1,000,000,000,000 elements"):
        normalize(model(nodes, [init("big", np.array([10**6, 10**6], np.int64))]))


def slice_node(x, y, axis, step, name, start=0, end=INT64_MAX):
    names = [f"{name}_{w}" for w in ("s", "e", "a", "st")]
    values = [np.array([v], np.int64) for v in (start, end, axis, step)]
    return helper.make_node("Slice", [x] + names, [y], name=name), [init(n, v) for n, v in zip(names, values)]


def test_consecutive_slices_on_other_axes_merge_into_one():
    first, a = slice_node("x", "h", 2, 2, "node_slice_1")
    second, b = slice_node("h", "y", -1, 2, "node_slice_2")
    m = model([first, second], a + b)
    out = normalize(m, (merge_slices, prune_unused))
    assert ops(out) == ["Slice"] and out.graph.node[0].name == "node_slice_2"
    values = [inits_of(out)[n].tolist() for n in out.graph.node[0].input[1:]]
    assert values == [[0, 0], [INT64_MAX, INT64_MAX], [2, 3], [2, 2]]
    assert len(out.graph.initializer) == 4
    np.testing.assert_array_equal(run(out, 2), run(m, 2))


def test_slices_stay_apart_where_merging_would_change_something():
    first, a = slice_node("x", "h", 2, 2, "one")
    second, b = slice_node("h", "y", 2, 2, "same_axis")
    assert ops(normalize(model([first, second], a + b), (merge_slices,))) == ["Slice", "Slice"]
    second, b = slice_node("h", "s", 3, 2, "other")
    both = helper.make_node("Add", ["s", "s"], ["y"])
    reread = helper.make_node("Relu", ["h"], ["r"])  # h has a second reader
    m = model([first, second, reread, both], a + b)
    m.graph.output.append(helper.make_tensor_value_info("r", F, ["N", 4, 3, 6]))
    assert ops(normalize(m, (merge_slices,))) == ["Slice", "Slice", "Relu", "Add"]


def test_prune_drops_unread_nodes_and_initializers_also_listed_as_inputs():
    m = model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["w"], ["dead"])],
              [init("w", np.ones(2, np.float32)), init("v", np.ones(2, np.float32))])
    m.graph.input.append(helper.make_tensor_value_info("v", F, [2]))
    out = normalize(m, (prune_unused,))
    assert ops(out) == ["Relu"] and not out.graph.initializer
    assert [v.name for v in out.graph.input] == ["x"]


@pytest.mark.parametrize("node, inits", [
    (helper.make_node("Expand", ["one", "big"], ["z"], name="huge"),
     [init("one", np.ones(1, np.float32)), init("big", np.array([10**6, 10**6], np.int64))]),
    (helper.make_node("Tile", ["one", "big"], ["z"], name="huge"),
     [init("one", np.ones((1, 1), np.float32)), init("big", np.array([10**6, 10**6], np.int64))]),
])
def test_expand_and_tile_of_a_huge_size_are_refused_before_they_run(node, inits):
    nodes = [node, helper.make_node("Add", ["x", "z"], ["y"])]
    with pytest.raises(NetgenError, match=r"^node 'huge' \((Expand|Tile)\): would make a "
                       r"constant of 1,000,000,000,000 elements"):
        normalize(model(nodes, inits))


def test_a_constant_as_large_as_what_it_is_computed_from_folds(monkeypatch):
    """A weight transposed by the exporter is folded whatever its size."""
    weight = np.arange(4 * 5 * 3 * 3, dtype=np.float32).reshape(4, 5, 3, 3)
    nodes = [helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0, 2, 3]),
             helper.make_node("Conv", ["x", "wt"], ["y"], pads=[1, 1, 1, 1])]
    m = model(nodes, [init("w", weight)], out_shape=["N", 5, 6, 6])
    monkeypatch.setattr(fold, "MAX_FOLD_ELEMENTS", 10)  # the weight is above it
    out = normalize(m)
    assert ops(out) == ["Conv"]
    np.testing.assert_array_equal(inits_of(out)["wt"], weight.transpose(1, 0, 2, 3))
    np.testing.assert_allclose(run(out, 2), run(m, 2), rtol=1e-6)


def test_a_negative_dimension_is_kept_from_onnx_shape_inference(tmp_path):
    """onnx's C++ shape inference aborts the process on a negative dim_value (found by
    tests/test_fuzz.py): the file is refused in one line instead. Run in a child process,
    so that a regression fails this test rather than killing the run."""
    import subprocess
    import sys

    nodes = [helper.make_node("Shape", ["x"], ["s"], name="size_of_x"),
             helper.make_node("Reshape", ["x", "s"], ["y"])]
    m = model(nodes)
    m.graph.input[0].type.tensor_type.shape.dim[2].dim_value = -1
    m.graph.output[0].type.tensor_type.shape.dim[3].dim_value = -5
    onnx.save(m, tmp_path / "negative.onnx")
    code = ("import onnx, sys\n"
            "from netgen.errors import NetgenError\n"
            "from netgen.onnx.normalize import normalize\n"
            f"m = onnx.load({str(tmp_path / 'negative.onnx')!r})\n"
            "try:\n    normalize(m)\nexcept NetgenError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("node 'size_of_x' (Shape): the shape of 'x' ([1, 4, ?, 6])")


def test_prune_keeps_what_a_subgraph_reads_from_the_outer_scope():
    body = helper.make_graph([helper.make_node("Identity", ["w"], ["out"])], "body", [],
                             [helper.make_tensor_value_info("out", F, [2])])
    cond = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)
    m = helper.make_model(helper.make_graph(
        [cond], "t", [helper.make_tensor_value_info("x", F, [2])],
        [helper.make_tensor_value_info("y", F, [2])],
        [init("c", np.array(True)), init("w", np.ones(2, np.float32))]),
        opset_imports=[helper.make_opsetid("", 17)])
    out = normalize(m, (prune_unused,))
    assert sorted(inits_of(out)) == ["c", "w"]


@pytest.mark.parametrize("style", ["torchscript", "torchscript-nofold", "dynamo"])
def test_a_whole_export_normalises_to_a_valid_model_computing_the_same(style):
    from cifar_style import cifar_resnet

    m = cifar_resnet(style, seed=2)
    out = normalize(m)
    onnx.checker.check_model(out, full_check=True)
    assert set(ops(out)) == {"Conv", "Relu", "Add", "Slice", "Pad", "AveragePool", "Reshape", "Gemm"}
    assert ops(out).count("Slice") == 2  # one per option A shortcut, both axes in it
    batches = (1,) if style == "dynamo" else (1, 3)
    for batch in batches:
        np.testing.assert_array_equal(run(out, batch), run(m, batch))


def eca_nodes(expand_target: str, keepdims: int = 0) -> list[onnx.NodeProto]:
    """timm's EcaModule as the TorchScript exporter writes it, on an N x 4 x 6 x 6 input:
    mean over H, W; view(N, 1, -1); conv1d k=3 pad 1; sigmoid; view(N, -1, 1, 1);
    expand_as(x); x * gate."""
    return [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=keepdims),
            helper.make_node("Reshape", ["m", "to3"], ["v"]),
            helper.make_node("Conv", ["v", "w"], ["c"], kernel_shape=[3], pads=[1, 1], name="eca_conv"),
            helper.make_node("Sigmoid", ["c"], ["g"]),
            helper.make_node("Reshape", ["g", "to4"], ["gate"]),
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Expand", ["gate", expand_target], ["e"], name="expand"),
            helper.make_node("Mul", ["x", "e"], ["y"])]


ECA_INITS = [init("to3", np.array([0, 1, -1], np.int64)), init("to4", np.array([0, -1, 1, 1], np.int64)),
             init("w", np.array([[[0.5, -1.0, 2.0]]], np.float32))]


def test_an_expand_to_the_shape_of_what_it_multiplies_goes():
    m = model(eca_nodes("s"), ECA_INITS)
    out = onnx.ModelProto()
    out.CopyFrom(m)
    drop_broadcast_expands(out)
    assert "Expand" not in ops(out) and out.graph.node[-1].input[:] == ["x", "gate"]
    for batch in (1, 3):
        np.testing.assert_allclose(run(out, batch), run(m, batch), rtol=1e-6)


def test_an_expand_to_a_constant_equal_to_the_static_shape_goes_and_others_stay():
    static = model(eca_nodes("shape"), ECA_INITS + [init("shape", np.array([2, 4, 6, 6], np.int64))],
                   shape=(2, 4, 6, 6))
    drop_broadcast_expands(static)
    assert "Expand" not in ops(static)
    # a target larger than x (it broadcasts x too): not a no-op of the Mul, kept
    bigger = model(eca_nodes("shape"), ECA_INITS + [init("shape", np.array([3, 4, 6, 6], np.int64))],
                   shape=(1, 4, 6, 6), out_shape=(3, 4, 6, 6))
    drop_broadcast_expands(bigger)
    assert "Expand" in ops(bigger)
    # the Expand's output read by something other than a Mul or Add: kept
    nodes = eca_nodes("s")[:-1] + [helper.make_node("Sub", ["x", "e"], ["y"])]
    other = model(nodes, ECA_INITS)
    drop_broadcast_expands(other)
    assert "Expand" in ops(other)


@pytest.mark.parametrize("keepdims", [0, 1])
def test_ecas_conv1d_becomes_a_1_by_k_conv_on_n_1_1_c(keepdims):
    nodes = eca_nodes("s", keepdims)
    inits = ECA_INITS if not keepdims else ECA_INITS[1:] + [init("to3", np.array([0, 1, 4], np.int64))]
    m = model(nodes, inits)
    out = normalize(m)
    assert ops(out) == ["ReduceMean", "Reshape", "Conv", "Sigmoid", "Reshape", "Mul"]
    conv = next(n for n in out.graph.node if n.op_type == "Conv")
    a = {x.name: helper.get_attribute_value(x) for x in conv.attribute}
    assert a["kernel_shape"] == [1, 3] and a["pads"] == [0, 1, 0, 1]
    values = inits_of(out)
    assert values[conv.input[1]].shape == (1, 1, 1, 3)
    reshapes = [n for n in out.graph.node if n.op_type == "Reshape"]
    assert [values[r.input[1]].tolist() for r in reshapes] == [[0, 1, 1, -1], [0, -1, 1, 1]]
    for batch in (1, 2):
        np.testing.assert_allclose(run(out, batch), run(m, batch), rtol=1e-5, atol=1e-6)


def test_a_1d_conv_outside_the_eca_pattern_is_left_for_the_op_mapping():
    nodes = [helper.make_node("Reshape", ["x", "to3"], ["v"]),
             helper.make_node("Conv", ["v", "w"], ["c"], kernel_shape=[3], pads=[1, 1]),
             helper.make_node("Reshape", ["c", "back"], ["y"])]
    m = model(nodes, ECA_INITS[:1] + ECA_INITS[2:] + [init("back", np.array([0, 4, 6, 6], np.int64))])
    before = [n.SerializeToString() for n in m.graph.node]
    eca_to_2d(m)
    assert [n.SerializeToString() for n in m.graph.node] == before

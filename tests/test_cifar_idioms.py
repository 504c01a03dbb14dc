"""Hand-written CIFAR ResNets as PyTorch exports them (tests/cifar_style.py) through plain
`netgen convert`: the Caffe files in OpenCV and the ONNX converted back in ONNX Runtime
compute what ONNX Runtime computes on the source, and bad input stops with one line."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from caffe_roundtrip import relative_error, to_caffe_and_back
from cifar_style import INT64_MAX, cifar_resnet
from onnx import TensorProto, helper, numpy_helper

from netgen.caffe.reader import read_prototxt
from netgen.onnx.runtime import create_session, random_batch

cv2 = pytest.importorskip("cv2")


@pytest.mark.parametrize("style, widths, split, pieces", [
    ("torchscript", (16, 32, 64), (0.5, 0.5), [(8, 8), (16, 16)]),   # akamaster's planes // 4
    ("dynamo", (16, 32, 64), (0.5, 0.5), [(8, 8), (16, 16)]),
    ("torchscript-nofold", (16, 32, 64), (0.5, 0.5), [(8, 8), (16, 16)]),
    ("torchscript", (16, 48, 96), (0.25, 0.75), [(8, 8), (12, 36)]),  # a + b = 2C and = C
    ("dynamo", (16, 32, 64), (1, 0), []),                             # zeros before only
], ids=["torchscript", "dynamo", "torchscript-nofold", "torchscript-2C", "dynamo-before"])
def test_cifar_export_converts_and_computes_the_same(tmp_path, run_cli, style, widths, split, pieces):
    model = cifar_resnet(style, widths=widths, pad_split=split, seed=3)
    target, back = to_caffe_and_back(tmp_path, run_cli, model, "source.onnx",
                                     random_batch((1, 3, 32, 32), 5))
    net = read_prototxt(target)
    slices = [l for l in net.layers if l.type == "Slice"]
    assert [(l.top_shapes[0][1], l.top_shapes[1][1]) for l in slices] == pieces
    for concat in (l for l in net.layers if l.type == "Concat"):
        zeros = [b for b in concat.bottoms if "_zeros" in b]
        assert len(zeros) == len(concat.bottoms) - 1  # the input and zero blocks or pieces only
    assert not any(l.type in ("Reshape", "Flatten") for l in net.layers)  # the fc flattens

    # TorchScript's symbolic batch stays symbolic throughout: a batch of 2 runs
    x2 = random_batch((1 if style == "dynamo" else 2, 3, 32, 32), 6)
    want2 = create_session(model, device="cpu").run_list(x2)[0]
    assert relative_error(create_session(back, device="cpu").run_list(x2)[0], want2) <= 1e-4

    again = tmp_path / "again" / "deploy.prototxt"  # netgen's own ONNX reads back the same
    assert run_cli("convert", back, "-o", again).code == 0
    assert again.read_text() == target.read_text()


def test_zeros_before_and_after_are_in_order(tmp_path, run_cli):
    """Channels [0, a) and [a + C, a + C + b) are zero, [a, a + C) the input, in OpenCV."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 3, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 12, 3, 3])
    pads = numpy_helper.from_array(np.array([0, 3, 0, 0, 0, 5, 0, 0], np.int64), "pads")
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["r"]),
                               helper.make_node("Pad", ["r", "pads"], ["y"], name="pad")],
                              "pad", [x], [y], [pads])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "pad.onnx")
    target = tmp_path / "out" / "deploy.prototxt"
    assert run_cli("convert", tmp_path / "pad.onnx", "-o", target).code == 0
    net = cv2.dnn.readNetFromCaffe(str(target), str(target.parent / "model.caffemodel"))
    batch = random_batch((1, 4, 3, 3), 1) + 1.0
    net.setInput(batch)
    got = net.forward()
    want = np.concatenate([np.zeros((1, 3, 3, 3)), np.maximum(batch, 0),
                           np.zeros((1, 5, 3, 3))], axis=1)
    np.testing.assert_array_equal(got, want)
    assert read_prototxt(target).layer("pad").bottoms == (
        "pad_zeros_before", "r", "pad_zeros_after", "pad_zeros")  # 3 + 4 + (1 + 4)


def _bad_models() -> list[tuple[str, onnx.ModelProto, str]]:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 6, 6])

    def make(nodes, inits, out_shape):
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)
        graph = helper.make_graph(nodes, "bad", [x], [y], inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])

    def init(name, value):
        return numpy_helper.from_array(np.asarray(value), name)

    shape_twice = make(
        [helper.make_node("Shape", ["x"], ["s"], name="shape"),
         helper.make_node("Gather", ["s", "zero"], ["g"], axis=0),
         helper.make_node("Mul", ["g", "two"], ["g2"]),
         helper.make_node("Unsqueeze", ["g2", "axes"], ["u"]),
         helper.make_node("Concat", ["u", "rest"], ["t"], axis=0),
         helper.make_node("Reshape", ["x", "t"], ["y"], name="view")],
        [init("zero", np.array(0, np.int64)), init("two", np.array(2, np.int64)),
         init("axes", np.array([0], np.int64)), init("rest", np.array([-1], np.int64))],
        ["M", 72])
    pad_hw = make([helper.make_node("Pad", ["x", "pads", "value"], ["y"], name="pad_hw",
                                    mode="constant")],
                  [init("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)),
                   init("value", np.array(0.5, np.float32))], ["N", 4, 8, 8])
    offset = make([helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"],
                                    name="odd")],
                  [init("starts", np.array([1, 1], np.int64)),
                   init("ends", np.array([INT64_MAX, INT64_MAX], np.int64)),
                   init("axes", np.array([2, 3], np.int64)),
                   init("steps", np.array([2, 2], np.int64))], ["N", 4, 3, 3])
    return [
        ("shape", shape_twice, "error: node 'view' (Reshape): its target shape 't' changes with "
         "the batch size other than as the batch itself ([2, -1] at batch 1, [4, -1] at batch "
         "2); only a Reshape's target shape may depend on the batch, in the batch's position"),
        ("pad", pad_hw, "error: node 'pad_hw' (Pad): pads [0, 0, 1, 1, 0, 0, 1, 1] (mode "
         "constant, value 0.5): only zero channels before and after the input"),
        ("slice", offset, "error: node 'odd' (Slice): only x[:, :, ::s, ::t] (a strided "
         "subsample of H and W) maps onto Caffe"),
    ]


@pytest.mark.parametrize("name, model, message", _bad_models(), ids=lambda v: v if isinstance(v, str) and len(v) < 8 else "")
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, run_cli, name, model, message):
    onnx.save(model, tmp_path / "bad.onnx")
    result = run_cli("convert", tmp_path / "bad.onnx", "-o", tmp_path / "x" / "deploy.prototxt")
    assert result.code == 2
    assert result.err.startswith(message), result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert not (tmp_path / "x").exists()

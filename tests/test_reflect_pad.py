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


def _pad_model(shape, pads, mode: str, opset: int = 19) -> onnx.ModelProto:
    """x -> Pad(mode) -> a depthwise 3 x 3 convolution (stride 1: every padded value
    reaches the output, which OpenCV and ORT are compared on)."""
    c = shape[1]
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array(pads, np.int64), "p"),
             numpy_helper.from_array(rng.standard_normal((c, 1, 3, 3)).astype(np.float32),
                                     "filt")]
    nodes = [helper.make_node("Pad", ["x", "p"], ["padded"], name="pad", mode=mode),
             helper.make_node("Conv", ["padded", "filt"], ["blur"], name="blur", group=c,
                              kernel_shape=[3, 3])]
    graph = helper.make_graph(nodes, "pad", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(shape))], [helper.make_tensor_value_info(
            "blur", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("mode, pads", [
    ("reflect", [0, 0, 1, 1, 0, 0, 1, 1]),
    ("reflect", [0, 0, 2, 0, 0, 0, 1, 3]),   # asymmetric, H only before, W only after
    ("reflect", [0, 0, 4, 6, 0, 0, 4, 6]),   # the largest reflect pads of a 5 x 7 map
    ("edge", [0, 0, 3, 1, 0, 0, 0, 9]),      # edge pads may exceed the map
    ("wrap", [0, 0, 5, 2, 0, 0, 1, 7]),      # wrap up to the whole axis
])
def test_copy_pads_are_exact(tmp_path, mode, pads):
    shape = (1, 3, 5, 7)
    model = _pad_model(shape, pads, mode)
    graph, _ = import_model(model)
    axes = [a for a in (3, 2) if pads[a] or pads[a + 4]]
    assert [l.param.axis for l in graph.layers if l.type == "Slice"] == axes
    assert [l.param.axis for l in graph.layers if l.type == "Concat"] == axes
    padded = graph.layer("pad").top_shapes[0]
    assert padded == (1, 3, 5 + pads[2] + pads[6], 7 + pads[3] + pads[7])
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    assert ort_output(model, x).shape[2:] == (padded[2] - 2, padded[3] - 2)
    by_opencv, by_onnx, types = caffe_and_back_errors(tmp_path, model, x)
    assert types == {"Slice", "Concat", "Convolution"}
    assert by_opencv <= TOLERANCE and by_onnx <= TOLERANCE


@pytest.mark.parametrize("mode, pads, message", [
    ("reflect", [0, 1, 1, 1, 0, 0, 1, 1],
     r"reflect pads \[0, 1, 1, 1, 0, 0, 1, 1\] of a \[1, 3, 5, 7\] input: only pads of H and "
     r"W of a 4-D input map onto Caffe"),
    ("reflect", [0, 0, 5, 0, 0, 0, 0, 0],
     r"reflect padding of 5 on axis 2 of size 5 takes more than the 4 rows it can copy"),
    ("wrap", [0, 0, 0, 8, 0, 0, 0, 0],
     r"wrap padding of 8 on axis 3 of size 7 takes more than the 7 columns it can copy"),
    ("edge", [0, 0, -1, 0, 0, 0, 0, 0], r"negative pads crop"),
])
def test_what_slice_and_concat_cannot_copy_is_refused_in_one_line(mode, pads, message):
    with pytest.raises(NetgenError, match=r"^node 'pad' \(Pad\): .*" + message) as info:
        import_model(_pad_model((1, 3, 5, 7), pads, mode))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("file", [
    FILES[0], "timm_resnet50_gn.torchscript.onnx",
    *(pytest.param(f, marks=pytest.mark.slow) for f in (FILES[1], "timm_resnet50_gn.dynamo.onnx"))])
def test_counts_off_the_file_are_the_irs(file):
    """validate's check 4: the file's own counts equal the IR's. TorchScript writes the blur
    filter as a Constant node and the pads (and a GroupNorm's Reshape back) from Shape(x);
    the dynamo exporter shares one folded (C, 1, 1) gamma among GroupNorms of equal width."""
    from netgen.arch.counting import count
    from netgen.onnx.count import count_onnx

    model = real_exports.load(file)
    graph, _ = import_model(model)
    ir_counts, file_counts = count(graph), count_onnx(model)
    assert (file_counts.params, file_counts.macs) == (ir_counts.params, ir_counts.macs)
    # timm's 25,557,032 less the BatchNorms folded into biases, plus the 4 blur filters
    expected = 25_557_032 if "gn" in file else 25_557_032 - 26_560 + 9 * (64 + 128 + 256 + 512)
    assert ir_counts.params == expected


def test_analysis_names_each_blur_pool(tmp_path, run_cli):
    """The reflect pad's Slices and Concats and the depthwise filter after them are one
    BlurPool op: diff against resnet50-torchpool names it in the stem and the first block of
    stages 3 to 5, draw boxes it, the two exporters' files are EQUIVALENT."""
    from netgen.analysis.ops import logical_ops

    model = real_exports.load(FILES[0])
    graph, _ = import_model(model)
    ops, _, _ = logical_ops(graph, canonical=True)
    blurs = [op for op in ops if op.type == "BlurPool"]
    assert [(op.attrs["channels"], op.attrs["pads"], op.attrs["stride"]) for op in blurs] == [
        (c, [2, 2], [2, 2]) for c in (64, 128, 256, 512)]
    assert not {"Slice", "Concat", "Pad"} & {op.type for op in ops}
    source = tmp_path / "blur.onnx"
    onnx.save(model, str(source))
    result = run_cli("diff", source, "resnet50-torchpool")
    assert result.code == 1 and "verdict: DIFFERENT (2 differences)" in result.out
    assert ("  - residual branch of the first block of stages 3 to 5 (A /layer2/layer2.0, "
            "/layer3/layer3.0, /layer4/layer4.0; B res3a, res4a, res5a): A Conv ReLU Conv "
            "ReLU BlurPool Conv | B Conv ReLU Conv ReLU Conv") in result.out.splitlines()
    assert ("  - stem: A 7x7 conv 64 /2, ReLU, 3x3 max pool /1, blur pool /2 | B 7x7 conv 64 "
            "/2, ReLU, 3x3 max pool /2") in result.out.splitlines()
    other = tmp_path / "blur_dynamo.onnx"
    onnx.save(real_exports.load(FILES[1]), str(other))
    result = run_cli("diff", source, other)
    assert result.code == 0 and "verdict: EQUIVALENT" in result.out, result.out + result.err
    result = run_cli("draw", source, "-o", tmp_path / "blur.svg")
    assert result.code == 0, result.err
    assert (tmp_path / "blur.svg").read_text().count(">blur pool 3x3, /2<") == 4


def test_a_reflect_pad_of_nothing_is_no_layer():
    graph, _ = import_model(_pad_model((1, 3, 5, 7), [0] * 8, "reflect"))
    assert [layer.type for layer in graph.layers] == ["Convolution"]
    assert graph.layers[0].top_shapes[0] == (1, 3, 3, 5)

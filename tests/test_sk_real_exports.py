"""Real torch.onnx.export files of timm's selective-kernel ResNets (skresnet18, skresnet34),
both exporters, converted with plain `netgen convert`: OpenCV on the Caffe files and ONNX
Runtime on the ONNX written back from them, against ONNX Runtime on the source, relative
error <= 1e-4. timm's SelectiveKernel (two paths, the second dilated, each on half the input
channels; stacked into one 5-D tensor, summed, pooled, a small MLP, a softmax over the paths,
the weighted sum) becomes, through netgen/onnx/normalize/sk.py, Eltwise SUM, Reshape to
N x 2 x C x 1, Softmax axis 1, Slice, Reshapes and the gate products (stock layers only).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest
import real_exports
from caffe_roundtrip import opencv_output, relative_error

from netgen.caffe import proto as caffe_proto
from netgen.caffe.reader import read_prototxt
from netgen.errors import NetgenError
from netgen.jobs.convert import convert
from netgen.onnx.reader import import_model
from netgen.onnx.runtime import create_session
from netgen.runtimes import installed_version, mnn, openvino

TOLERANCE = 1e-4
# model -> (SK units, input scale). skresnet34's refilled weights (BatchNorms that do not
# normalise) grow its activations to ~3000 at the logits and its attention logits to the
# hundreds; at N(0, 1) inputs its dynamo export is then ill-conditioned in float32 itself (one
# ulp more on every input value moves ONNX Runtime's own output by 1.9e-4 of its largest),
# so it is checked on inputs of a tenth the scale, where that is 1e-6.
MODELS = {"timm_skresnet18": (8, 1.0), "timm_skresnet34": (16, 0.1)}
FILES = [pytest.param(r["file"], marks=[pytest.mark.slow] if "34" in r["model"] else [])
         for r in real_exports.manifest() if r["model"] in MODELS]
SK18 = ("timm_skresnet18.torchscript.onnx", "timm_skresnet18.dynamo.onnx")
LABEL = "SK 2 branches (3x3, 3x3 dilation 2)"



def test_every_export_is_here():
    counts = {r["model"]: r["parameters"] for r in real_exports.manifest() if r["model"] in MODELS}
    assert counts == {"timm_skresnet18": 11_958_056, "timm_skresnet34": 22_282_376}
    assert len(FILES) == 4


@pytest.mark.parametrize("file", FILES)
def test_export_converts_exactly(tmp_path, file):
    record = real_exports.record(file)
    units, scale = MODELS[record["model"]]
    model = real_exports.load(file)
    graph, _ = import_model(model)
    types = Counter(layer.type for layer in graph.layers)
    softmax = [l for l in graph.layers if l.type == "Softmax"]
    assert len(softmax) == units and all(l.param.axis == 1 for l in softmax)
    assert [l.top_shapes[0][1:] for l in softmax][:2] == [(2, 64, 1), (2, 64, 1)]
    # per unit: the input split in two (split_input), the softmax split in two
    slices = [l for l in graph.layers if l.type == "Slice"]
    assert len(slices) == 2 * units and all(len(l.tops) == 2 for l in slices)
    dilated = [l for l in graph.layers if l.type == "Convolution" and l.param.dilation != (1, 1)]
    assert len(dilated) == units and all(l.param.dilation == (2, 2) and l.param.pad == (2, 2)
                                         for l in dilated)
    # the weighted sum: one product on its own and one product-and-sum per unit
    assert types["Axpy"] == units and types["Scale"] == units

    source = tmp_path / file
    onnx.save(model, str(source))
    deploy = tmp_path / "caffe" / "deploy.prototxt"
    convert(source, None, deploy)
    net = caffe_proto.parse_net(deploy.read_text(), "deploy")
    assert {layer.type for layer in net.layer} <= {
        "Convolution", "ReLU", "Pooling", "Crop", "Slice", "Eltwise", "Reshape", "Softmax",
        "Flatten", "Scale", "InnerProduct"}
    x = (np.random.default_rng(0).standard_normal(record["input_shape"]) * scale).astype(np.float32)
    want = next(iter(create_session(model, "cpu").run(x).values()))
    assert relative_error(opencv_output(deploy, x).reshape(want.shape), want) <= TOLERANCE

    back = tmp_path / "back.onnx"
    convert(deploy, deploy.with_name("model.caffemodel"), back)
    again = next(iter(create_session(onnx.load(str(back)), "cpu").run(x).values()))
    assert relative_error(again.reshape(want.shape), want) <= TOLERANCE


@pytest.mark.parametrize("file", FILES)
def test_mnn_form_runs_exactly_in_opencv_mnn_and_openvino(tmp_path, run_cli, file):
    """--target mnn writes each gate product as a Deconvolution of ones and Eltwise PROD (MNN's
    converter rejects the two-bottom Scale) and each softmax over the two paths as the
    sigmoids of the logits' differences (Slice, Power -1, Eltwise SUM, Sigmoid; MNN's Softmax does not subtract the largest input:
    it gives 0.70 / 0.30 where both logits are below -87); OpenCV and MNN run those files,
    OpenVINO the ONNX written back from them, all within 1e-4 of ORT on the export; netgen
    reads them back as the same network."""
    record = real_exports.record(file)
    units, scale = MODELS[record["model"]]
    model = real_exports.load(file)
    source = tmp_path / file
    onnx.save(model, str(source))
    deploy = tmp_path / "mnn" / "deploy.prototxt"
    convert(source, None, deploy, caffe_target="mnn")
    net = caffe_proto.parse_net(deploy.read_text(), "deploy")
    kinds = Counter(layer.type for layer in net.layer)
    assert "Scale" not in kinds and "Softmax" not in kinds
    assert kinds["Deconvolution"] == kinds["Sigmoid"] == 2 * units
    negations = [l for l in net.layer if l.type == "Power"]
    assert len(negations) == 2 * units and all(l.power_param.scale == -1 for l in negations)
    x = (np.random.default_rng(1).standard_normal(record["input_shape"]) * scale).astype(np.float32)
    want = next(iter(create_session(model, "cpu").run(x).values()))
    assert relative_error(opencv_output(deploy, x).reshape(want.shape), want) <= TOLERANCE
    result = run_cli("diff", source, deploy.parent)
    assert result.code == 0 and "verdict: EQUIVALENT" in result.out, result.out + result.err

    if installed_version("mnn", "MNN", "_tools") is None \
            or installed_version("openvino", "openvino") is None:
        pytest.skip("MNN and OpenVINO are in the test extra: pip install -e '.[test]'")
    caffe = read_prototxt(deploy)
    top = caffe.outputs[0]
    got = mnn.run_caffe(deploy, deploy.with_name("model.caffemodel"),
                        {caffe.inputs[0].name: x}, [top], tmp_path / "mnn-run")[top]
    assert relative_error(got.reshape(want.shape), want) <= TOLERANCE
    back = tmp_path / "back.onnx"
    convert(deploy, deploy.with_name("model.caffemodel"), back)
    name = onnx.load(str(back)).graph.output[0].name
    got = openvino.run_onnx(back, {caffe.inputs[0].name: x}, [name])[name]
    assert relative_error(got.reshape(want.shape), want) <= TOLERANCE


def test_diff_identify_and_draw_name_the_sk_units(tmp_path, run_cli):
    paths = []
    for file in SK18:
        paths.append(tmp_path / file)
        onnx.save(real_exports.load(file), str(paths[-1]))
    result = run_cli("diff", *paths)
    assert result.code == 0 and "verdict: EQUIVALENT" in result.out, result.out + result.err
    assert "8 basic blocks 2-2-2-2, depth 18 (both)" in result.out
    result = run_cli("diff", paths[0], "resnet18-B-torchpool")
    assert result.code == 1
    assert f"  - selective kernels of all 8 blocks: A {LABEL} | B none" in result.out.splitlines()
    assert "(1 difference)" in result.out
    result = run_cli("identify", paths[1])
    assert result.code == 1
    assert result.out.splitlines()[0] == (f"{paths[1]}: no netgen network; the closest is "
                                          "resnet18-B-torchpool (1 difference)")
    svg = tmp_path / "sk.svg"
    assert run_cli("draw", paths[0], "-o", svg).code == 0
    text = svg.read_text()
    assert text.count(f"{LABEL}, 64<") == 2 and text.count(f"{LABEL}, 512, /2<") == 1


def test_like_maps_weights_across_exporters(tmp_path, run_cli):
    """The TorchScript file's weights on the dynamo file's network: its logits."""
    paths = []
    for file in SK18:
        paths.append(tmp_path / file)
        onnx.save(real_exports.load(file), str(paths[-1]))
    result = run_cli("convert", paths[0], "--like", paths[1], "-o", tmp_path / "like")
    assert result.code == 0, result.err
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224)).astype(np.float32)
    want = next(iter(create_session(onnx.load(str(paths[0])), "cpu").run(x).values()))
    got = next(iter(create_session(onnx.load(str(tmp_path / "like" / "model.onnx")),
                                   "cpu").run(x).values()))
    assert relative_error(got, want) <= TOLERANCE
    got = opencv_output(tmp_path / "like" / "deploy.prototxt", x).reshape(want.shape)
    assert relative_error(got, want) <= TOLERANCE


def _broken(edit, file: str = SK18[0]) -> str:
    model = real_exports.load(file)
    edit({n.name: n for n in model.graph.node})
    with pytest.raises(NetgenError) as info:
        import_model(model)
    message = str(info.value)
    assert "\n" not in message
    return message


def _set(node, name, value):
    for a in node.attribute:
        if a.name == name:
            a.CopyFrom(onnx.helper.make_attribute(name, value))


def test_softmax_over_the_wrong_axis_is_refused():
    message = _broken(lambda n: _set(n["/layer1/layer1.0/conv1/attn/Softmax"], "axis", 2))
    assert message == (
        "node '/layer1/layer1.0/conv1/attn/Softmax' (Softmax): a softmax over axis 2 of "
        "['N', 2, 64, 1, 1] in timm's selective-kernel unit of 2 paths stacked at "
        "'/layer1/layer1.0/conv1/Concat'; only the softmax over the 2 paths (axis 1 of "
        "N x 2 x C x 1 x 1) maps onto Caffe (Softmax with axis 1)")


def test_weighted_sum_keeping_the_paths_axis_is_refused():
    message = _broken(lambda n: _set(n["node_sum_2"], "keepdims", 1), SK18[1])
    assert message == (
        "node 'node_sum_2' (ReduceSum): keepdims=1 in timm's selective-kernel unit of 2 paths "
        "stacked at 'node_stack': the 5-D sum it keeps has no Caffe equivalent; only "
        "keepdims=0 (an N x C x H x W sum) maps")


def _sk_unit(paths: int, split: bool) -> onnx.ModelProto:
    """A selective-kernel unit as timm writes it and torch.onnx.export spells it (opset 17):
    `paths` 3x3 paths of dilation 1, 2, 3 ..., on all 8 input channels or (split) each on
    its share, stacked, summed, pooled, fc_reduce + ReLU, fc_select, the 5-D view, softmax
    over the paths, the weighted sum."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    c, share = 8, 8 // paths if split else 8
    init, nodes, stacked = [], [], []

    def const(name, value):
        init.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    source = ["x"]
    if split:
        sizes = const("sizes", np.full(paths, share, np.int64))
        nodes.append(helper.make_node("Split", ["x", sizes], [f"s{i}" for i in range(paths)],
                                      axis=1))
        source = [f"s{i}" for i in range(paths)]
    const("one", np.array([1], np.int64))
    for i in range(paths):
        w = const(f"w{i}", rng.standard_normal((c, share, 3, 3)).astype(np.float32) * 0.3)
        b = const(f"b{i}", rng.standard_normal(c).astype(np.float32) * 0.1)
        nodes.append(helper.make_node("Conv", [source[i if split else 0], w, b], [f"c{i}"],
                                      kernel_shape=[3, 3], pads=[i + 1] * 4,
                                      dilations=[i + 1] * 2))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        nodes.append(helper.make_node("Unsqueeze", [f"r{i}", "one"], [f"u{i}"]))
        stacked.append(f"u{i}")
    nodes += [
        helper.make_node("Concat", stacked, ["stack"], axis=1),
        helper.make_node("ReduceSum", ["stack", "one"], ["total"], keepdims=0),
        helper.make_node("ReduceMean", ["total"], ["pooled"], axes=[2, 3], keepdims=1),
        helper.make_node("Conv", ["pooled", const("fr", rng.standard_normal((4, c, 1, 1)).astype(
            np.float32)), const("frb", np.zeros(4, np.float32))], ["reduced"]),
        helper.make_node("Relu", ["reduced"], ["act"]),
        helper.make_node("Conv", ["act", const("fs", rng.standard_normal(
            (paths * c, 4, 1, 1)).astype(np.float32))], ["select"]),
        helper.make_node("Reshape", ["select", const("view", np.array([1, paths, c, 1, 1],
                                                                      np.int64))], ["viewed"]),
        helper.make_node("Softmax", ["viewed"], ["weights"], axis=1),
        helper.make_node("Mul", ["stack", "weights"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "one"], ["y"], keepdims=0),
    ]
    graph = helper.make_graph(nodes, "sk", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 8, 6, 6])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, c, 6, 6])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("paths, split", [(3, False), (2, True), (4, True)])
def test_units_of_any_number_of_paths_convert_exactly(tmp_path, paths, split):
    """Not only timm's two: P paths give P gate products (one on its own, P - 1 Axpys), split
    input or not, and the analysis names the unit."""
    from netgen.analysis.ops import logical_ops, sk_text

    model = _sk_unit(paths, split)
    graph, _ = import_model(model)
    ops, _, _ = logical_ops(graph, canonical=True)
    (sk,) = [op for op in ops if op.type == "SK"]
    assert [op.type for op in ops] == ["Input", "SK"]
    dilations = ", ".join(["3x3"] + [f"3x3 dilation {d}" for d in range(2, paths + 1)])
    assert sk_text(sk.attrs) == f"SK {paths} branches ({dilations})"
    assert sk.attrs["split"] == split and sk.attrs["reduced"] == 4
    source = tmp_path / "sk.onnx"
    onnx.save(model, str(source))
    x = np.random.default_rng(0).standard_normal((1, 8, 6, 6)).astype(np.float32)
    want = next(iter(create_session(model, "cpu").run(x).values()))
    for target in ("bvlc", "mnn"):
        deploy = tmp_path / target / "deploy.prototxt"
        convert(source, None, deploy, caffe_target=target)
        assert relative_error(opencv_output(deploy, x).reshape(want.shape), want) <= TOLERANCE
        back = tmp_path / f"{target}.onnx"
        convert(deploy, deploy.with_name("model.caffemodel"), back)
        again = next(iter(create_session(onnx.load(str(back)), "cpu").run(x).values()))
        assert relative_error(again.reshape(want.shape), want) <= TOLERANCE

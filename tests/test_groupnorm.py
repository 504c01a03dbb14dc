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


def _group_norm_model(shape, groups: int, seed: int = 0, eps: float = 1e-3,
                      direct: bool = False) -> onnx.ModelProto:
    """PyTorch's spelling of nn.GroupNorm(groups, C) on a conv output (or, `direct`, an
    InstanceNormalization of the 4-D map itself, groups = C), with trained-looking scale,
    bias, gamma and beta (the exporter's InstanceNormalization scale/bias are 1 and 0;
    other values test the per-group affine)."""
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    inits = [numpy_helper.from_array(rng.standard_normal((c, c, 3, 3)).astype(np.float32)
                                     * 0.3, "w"),
             numpy_helper.from_array(rng.uniform(0.5, 1.5, groups).astype(np.float32), "s"),
             numpy_helper.from_array(rng.normal(0, 0.2, groups).astype(np.float32), "b"),
             numpy_helper.from_array(rng.uniform(0.5, 1.5, (c, 1, 1)).astype(np.float32), "g"),
             numpy_helper.from_array(rng.normal(0, 0.2, (c, 1, 1)).astype(np.float32), "beta"),
             numpy_helper.from_array(np.array([0, groups, -1], np.int64), "to3"),
             numpy_helper.from_array(np.array(shape, np.int64), "back")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    if direct:
        nodes.append(helper.make_node("InstanceNormalization", ["y", "s", "b"], ["n"],
                                      name="norm", epsilon=eps))
    else:
        nodes += [helper.make_node("Reshape", ["y", "to3"], ["y3"], name="to_groups"),
                  helper.make_node("InstanceNormalization", ["y3", "s", "b"], ["n3"],
                                   name="norm", epsilon=eps),
                  helper.make_node("Reshape", ["n3", "back"], ["n"], name="from_groups")]
    nodes += [helper.make_node("Mul", ["n", "g"], ["m"], name="gamma"),
              helper.make_node("Add", ["m", "beta"], ["z"], name="beta"),
              helper.make_node("Relu", ["z"], ["out"], name="relu")]
    graph = helper.make_graph(nodes, "gn", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(shape))], [helper.make_tensor_value_info(
            "out", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("shape, groups, direct", [
    ((1, 8, 5, 6), 4, False), ((2, 6, 7, 3), 3, False), ((1, 6, 4, 5), 6, True)])
def test_group_and_instance_norm_are_exact(tmp_path, shape, groups, direct):
    model = _group_norm_model(shape, groups, direct=direct)
    graph, _ = import_model(model)
    types = [layer.type for layer in graph.layers]
    # the per-group scale and bias (not 1 and 0 here) are one Scale with bias on N x G x L x 1
    assert types.count("MVN") == 1 and types.count("Power") == 1
    assert types.count("Reshape") == 2  # to N x G x L x 1 and back, both spellings
    mvn = graph.layers[types.index("MVN")]
    assert mvn.top_shapes[0][1:] == (groups, shape[1] // groups * shape[2] * shape[3], 1)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32) * 3 + 1
    by_opencv, by_onnx, types = caffe_and_back_errors(tmp_path, model, x)
    assert by_opencv <= TOLERANCE and by_onnx <= TOLERANCE


def test_variance_is_not_mvns(tmp_path):
    """The variance goes through Power (var + eps) ** -0.5, not MVN's sqrt(var) + eps: with
    eps 1 and a map of small variance the two differ by far more than the tolerance."""
    model = _group_norm_model((1, 4, 3, 3), 2, eps=1.0)
    x = np.random.default_rng(2).standard_normal((1, 4, 3, 3)).astype(np.float32) * 0.1
    by_opencv, by_onnx, _ = caffe_and_back_errors(tmp_path, model, x)
    assert by_opencv <= TOLERANCE and by_onnx <= TOLERANCE


def test_mvn_prototxt_round_trip():
    from netgen.arch.shapes import infer
    from netgen.caffe.prototxt import render_deploy
    from netgen.caffe.reader import read_prototxt

    layers = [ir.Layer("mvn", "MVN", ("data",), ("mvn",), ir.MVNParam(eps=1e-3)),
              ir.Layer("mean", "MVN", ("mvn",), ("mean",),
                       ir.MVNParam(normalize_variance=False, across_channels=True))]
    graph = infer("mvn", [ir.Blob("data", (1, 3, 4, 4))], layers)
    text = render_deploy(graph)
    assert "normalize_variance: false" in text and "across_channels: true" in text
    back = read_prototxt(text)
    assert [layer.param for layer in back.layers] == [
        ir.MVNParam(eps=1e-3),
        ir.MVNParam(normalize_variance=False, across_channels=True)]


def _instance_norm(x_shape, scale_input: bool = False) -> onnx.ModelProto:
    c = x_shape[1]
    inits = [numpy_helper.from_array(np.ones(c, np.float32), "s"),
             numpy_helper.from_array(np.zeros(c, np.float32), "b")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))]
    if scale_input:
        inits = inits[1:]
        inputs.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, [c]))
    graph = helper.make_graph(
        [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], name="in1")],
        "in", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("model", [_instance_norm((1, 2, 3, 4, 5)),
                                   _instance_norm((1, 2, 6, 6), scale_input=True)],
                         ids=["5-D", "computed scale"])
def test_instance_norm_refused_in_one_line(model):
    with pytest.raises(NetgenError) as info:
        import_model(model)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("node 'in1' (InstanceNormalization): input of shape")
    assert "Caffe has no InstanceNorm layer" in text


def test_refusal_cli_writes_nothing(tmp_path, run_cli):
    source = tmp_path / "in5d.onnx"
    onnx.save(_instance_norm((1, 2, 3, 4, 5)), str(source))
    result = run_cli("convert", source, "-o", tmp_path / "out" / "deploy.prototxt")
    assert result.code != 0 and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1 and "'in1'" in result.err
    assert not (tmp_path / "out").exists()


def test_analysis_folds_each_group_norm(tmp_path, run_cli):
    """Strict: 53 GroupNorm ops of 32 groups; canonical: each inside its convolution (`norm`),
    as BatchNorm is. diff against resnet50-torchpool: the norms are one finding for all
    blocks and shortcuts, one for the stem; the two exporters' files are EQUIVALENT; draw
    boxes each GroupNorm; identify names a closest network."""
    from netgen.analysis.ops import logical_ops

    model = real_exports.load(FILES[0])
    graph, _ = import_model(model)
    strict, _, _ = logical_ops(graph)
    norms = [op for op in strict if op.type == "GroupNorm"]
    assert len(norms) == 53 and {(op.attrs["groups"], op.attrs["affine"], op.attrs["shift"])
                                 for op in norms} == {(32, True, True)}
    assert not {"MVN", "Power", "Reshape"} & {op.type for op in strict}
    canonical, _, _ = logical_ops(graph, canonical=True)
    convs = [op for op in canonical if op.type == "Conv"]
    assert len(convs) == 53 and {op.attrs.get("norm") for op in convs} == {"GroupNorm 32"}
    assert "GroupNorm" not in {op.type for op in canonical}

    source = tmp_path / "gn.onnx"
    onnx.save(model, str(source))
    result = run_cli("diff", source, "resnet50-torchpool")
    assert result.code == 1 and "verdict: DIFFERENT (3 differences)" in result.out, result.err
    lines = [l for l in result.out.splitlines() if "GroupNorm" in l]
    assert lines == ["  - normalisation of all 16 blocks: A GroupNorm 32 | B BatchNorm",
                     "      Conv /conv1/Conv | conv1: norm A GroupNorm 32 | B BatchNorm"]
    other = tmp_path / "gn_dynamo.onnx"
    onnx.save(real_exports.load(FILES[1]), str(other))
    result = run_cli("diff", source, other)
    assert result.code == 0 and "verdict: EQUIVALENT" in result.out, result.out + result.err
    # netgen's ONNX of the Caffe files (the product's factor reshaped to N x G x 1 x 1)
    deploy = tmp_path / "caffe" / "deploy.prototxt"
    assert run_cli("convert", source, "-o", deploy).code == 0
    back = tmp_path / "back.onnx"
    assert run_cli("convert", deploy, deploy.with_name("model.caffemodel"), "-o", back).code == 0
    for written in (deploy, back):
        result = run_cli("diff", written, source)
        assert result.code == 0 and "verdict: EQUIVALENT" in result.out, result.out + result.err
    result = run_cli("draw", source, "-o", tmp_path / "gn.svg")
    assert result.code == 0, result.err
    # the stem's and three per block (the projections' are drawn on their arcs)
    assert (tmp_path / "gn.svg").read_text().count(">GroupNorm 32<") == 1 + 16 * 3
    result = run_cli("identify", source)
    assert result.code == 1 and "the closest is resnet50-B-stride3x3-noconv1bias-torchpool (2 " \
        "differences)" in result.out, result.out + result.err


def test_mnn_form_broadcasts_the_inverse_deviation_and_reads_back():
    """--target mnn: MNN's converter rejects the two-bottom Scale, so the product is a
    Deconvolution of ones (N x G x 1 x 1 -> N x G x L x 1) and Eltwise PROD; the reader
    folds that back into the same IR (Flatten + Scale axis 0)."""
    from netgen.caffe import prototxt, targets
    from netgen.caffe.reader import read_net

    graph, weights = import_model(_group_norm_model((1, 8, 5, 6), 4))
    realized, realized_weights = targets.realize(graph, weights, "mnn")
    two_bottom = [l for l in realized.layers if l.type == "Scale" and len(l.bottoms) == 2]
    wide = [l for l in realized.layers if l.type == "Deconvolution"]
    assert not two_bottom and "Flatten" not in {l.type for l in realized.layers}
    assert [(l.param.group, l.param.kernel, l.top_shapes[0]) for l in wide] == [
        (4, (60, 1), (1, 4, 60, 1))]
    assert np.all(realized_weights[wide[0].name][0] == 1)
    reading = read_net(prototxt.render_deploy(realized))
    assert [(l.type, l.param, l.top_shapes) for l in reading.graph.layers] == \
        [(l.type, l.param, l.top_shapes) for l in graph.layers]
    assert reading.constants == (wide[0].name,)


def test_like_carries_the_weights_between_the_two_exporters_files(tmp_path, run_cli):
    """convert A --like B: the TorchScript file's convolutions and GroupNorm gammas/betas on
    the dynamo file's layers compute the TorchScript file's logits (ORT and OpenCV); against
    a BatchNorm net the refusal names the GroupNorm."""
    source, other = tmp_path / "ts.onnx", tmp_path / "dynamo.onnx"
    onnx.save(real_exports.load(FILES[0]), str(source))
    onnx.save(real_exports.load(FILES[1]), str(other))
    result = run_cli("convert", source, "--like", "resnet50-B-stride3x3-noconv1bias-torchpool",
                     "-o", tmp_path / "bn")
    assert result.code != 0 and "3 -> 64 channels, GroupNorm 32) there" in result.err
    assert len(result.err.strip().splitlines()) == 1 and not (tmp_path / "bn").exists()
    result = run_cli("convert", source, "--like", other, "-o", tmp_path / "like")
    assert result.code == 0, result.err
    x = np.random.default_rng(3).standard_normal((1, 3, 224, 224)).astype(np.float32)
    want = ort_output(onnx.load(str(source)), x)
    got = ort_output(onnx.load(str(tmp_path / "like" / "model.onnx")), x)
    assert float(np.max(np.abs(got - want)) / np.max(np.abs(want))) <= TOLERANCE

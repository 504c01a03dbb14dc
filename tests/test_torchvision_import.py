"""torchvision exports (issue 10's four shapes) -> Caffe files that run in OpenCV with torch's
numbers, the two Caffe spellings of floor-rounded pooling, and ONNX back from them."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from torchvision_exports import random_input, reference_forward, relative_error, torchvision_resnet

from netgen.arch import ir
from netgen.caffe.reader import read_caffe, read_prototxt
from netgen.errors import NetgenError
from netgen.onnx.export import to_onnx
from netgen.onnx.reader import import_model

cv2 = pytest.importorskip("cv2")

TOLERANCE = 1e-4  # issue 10: relative error at most 1e-4


def opencv_forward(prototxt, caffemodel, batch: np.ndarray) -> np.ndarray:
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setInput(batch)
    return net.forward()


CASES = [
    ("resnet18", "torchscript", {}),
    ("resnet18", "dynamo", {}),
    ("resnet18", "bn", {}),
    ("resnet18", "bn", dict(head="matmul", dropout=True, softmax=True, infer_shapes=True)),
    ("resnet18", "torchscript", dict(head="matmul", softmax=True, output="logits")),
    ("resnet18", "dynamo", dict(dropout=True, infer_shapes=True)),
    ("resnet34", "torchscript", dict(layers=(1, 2, 2, 1))),
    ("resnet50", "torchscript", {}),
    ("resnet50", "dynamo", {}),
    ("resnet50", "bn", dict(head="matmul", softmax=True)),
    ("resnext50_32x4d", "torchscript", dict(layers=(1, 1, 2, 1))),
    ("wide_resnet50_2", "dynamo", dict(layers=(1, 1, 1, 1))),
]


@pytest.mark.parametrize("arch,exporter,kwargs", CASES)
def test_export_converts_to_caffe_that_runs_in_opencv_with_the_exports_numbers(
        tmp_path, run_cli, arch, exporter, kwargs):
    model = torchvision_resnet(arch, exporter, input_size=64, num_classes=100, seed=7, **kwargs)
    onnx.save(model, tmp_path / "export.onnx")
    out = tmp_path / "caffe"  # a missing folder: convert makes it
    result = run_cli("convert", tmp_path / "export.onnx", "-o", out / "deploy.prototxt")
    assert result.code == 0, result.err
    text = (out / "deploy.prototxt").read_text()
    # torchvision's MaxPool (k3 s2 p1, rounding down) in the stock layers both Caffes know
    assert text.count('type: "Crop"') == 1 and "round_mode" not in text
    batch = random_input(model, 2, seed=1)
    want = reference_forward(model, batch)
    softmax_last = kwargs.get("softmax", False)
    # one image at a time: the deploy declares batch 1 (the export's symbolic batch, or its 1)
    got = np.concatenate([opencv_forward(out / "deploy.prototxt", out / "model.caffemodel",
                                         batch[i:i + 1]) for i in range(len(batch))])
    assert got.shape == want.shape
    assert relative_error(got, want) <= TOLERANCE
    if softmax_last:
        assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    # and back: the Caffe files to ONNX, under ONNX Runtime
    result = run_cli("convert", out / "deploy.prototxt", out / "model.caffemodel",
                     "-o", tmp_path / "back.onnx")
    assert result.code == 0, result.err
    back = onnx.load(tmp_path / "back.onnx")
    pools = [n for n in back.graph.node if n.op_type == "MaxPool"]
    assert len(pools) == 1 and helper.get_attribute_value(
        next(a for a in pools[0].attribute if a.name == "ceil_mode")) == 0
    final = back.graph.output[-1].name
    session_out = reference_forward(_only_output(back, final), batch)
    assert relative_error(session_out, want) <= TOLERANCE


def _only_output(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    keep = [o for o in model.graph.output if o.name == name]
    del model.graph.output[:]
    model.graph.output.extend(keep)
    return model


def test_imported_ir_of_each_exporter_shape():
    """What the IR holds: folded convs with a bias, BN + Scale where kept, the floor pool, a
    global average pool for GlobalAveragePool and ReduceMean alike, one InnerProduct."""
    irs = {}
    for exporter, kwargs in (("torchscript", {}), ("dynamo", {}),
                             ("bn", dict(head="matmul", dropout=True))):
        graph, weights = import_model(torchvision_resnet(18, exporter, input_size=64, **kwargs))
        irs[exporter] = graph
        types = [layer.type for layer in graph.layers]
        pool = next(layer for layer in graph.layers if layer.type == "Pooling")
        assert pool.param == ir.PoolingParam("MAX", (3, 3), (2, 2), (1, 1), round_mode="FLOOR")
        assert pool.top_shapes == ((1, 64, 16, 16),)
        head = graph.layers[-2:]
        assert head[0].param == ir.PoolingParam("AVE", global_pooling=True)
        assert head[1].type == "InnerProduct" and head[1].param.bias_term
        assert head[1].top_shapes == ((1, 1000),)
        assert types.count("Eltwise") == 8 and types.count("ReLU") == 17
        convs = [layer for layer in graph.layers if layer.type == "Convolution"]
        assert len(convs) == 20
        if exporter == "bn":
            assert types.count("BatchNorm") == 20 and not any(c.param.bias_term for c in convs)
        else:
            assert "BatchNorm" not in types and all(c.param.bias_term for c in convs)
    assert irs["dynamo"].inputs == (ir.Blob("x", (1, 3, 64, 64)),)
    assert irs["torchscript"].outputs == ("output",) and irs["dynamo"].outputs == ("linear",)


def test_grouped_and_wide_bottlenecks_import_with_torchvisions_widths(tmp_path, run_cli):
    """Issue 12: ResNeXt's grouped 3x3 (Caffe's `group`) and Wide ResNet's doubled width."""
    for arch, width, groups in (("resnext50_32x4d", 128, 32), ("resnext101_64x4d", 256, 64),
                                ("wide_resnet50_2", 128, 1)):
        model = torchvision_resnet(arch, "torchscript", input_size=32, layers=(1, 1, 1, 1))
        graph, _ = import_model(model)
        conv2 = graph.layer("/layer1/layer1.0/conv2/Conv")
        assert conv2.param.group == groups and conv2.param.num_output == width
        assert conv2.blob_shapes[0] == (width, width // groups, 3, 3)
        assert graph.layer("/layer1/layer1.0/conv3/Conv").param.num_output == 256
        onnx.save(model, tmp_path / f"{arch}.onnx")
        result = run_cli("convert", tmp_path / f"{arch}.onnx", "-o", tmp_path / arch / "d.prototxt")
        assert result.code == 0, result.err
        text = (tmp_path / arch / "d.prototxt").read_text()
        assert (f"group: {groups}" in text) == (groups > 1)
        again, _ = read_caffe(tmp_path / arch / "d.prototxt", tmp_path / arch / "d.caffemodel")
        assert again == graph


def test_floor_pool_forms_read_back_to_the_same_ir(tmp_path, run_cli):
    model = torchvision_resnet(18, "torchscript", input_size=64, layers=(1, 1, 1, 1))
    onnx.save(model, tmp_path / "m.onnx")
    graph, _ = import_model(model)
    for form, pools in (("crop", 3), ("round-mode", 2)):
        target = tmp_path / form / "deploy.prototxt"
        result = run_cli("convert", tmp_path / "m.onnx", "-o", target, "--floor-pooling", form)
        assert result.code == 0, result.err
        text = target.read_text()
        assert text.count('type: "Pooling"') == pools
        assert ("round_mode: FLOOR" in text) == (form == "round-mode")
        again, weights = read_caffe(target, target.parent / "model.caffemodel")
        assert again == graph  # the floor pooling, its name and top, whichever form
        got = reference_forward(to_onnx(again, weights), random_input(model, 1))
        assert relative_error(got, reference_forward(model, random_input(model, 1))) <= 1e-6
    assert (tmp_path / "crop" / "model.caffemodel").read_bytes() == \
        (tmp_path / "round-mode" / "model.caffemodel").read_bytes()
    result = run_cli("convert", tmp_path / "m.onnx", "-o", tmp_path / "x" / "deploy.prototxt",
                     "--floor-pooling", "floor")
    assert result.code == 2 and "'floor'" in result.err
    assert not (tmp_path / "x").exists()


def test_round_mode_form_does_not_run_in_opencv(tmp_path):
    """Why the crop form is the default: OpenCV's caffe.proto has no round_mode."""
    from netgen.caffe.caffemodel import caffemodel_bytes
    from netgen.caffe.prototxt import render_deploy

    model = torchvision_resnet(18, "torchscript", input_size=64, layers=(1, 1, 1, 1))
    graph, weights = import_model(model)
    (tmp_path / "d.prototxt").write_text(render_deploy(graph, floor_pool="round-mode"))
    (tmp_path / "m.caffemodel").write_bytes(caffemodel_bytes(graph, weights))
    with pytest.raises(cv2.error):
        opencv_forward(tmp_path / "d.prototxt", tmp_path / "m.caffemodel", random_input(model))


def _pool_model(op, size, kernel, stride, pads, **attrs):
    node = helper.make_node(op, ["x"], ["y"], name="p", kernel_shape=list(kernel),
                            strides=list(stride), pads=list(pads), ceil_mode=0, **attrs)
    graph = helper.make_graph([node], "pool", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, *size])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("op,size,kernel,stride,pads,attrs", [
    ("MaxPool", (112, 112), (3, 3), (2, 2), (1, 1, 1, 1), {}),  # torchvision's stem
    ("MaxPool", (9, 10), (3, 3), (2, 2), (1, 1, 1, 1), {}),  # one axis cropped, not the other
    ("MaxPool", (8, 8), (1, 1), (2, 2), (0, 0, 0, 0), {}),  # kernel 1: Caffe rounds 8 up to 5
    ("MaxPool", (15, 12), (3, 2), (3, 2), (1, 0, 1, 0), {}),
    ("AveragePool", (12, 12), (3, 3), (2, 2), (1, 1, 1, 1), dict(count_include_pad=1)),
    ("AveragePool", (11, 14), (2, 3), (2, 2), (0, 0, 0, 0), {}),
])
def test_crop_form_is_exact_in_opencv(tmp_path, op, size, kernel, stride, pads, attrs):
    """The default form in OpenCV gives ONNX Runtime's numbers for floor pooling."""
    from netgen.caffe.caffemodel import caffemodel_bytes
    from netgen.caffe.prototxt import render_deploy

    model = _pool_model(op, size, kernel, stride, pads, **attrs)
    graph, weights = import_model(model)
    assert graph.layers[0].param.round_mode == "FLOOR"
    (tmp_path / "d.prototxt").write_text(render_deploy(graph))
    (tmp_path / "m.caffemodel").write_bytes(caffemodel_bytes(graph, weights))
    batch = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
    want = reference_forward(model, batch)
    got = opencv_forward(tmp_path / "d.prototxt", tmp_path / "m.caffemodel", batch)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= 1e-6 * np.max(np.abs(want))
    assert read_prototxt(tmp_path / "d.prototxt") == graph


@pytest.mark.parametrize("edit,message", [
    (lambda t: t.replace("offset: 0", "offset: 1"),
     r"layer '/maxpool/MaxPool_floor_crop' \(Crop\): Crop is read only as .* at offsets \[1\]"),
    (lambda t: t.replace("kernel_size: 2\n    stride: 1", "kernel_size: 3\n    stride: 1"),
     r"layer '/maxpool/MaxPool_floor_crop' \(Crop\): .* not such a pair of Pooling layers"),
])
def test_other_crops_are_refused_naming_the_layer(edit, message):
    from netgen.caffe.prototxt import render_deploy

    graph, _ = import_model(torchvision_resnet(18, "torchscript", input_size=64,
                                               layers=(1, 1, 1, 1)))
    with pytest.raises(NetgenError, match=message):
        read_prototxt(edit(render_deploy(graph)))


def test_an_attribute_without_meaning_exits_2_in_one_line_writing_nothing(tmp_path, run_cli):
    model = torchvision_resnet(18, "torchscript", input_size=64, layers=(1, 1, 1, 1))
    pool = next(n for n in model.graph.node if n.op_type == "MaxPool")
    pool.attribute.append(helper.make_attribute("storage_mode", 1))  # not an ONNX attribute
    onnx.save(model, tmp_path / "bad.onnx")
    result = run_cli("convert", tmp_path / "bad.onnx", "-o", tmp_path / "out" / "deploy.prototxt")
    assert result.code == 2
    assert result.err.strip() == (
        "error: node '/maxpool/MaxPool' (MaxPool): attribute 'storage_mode' has no meaning in "
        "netgen's IR (the MaxPool attributes it reads: auto_pad, ceil_mode, dilations, "
        "kernel_shape, pads, strides, storage_order)")
    assert not (tmp_path / "out").exists()


def test_conversions_are_byte_identical_across_runs(tmp_path, run_cli):
    onnx.save(torchvision_resnet(18, "dynamo", input_size=64, layers=(1, 1, 1, 1)),
              tmp_path / "m.onnx")
    for run in ("a", "b"):
        result = run_cli("convert", tmp_path / "m.onnx", "-o", tmp_path / run / "deploy.prototxt")
        assert result.code == 0, result.err
    for file in ("deploy.prototxt", "model.caffemodel"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()

"""`netgen convert MODEL --like NAME -o DIR`: a file's weights on the network netgen builds."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from torchvision_exports import (random_input, reference_forward, relative_error, softmax,
                                 torchvision_resnet)

from netgen.arch.spec import spec_from_name
from netgen.caffe.reader import read_caffe
from netgen.jobs.build import write_build
from netgen.onnx.runtime import create_session

cv2 = pytest.importorskip("cv2")

TOLERANCE = 1e-4


def _probabilities(model, batch):
    want = reference_forward(model, batch)
    last = model.graph.node[-1].op_type
    return want if last == "Softmax" else softmax(want)


# (NAME, fixture): torchvision's own stem pools 3x3/2 with pad 1 rounding down (netgen's
# -torchpool); PyTorch ports of MSRA's models keep Caffe's pool1 (stem="caffe", the paper's
# names). v1.5 = stride on the 3x3 (netgen's -stride3x3); MSRA's ResNet-50 has a conv1 bias.
CASES = [
    ("resnet18-B-torchpool-input64", dict(arch=18, exporter="torchscript")),
    ("resnet18-B-torchpool-input64", dict(arch=18, exporter="bn", head="matmul", dropout=True,
                                          softmax=True)),
    ("resnet50-B-stride3x3-noconv1bias-torchpool-input64", dict(arch=50, exporter="dynamo")),
    ("resnet50-B-stride3x3-noconv1bias-torchpool-input64", dict(arch=50, exporter="torchscript")),
    ("resnet50-B-stride3x3-noconv1bias-torchpool-input64", dict(arch=50, exporter="bn")),
    ("resnet18-B-input64", dict(arch=18, exporter="torchscript", stem="caffe")),
    ("resnet50-B-input64", dict(arch=50, exporter="bn", stem="caffe", stride_in="1x1",
                                conv1_bias=True)),
]


@pytest.mark.parametrize("name,fixture", CASES)
def test_like_writes_the_builds_deploy_with_the_files_weights(tmp_path, run_cli, name, fixture):
    model = torchvision_resnet(input_size=64, seed=3, **fixture)
    onnx.save(model, tmp_path / "export.onnx")
    result = run_cli("convert", tmp_path / "export.onnx", "--like", name, "-o", tmp_path / "out",
                     "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["direction"] == "like" and report["like"] == name
    convs = sum(1 for n in model.graph.node if n.op_type == "Conv")
    assert report["convolutions"] == {"kept" if fixture["exporter"] == "bn" else "unfolded": convs}
    write_build(spec_from_name(name), tmp_path / "built", onnx=False)
    out = tmp_path / "out"
    assert (out / "deploy.prototxt").read_bytes() == (tmp_path / "built" / "deploy.prototxt").read_bytes()
    batch = random_input(model, 1, seed=5)
    want = _probabilities(model, batch)
    net = cv2.dnn.readNetFromCaffe(str(out / "deploy.prototxt"), str(out / "model.caffemodel"))
    net.setInput(batch)
    assert relative_error(net.forward(), want) <= TOLERANCE
    got = dict(zip(["fc1000", "prob"], create_session(out / "model.onnx", device="cpu").run_list(batch)))
    assert relative_error(got["prob"], want) <= TOLERANCE
    graph, weights = read_caffe(out / "deploy.prototxt", out / "model.caffemodel")
    mean, var, factor = weights["bn_conv1"]
    assert factor.tolist() == [1.0]
    if fixture["exporter"] == "bn":  # BatchNorm kept: its statistics carried over
        source = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        assert np.array_equal(mean, source["bn1.running_mean"])
        if fixture.get("conv1_bias"):  # resnet50-B has conv1's bias too
            assert np.array_equal(weights["conv1"][1], source["conv1.bias"])
        assert np.array_equal(var, source["bn1.running_var"])
    else:  # folded: BatchNorm exactly the identity in float32, the fold in the Scale
        assert not mean.any()
        assert np.all(np.float32(1e-5) + var == np.float32(1))
        folded = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        conv1 = next(n for n in model.graph.node if n.op_type == "Conv")
        assert np.array_equal(weights["conv1"][0], folded[conv1.input[1]])
        assert np.array_equal(weights["scale_conv1"][1], folded[conv1.input[2]])
        assert not (weights["scale_conv1"][0] - 1).any()


@pytest.mark.parametrize("name,arch,exporter,stem", [
    ("resnext50-32x4d-input64", "resnext50_32x4d", "torchscript", "torchvision"),
    ("resnext50-32x4d-input64", "resnext50_32x4d", "dynamo", "torchvision"),
    ("resnext50-32x4d-input64", "resnext50_32x4d", "bn", "torchvision"),
    ("wide-resnet50-2-input64", "wide_resnet50_2", "bn", "torchvision"),
    ("resnext50-32x4d-msrapool-input64", "resnext50_32x4d", "dynamo", "caffe"),
])
def test_like_maps_grouped_and_wide_nets(tmp_path, run_cli, name, arch, exporter, stem):
    """Issue 12: the family's names take the same generic mapping; their default stem is
    torchvision's (they are torchvision's models), -msrapool for a port with Caffe's pool1."""
    model = torchvision_resnet(arch, exporter, input_size=64, stem=stem, seed=4)
    onnx.save(model, tmp_path / "export.onnx")
    result = run_cli("convert", tmp_path / "export.onnx", "--like", name, "-o", tmp_path / "out")
    assert result.code == 0, result.err
    write_build(spec_from_name(name), tmp_path / "built", onnx=False)
    assert (tmp_path / "out" / "deploy.prototxt").read_bytes() == \
        (tmp_path / "built" / "deploy.prototxt").read_bytes()
    batch = random_input(model, 1, seed=6)
    want = _probabilities(model, batch)
    net = cv2.dnn.readNetFromCaffe(str(tmp_path / "out" / "deploy.prototxt"),
                                   str(tmp_path / "out" / "model.caffemodel"))
    net.setInput(batch)
    assert relative_error(net.forward(), want) <= TOLERANCE
    got = create_session(tmp_path / "out" / "model.onnx", device="cpu").run_list(batch)[-1]
    assert relative_error(got, want) <= TOLERANCE
    # a ResNeXt is not a ResNet-50: groups and widths named
    if arch.startswith("resnext") and stem == "torchvision":
        result = run_cli("convert", tmp_path / "export.onnx", "--like",
                         "resnet50-B-stride3x3-noconv1bias-torchpool-input64", "-o",
                         tmp_path / "r50")
        assert result.code == 2
        conv = "'/layer1/layer1.0/conv1/Conv'" if exporter == "torchscript" else "'"
        assert f"64 -> 64 channels); the file has {conv}" in result.err
        assert "(1x1 convolution, stride 1, pad 0, 64 -> 128 channels) there" in result.err


@pytest.mark.parametrize("name,fixture,message", [
    # torchvision's own stem pools with pad 1 rounding down: other windows than MSRA's; the
    # message names the name that fits
    ("resnet18-B-input64", dict(arch=18, exporter="torchscript"),
     r"not resnet18-B-input64's architecture: resnet18-B-input64 has 'pool1' \(MAX pooling "
     r"3x3, stride 2, pad 0, rounding up\); the file has '/maxpool/MaxPool' \(MAX pooling 3x3, "
     r"stride 2, pad 1, rounding down\) there: the file pools like torchvision's stem \(pad 1, "
     r"rounding down\): use --like resnet18-B-torchpool-input64$"),
    ("resnet50-B-stride3x3-noconv1bias-torchpool-input64",
     dict(arch=50, exporter="dynamo", stem="caffe"),
     r"has 'pool1' \(MAX pooling 3x3, stride 2, pad 1, rounding down\); the file has "
     r"'node_MaxPool_\d+' \(MAX pooling 3x3, stride 2, pad 0, rounding up\) there: the file "
     r"pools like MSRA's stem \(pad 0, rounding up\): use --like "
     r"resnet50-B-stride3x3-noconv1bias-input64$"),
    ("resnext50-32x4d-input64", dict(arch="resnext50_32x4d", exporter="bn", stem="caffe"),
     r"use --like resnext50-32x4d-msrapool-input64$"),
    ("resnet50-B-input64", dict(arch=50, exporter="dynamo", stem="caffe"),
     r"resnet50-B-input64 has 'res3a_branch2a' \(1x1 convolution, stride 2, pad 0, 256 -> 128 "
     r"channels\); the file has 'node_Conv_\d+' \(1x1 convolution, stride 1, pad 0, 256 -> 128"),
    ("resnet34-B-input64", dict(arch=18, exporter="torchscript", stem="caffe"),
     r"resnet34-B-input64 has 'res2c_branch2a' \(3x3 convolution, stride 1, pad 1, 64 -> 64 "
     r"channels\); the file has '/layer2/layer2.0/conv1/Conv' \(3x3 convolution, stride 2"),
    ("resnet18-B", dict(arch=18, exporter="torchscript", stem="caffe"),
     r"resnet18-B has the input of shape \[3, 224, 224\]; the file has the input of shape "
     r"\[3, 64, 64\] there \(a name ending in -input64 builds for that size\)"),
    ("resnet18-A-input64", dict(arch=18, exporter="torchscript", stem="caffe"),
     r"resnet18-A-input64 has 'res3a_branch1_sub'"),
])
def test_other_architectures_exit_2_naming_the_first_difference(tmp_path, run_cli, name,
                                                                 fixture, message):
    import re

    onnx.save(torchvision_resnet(input_size=64, **fixture), tmp_path / "export.onnx")
    result = run_cli("convert", tmp_path / "export.onnx", "--like", name, "-o", tmp_path / "out")
    assert result.code == 2 and re.search(message, result.err), result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_like_refuses_bad_folders_and_names(tmp_path, run_cli):
    onnx.save(torchvision_resnet(18, input_size=64, stem="caffe", layers=(2, 2, 2, 2)),
              tmp_path / "e.onnx")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = run_cli("convert", tmp_path / "e.onnx", "--like", "resnet18-B-input64", "-o",
                     tmp_path / "full")
    assert result.code == 2 and "already exists and is not empty; use --force" in result.err
    result = run_cli("convert", tmp_path / "e.onnx", "--like", "resnet18-B-input64", "-o",
                     tmp_path / "full", "--force")
    assert result.code == 0, result.err
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == [
        "deploy.prototxt", "keep.txt", "model.caffemodel", "model.onnx"]
    result = run_cli("convert", tmp_path / "e.onnx", "--like", "resnet18-Q", "-o", tmp_path / "q")
    assert result.code == 2 and "'resnet18-Q' is neither a file nor a network name" in result.err
    result = run_cli("convert", tmp_path / "e.onnx", "--like", "resnet18-B-input64", "-o",
                     tmp_path / "x.prototxt")
    assert result.code == 2 and "with --like the output is a folder" in result.err
    assert not (tmp_path / "q").exists()
    result = run_cli("convert", tmp_path / "e.onnx", "--like", "resnet18-B-input64", "-o",
                     tmp_path / "q", "--floor-pooling", "round-mode")
    assert result.code == 2 and "--floor-pooling does not apply with --like" in result.err
    result = run_cli("convert", tmp_path / "e.onnx", "--like", "resnet18-B-input64", "-o",
                     tmp_path / "il", "--input-layer")
    assert result.code == 0, result.err
    write_build(spec_from_name("resnet18-B-input64"), tmp_path / "b", onnx=False,
                legacy_input=False)
    assert (tmp_path / "il" / "deploy.prototxt").read_bytes() == \
        (tmp_path / "b" / "deploy.prototxt").read_bytes()
    assert not (tmp_path / "q").exists()


def test_benchmark_section_measures_resnet152_conversion():
    from netgen.jobs import benchmarks

    assert "Converting a torchvision ResNet-152 export" in [s.title for s in benchmarks.SECTIONS]
    fixtures = benchmarks._torchvision_fixtures()
    assert fixtures is not None and fixtures.ARCHS["resnet152"][1] == (3, 8, 36, 3)


def test_like_of_a_caffe_build_gives_back_its_weights_byte_for_byte(tmp_path, run_cli):
    """A prototxt + caffemodel input (here netgen's own MSRA-style files, conv1 bias and
    BatchNorm kept) maps onto the same name without changing a bit."""
    name = "resnet50-B-input64"
    write_build(spec_from_name(name), tmp_path / "net", weights=True, seed=9)
    result = run_cli("convert", tmp_path / "net" / "deploy.prototxt",
                     tmp_path / "net" / "model.caffemodel", "--like", name, "-o", tmp_path / "out")
    assert result.code == 0, result.err
    for file in ("deploy.prototxt", "model.caffemodel", "model.onnx"):
        assert (tmp_path / "out" / file).read_bytes() == (tmp_path / "net" / file).read_bytes(), file
    result = run_cli("convert", tmp_path / "net" / "deploy.prototxt", "--like", name, "-o",
                     tmp_path / "none")
    assert result.code == 2 and "give its caffemodel too" in result.err

"""Squeeze-and-excitation and ResNet-C/D through the analysis every job shares: identify names
timm's and the PyTorch CIFAR code's real exports, diff says what differs in one line each (SE
present or not and its widths' rule, the deep stem, the pooled projection), draw shows the SE
unit and the pooled shortcut, and convert --like carries the SE weights (numbers checked in
OpenCV against ONNX Runtime on the source).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import real_exports

TIMM = {"timm_seresnet18": "seresnet18", "timm_seresnet50": "seresnet50",
        "timm_seresnext50_32x4d": "seresnext50-32x4d", "timm_resnet18d": "resnet18d",
        "timm_resnet26d": "resnet26d", "timm_resnet50d": "resnet50d", "timm_resnet50c": "resnet50c",
        "kuangliu_senet18": "cifar10-preseresnet18-imagenetstages-stembn-nofinalbn"}


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("stem, name", sorted(TIMM.items()))
def test_identify_names_timms_and_the_cifar_codes_exports(tmp_path, run_cli, stem, name,
                                                          exporter):
    file = f"{stem}.{exporter}.onnx"
    onnx.save(real_exports.load(file), tmp_path / file)
    result = run_cli("identify", tmp_path / file, "--json")
    assert result.code == 0, result.out + result.err
    data = json.loads(result.out)
    assert data["name"] == name and data["findings"] == []


def _findings(run_cli, a: str, b: str) -> list[str]:
    result = run_cli("diff", a, b)
    assert result.code == 1, result.err
    return [line[4:] for line in result.out.splitlines() if line.startswith("  - ")]


def test_diff_names_se_in_one_line(run_cli):
    assert _findings(run_cli, "seresnet18", "resnet18-B-torchpool") == [
        "squeeze-and-excitation of all 8 blocks: A SE 64 -> 8, 128 -> 8, 256 -> 16, 512 -> 32 "
        "(C / 16 rounded to a multiple of 8, timm's) | B none"]
    assert _findings(run_cli, "seresnet18", "seresnet18-sefloor") == [
        "squeeze-and-excitation of every block of stage 2 (res2a, res2b): A SE 64 -> 8 "
        "(C / 16 rounded to a multiple of 8, timm's) | B SE 64 -> 4 (C // 16)"]
    assert _findings(run_cli, "cifar10-seresnet18-imagenetstages",
                     "cifar10-resnet18-imagenetstages")[0].endswith(
        "A SE 64 -> 4, 128 -> 8, 256 -> 16, 512 -> 32 (C // 16) | B none")


def test_diff_names_the_deep_stem_and_the_pooled_projection(run_cli):
    stem = _findings(run_cli, "resnet50c", "resnet50-B-stride3x3-noconv1bias-torchpool")
    assert stem == ["stem: A 3x3 conv 32 /2, ReLU, 3x3 conv 32, ReLU, 3x3 conv 64, ReLU, "
                    "3x3 max pool /2 | B 7x7 conv 64 /2, ReLU, 3x3 max pool /2"]
    result = run_cli("diff", "resnet50d", "resnet50c")
    assert result.code == 1
    found = [line for line in result.out.splitlines() if line.startswith("  - ")]
    assert found == ["  - shortcuts of the first block of stages 3 to 5 (res3a, res4a, res5a): "
                     "A pooled-projection | B projection"]
    assert ("res3a: A pooled projection (2x2 avg pool /2, 1x1 conv, 512 channels, stride 1) "
            "| B projection (1x1 conv, 512 channels, stride 2)") in result.out


def test_draw_shows_the_se_unit_and_the_pooled_shortcut(tmp_path, run_cli):
    result = run_cli("draw", "seresnet18", "resnet18d", "-o", tmp_path / "x.svg")
    assert result.code == 0, result.err
    root = ET.parse(tmp_path / "x.svg").getroot()
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert texts.count("SE, 64 -> 8") == 2 and texts.count("SE, 512 -> 32") == 2
    assert texts.count("avg") == 3  # resnet18d's three pooled projections
    assert texts.count("2x2 avg pool /2") == 0  # the pooling is the shortcut's, not a box


@pytest.mark.parametrize("file, name, size", [
    ("timm_seresnet18.torchscript.onnx", "seresnet18", 224),
    ("kuangliu_senet18.dynamo.onnx", "cifar10-preseresnet18-imagenetstages-stembn-nofinalbn", 32),
    ("timm_resnet26d.dynamo.onnx", "resnet26d", 224),
    # the PyTorch CIFAR code's PreActResNet18 (no final BN-ReLU) and ResNeXt29 (1x1 conv1)
    ("kuangliu_preactresnet18.torchscript.onnx",
     "cifar10-preresnet18-imagenetstages-nofinalbn", 32),
    ("kuangliu_resnext29_2x64d.dynamo.onnx", "cifar10-resnext29-2x64d-stem1x1", 32)])
def test_convert_like_carries_se_and_pooled_projections(tmp_path, run_cli, file, name, size):
    source = tmp_path / file
    onnx.save(real_exports.load(file), source)
    result = run_cli("convert", source, "--like", name, "-o", tmp_path / "out")
    assert result.code == 0, result.err
    batch = np.random.default_rng(5).standard_normal((1, 3, size, size)).astype(np.float32)
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: batch})[0]
    want = np.exp(logits - logits.max())
    want /= want.sum()
    net = cv2.dnn.readNetFromCaffe(str(tmp_path / "out" / "deploy.prototxt"),
                                   str(tmp_path / "out" / "model.caffemodel"))
    net.setInput(batch)
    got = net.forward()
    assert np.abs(got - want).max() / np.abs(want).max() <= 1e-4

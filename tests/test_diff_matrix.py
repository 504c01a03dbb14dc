"""`diff` over every pair of a varied set of networks: a report and exit 0 or 1, never a
traceback.

Two of netgen's own names, one pre-activation and one not, once ended in a TypeError: the
pairs one thinks of are not enough, so every pair of the set (netgen's names, torchvision-
shaped exports, real torch exports of hand-written code) is compared, the text and JSON
reports are rendered, and each verdict is checked against what is
known of the pair: a network against itself and against another spelling of itself is
EQUIVALENT, everything else DIFFERENT.
"""

from __future__ import annotations

import itertools
import json

import onnx
import pytest

import real_exports

from netgen.jobs.diff import compare, format_text, load_side
from torchvision_exports import torchvision_resnet

NAMES = ["resnet18-A", "resnet18-B", "resnet18-B-torchpool", "resnet34-C", "resnet50-B",
         "resnet50-B-stride3x3-noconv1bias-torchpool", "resnet101-B", "plain18", "plain34",
         "preresnet18", "preresnet50", "resnext50-32x4d", "wide-resnet50-2",
         "cifar10-resnet20-A", "cifar10-resnet56-B", "cifar10-plain20", "cifar10-preresnet20",
         "cifar10-preresnet164", "seresnet18", "seresnet50-stride1x1-msrapool", "resnet26d",
         "resnet50c", "resnet18d", "cifar10-resnet18-imagenetstages",
         "cifar10-preresnet18-imagenetstages-nofinalbn",
         "cifar10-preseresnet18-imagenetstages-stembn-nofinalbn",
         "cifar10-resnext29-2x64d-stem1x1", "iresnet18"]
# Exports of torchvision's models (tests/torchvision_exports.py): file -> the name it is.
EXPORTS = {
    "tv-resnet18.onnx": (dict(arch=18, exporter="torchscript"), "resnet18-B-torchpool"),
    "tv-resnet50-dynamo.onnx": (dict(arch=50, exporter="dynamo"),
                                "resnet50-B-stride3x3-noconv1bias-torchpool"),
    "tv-resnext50-bn.onnx": (dict(arch="resnext50_32x4d", exporter="bn"), "resnext50-32x4d"),
}
# Real torch exports (tests/fixtures/exports/): file -> the name it is (None: no netgen name).
REAL = {"cifar_resnet20.torchscript.onnx": "cifar10-resnet20-A",
        "cifar_resnet20.dynamo.onnx": "cifar10-resnet20-A",
        "kuangliu_resnet18.torchscript.onnx": "cifar10-resnet18-imagenetstages",
        "kuangliu_preactresnet18.dynamo.onnx": "cifar10-preresnet18-imagenetstages-nofinalbn",
        "kuangliu_resnext29_2x64d.torchscript.onnx": "cifar10-resnext29-2x64d-stem1x1",
        "kuangliu_senet18.torchscript.onnx": "cifar10-preseresnet18-imagenetstages-stembn-nofinalbn",
        "timm_seresnet18.dynamo.onnx": "seresnet18", "timm_resnet26d.torchscript.onnx": "resnet26d",
        "timm_resnet50c.dynamo.onnx": "resnet50c",
        "insightface_iresnet18.dynamo.onnx": "iresnet18"}


@pytest.fixture(scope="module")
def sides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("matrix")
    loaded = {name: load_side(name) for name in NAMES}
    for file, (kwargs, _) in EXPORTS.items():
        onnx.save(torchvision_resnet(**kwargs), folder / file)
        loaded[file] = load_side(str(folder / file))
    for file in REAL:
        onnx.save(real_exports.load(file), folder / file)
        loaded[file] = load_side(str(folder / file))
    return loaded


def _same_network(a: str, b: str) -> bool:
    def name(x: str) -> str:
        if x in EXPORTS:
            return EXPORTS[x][1]
        return REAL[x] or x if x in REAL else x
    return name(a) == name(b)


def test_every_pair_gives_a_report_and_the_right_verdict(sides):
    labels = list(sides)
    pairs = list(itertools.combinations(labels, 2)) + [(x, x) for x in labels]
    assert len(pairs) == 41 * 40 // 2 + 41
    wrong = []
    for a, b in pairs:
        result = compare(sides[a], sides[b])
        text = format_text(result)
        data = json.loads(json.dumps(result.to_json()))
        assert "verdict: " in text and data["equivalent"] == result.equivalent
        if result.equivalent != _same_network(a, b):
            wrong.append(f"{a} vs {b}: {'EQUIVALENT' if result.equivalent else 'DIFFERENT'}")
        if not result.equivalent:
            assert result.findings, (a, b)
            assert all(f["text"] for f in result.findings), (a, b)
    assert wrong == []


@pytest.mark.parametrize("a, b", [("resnet18-A", "preresnet18"), ("preresnet50", "resnet50-B"),
                                  ("cifar10-preresnet164", "cifar10-resnet20-A"),
                                  ("plain34", "preresnet18")])
def test_the_command_reports_pre_against_post_activation(run_cli, a, b):
    result = run_cli("diff", a, b)
    assert result.code == 1, result.err
    assert "Traceback" not in result.err and result.err == ""
    assert "verdict: DIFFERENT" in result.out


def test_pre_against_post_activation_is_one_wiring_finding(run_cli):
    """The wiring is one line; the BatchNorm positions it implies are not repeated per conv."""
    result = run_cli("diff", "resnet50-B-stride3x3-noconv1bias-torchpool", "preresnet50")
    assert result.code == 1
    findings = [line for line in result.out.splitlines() if line.startswith("  - ")]
    assert findings == ["  - wiring of all 16 blocks: A post-activation (conv-BN-ReLU, a ReLU "
                        "after the sum) | B pre-activation (BN-ReLU-conv, nothing after the sum)"]

"""`netgen summary FILE`: stages and blocks told by the file's topology, not its names.

An export's layer names (/layer1/..., a dynamo export's node_conv2d_3, Keras's conv2_block1_1)
do not say where the stem ends or which stage a layer is in, and no layer names count
blocks. The reference here is computed another way: the builder's own stage labels and
block counts for every listed name (summary.json), against the topology's labels of the
same network read back from its deploy.prototxt and from its ONNX file.
"""

from __future__ import annotations

import json
import re

import onnx
import pytest

import keras_exports
import mxnet_exports
import real_exports
from netgen.arch.builder import build
from netgen.arch.spec import spec_from_name
from netgen.caffe import prototxt
from netgen.jobs.build import BuildOptions, file_summary, render_files, summary
from netgen.jobs.network import load_network
from netgen.jobs.paper import family_specs, imagenet_stages_specs, paper_specs


def _rows(info: dict) -> list[tuple]:
    return [(s["stage"], tuple(s["output_size"]), s["blocks"], s["parameters"],
             s["multiply_adds"]) for s in info["stages"]]


# every name `netgen list` prints but the plain nets (no block for a topology to find)
RESIDUAL = [spec.name for specs in (paper_specs, family_specs, imagenet_stages_specs)
            for spec in specs() if spec.shortcut is not None]


@pytest.mark.parametrize("name", RESIDUAL)
def test_a_deploy_file_summarises_as_its_build(name, tmp_path):
    spec = spec_from_name(name)
    graph = build(spec)
    path = tmp_path / "deploy.prototxt"
    path.write_text(prototxt.render_deploy(graph, True))
    assert _rows(file_summary(load_network(path).graph)) == _rows(summary(spec, graph))


@pytest.mark.parametrize("name", ["cifar10-resnet20-A", "cifar10-preresnet20", "resnet18-A",
                                  "preresnet18", "seresnet18", "resnet18d",
                                  "cifar10-resnet18-imagenetstages"])
def test_an_onnx_build_summarises_as_its_build(name, tmp_path):
    spec = spec_from_name(name)
    path = tmp_path / "model.onnx"
    path.write_bytes(render_files(spec, BuildOptions())["model.onnx"])
    info = file_summary(load_network(path).graph)
    assert _rows(info) == _rows(summary(spec, build(spec)))


def test_plain_networks_keep_the_stages_their_names_tell(tmp_path):
    """No residual block, no topology to read: MSRA-style names still tell the stages."""
    spec = spec_from_name("plain18")
    graph = build(spec)
    path = tmp_path / "deploy.prototxt"
    path.write_text(prototxt.render_deploy(graph, True))
    rows = _rows(file_summary(load_network(path).graph))
    assert [r[0] for r in rows] == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "head"]
    assert [r[3:] for r in rows] == [r[3:] for r in _rows(summary(spec, graph))]


def _export_rows(loader, name: str, tmp_path) -> list[tuple]:
    path = tmp_path / "file.onnx"
    onnx.save(loader(name), path)
    return _rows(file_summary(load_network(path).graph))


def test_both_exporters_of_a_model_summarise_alike(tmp_path):
    """The TorchScript export names its layers /layer2/layer2.0/conv1, the dynamo export
    node_conv2d_7: the same stages either way."""
    for model in ("cifar_resnet20", "kuangliu_preactresnet18", "timm_seresnet50",
                  "timm_resnet50d", "kuangliu_resnext29_2x64d"):
        rows = _export_rows(real_exports.load, f"{model}.torchscript.onnx", tmp_path)
        assert rows == _export_rows(real_exports.load, f"{model}.dynamo.onnx", tmp_path)
        assert rows[0][0] == "conv1" and rows[-1][0] == "head"


def test_the_cifar_export_has_the_papers_stages(tmp_path):
    """The common reproduction of ResNet-20: 3 blocks a stage at 32, 16, 8 pixels, each
    stage's multiply-adds those of netgen's network (its BN is not a Scale: parameters
    differ in representation only)."""
    rows = _export_rows(real_exports.load, "cifar_resnet20.dynamo.onnx", tmp_path)
    spec = spec_from_name("cifar10-resnet20-A")
    netgen = _rows(summary(spec, build(spec)))
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [(r[0], r[1], r[2], r[4]) for r in netgen]
    assert [r[2] for r in rows] == [0, 3, 3, 3, 0]


@pytest.mark.parametrize("loader, name, blocks", [
    (keras_exports.load, "ResNet50", [3, 4, 6, 3]),
    (keras_exports.load, "ResNet50V2", [3, 4, 6, 3]),
    (keras_exports.load, "ResNet50-tf", [3, 4, 6, 3]),
    (mxnet_exports.load, "resnet18_v1", [2, 2, 2, 2]),
    (mxnet_exports.load, "resnet18_v2", [2, 2, 2, 2]),
    (mxnet_exports.load, "resnet50_v1", [3, 4, 6, 3])])
def test_keras_and_mxnet_exports_get_stages_and_blocks(loader, name, blocks, tmp_path):
    rows = _export_rows(loader, name, tmp_path)
    assert [r[0] for r in rows] == ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x", "head"]
    assert [r[2] for r in rows[1:-1]] == blocks
    assert [r[1][0] for r in rows[1:-1]] == [64 * (4 if blocks[0] == 3 else 1) * 2 ** i
                                           for i in range(4)]


def test_the_command_prints_the_stages_of_an_export(run_cli, tmp_path):
    path = tmp_path / "r20.onnx"
    onnx.save(real_exports.load("cifar_resnet20.dynamo.onnx"), path)
    result = run_cli("summary", path)
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "do not tell the stages" not in lines[0]
    assert [line.split()[0] for line in lines[2:-1]] == ["conv1", "conv2_x", "conv3_x",
                                                         "conv4_x", "head"]
    assert [line.split()[3] for line in lines[3:6]] == ["3", "3", "3"]
    info = json.loads(run_cli("summary", path, "--json").out)
    assert [s["blocks"] for s in info["stages"]] == [0, 3, 3, 3, 0]


def test_a_plain_network_without_telling_names_says_so(run_cli, tmp_path):
    graph = build(spec_from_name("cifar10-plain20"))
    path = tmp_path / "deploy.prototxt"
    text = prototxt.render_deploy(graph, True)
    path.write_text(re.sub(r'"(res|bn|scale)(\d)', r'"\1_\2', text))  # bn_2a_branch2a
    result = run_cli("summary", path)
    assert result.code == 0, result.err
    assert result.out.splitlines()[0].endswith(
        "; it has no residual blocks and its layer names do not tell the stages (MSRA's "
        "res2a..., PyTorch's layer1...)")
    assert result.out.splitlines()[2].split()[:5] == ["unassigned", "10-d", "10", "0", "269,722"]

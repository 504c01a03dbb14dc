"""`netgen diff`: topological alignment, shortcut classification, numeric comparison."""

from __future__ import annotations

import json

import onnx
import pytest
from test_caffe_reader import msra_style
from torch_style import torch_resnet

from netgen.arch.builder import build
from netgen.arch.spec import make_spec
from netgen.arch.weights import initial_weights
from netgen.caffe.caffemodel import write_caffemodel
from netgen.caffe.prototxt import render_deploy
from netgen.errors import NetgenError
from netgen.jobs.diff import align, diff, parse_spec_name
from netgen.onnx.export import to_onnx


def diff_json(run_cli, *args):
    result = run_cli("diff", *args, "--json")
    assert result.code in (0, 1), result.err
    return result.code, json.loads(result.out)


def test_option_a_vs_b_differs_only_in_the_projection_shortcuts(run_cli):
    code, data = diff_json(run_cli, "resnet50-A", "resnet50-B", "--strict")
    assert code == 1 and data["equivalent"] is False
    shortcuts = data["shortcut_differences"]
    assert [(d["a"]["block"], d["b"]["block"]) for d in shortcuts] == [
        ("res2a", "res2a"), ("res3a", "res3a"), ("res4a", "res4a"), ("res5a", "res5a")]
    assert {d["a"]["kind"] for d in shortcuts} == {"zero-pad"}
    assert {d["b"]["kind"] for d in shortcuts} == {"projection"}
    assert shortcuts[1]["a"]["shortcut"] == "zero-pad (subsample stride 2, +256 zero channels)"
    assert shortcuts[1]["b"]["shortcut"] == "projection (1x1 conv, 512 channels, stride 2, BN)"
    assert shortcuts[1]["b"]["ops"] == ["res3a_branch1", "bn3a_branch1", "scale3a_branch1"]
    assert shortcuts[0]["a"]["shortcut"] == "zero-pad (+192 zero channels)"
    assert data["layer_differences"] == [] and data["structural_differences"] == []
    assert data["a"]["op_counts"]["Conv"] == 49 and data["b"]["op_counts"]["Conv"] == 53
    assert data["a"]["op_counts"]["Subsample"] == 3 and data["a"]["op_counts"]["Zeros"] == 4
    assert data["b"]["parameters"] == 25_557_096
    assert data["a"]["parameters"] == 25_557_096 - 2_776_576  # the four projections (conv + BN)
    assert data["first_divergence"]["reason"] == "shortcut differs"
    assert data["first_divergence"]["a"]["op"]["layers"] == ["res2a"]
    text = run_cli("diff", "resnet50-A", "resnet50-B", "--strict")
    assert text.code == 1
    assert "A res3a: zero-pad (subsample stride 2, +256 zero channels)  |  B res3a: projection" in text.out


def test_resnet50_b_vs_itself_read_back_from_prototxt_is_equivalent(tmp_path, run_cli):
    deploy = tmp_path / "ResNet-50-deploy.prototxt"
    deploy.write_text(msra_style(render_deploy(build(make_spec("imagenet", 50)))))
    code, data = diff_json(run_cli, "resnet50-B", deploy, "--numeric", "--strict")
    assert code == 0 and data["equivalent"] is True
    assert data["first_divergence"] is None
    assert data["a"]["op_counts"] == data["b"]["op_counts"] == {
        "Add": 16, "BN": 53, "Conv": 53, "FC": 1, "Pool": 2, "ReLU": 49, "Softmax": 1}
    assert data["a"]["blocks"] == data["b"]["blocks"] == 16
    assert data["numeric"]["max_abs_diff"] == 0.0 and data["numeric"]["within_tolerance"]
    assert run_cli("diff", "resnet50-B", deploy, "--strict").out.count("EQUIVALENT") == 1


@pytest.mark.parametrize("residual,kinds", [
    ("resnet34-B", {"identity": 13, "projection": 3}),
    ("resnet34-A", {"identity": 13, "zero-pad": 3}),
])
def test_residual_vs_plain_differs_in_shortcuts_only(run_cli, residual, kinds):
    code, data = diff_json(run_cli, residual, "plain34")
    assert code == 1
    shortcuts = data["shortcut_differences"]
    assert len(shortcuts) == 16 and {d["b"]["kind"] for d in shortcuts} == {"none"}
    found: dict[str, int] = {}
    for d in shortcuts:
        found[d["a"]["kind"]] = found.get(d["a"]["kind"], 0) + 1
    assert found == kinds
    assert shortcuts[3]["a"]["block"] == "res3a"
    assert data["layer_differences"] == [] and data["structural_differences"] == []
    assert data["b"]["parameters"] == 21_623_848


def test_stride_placement_differs_exactly_in_the_first_blocks_of_stages_3_to_5(run_cli):
    code, data = diff_json(run_cli, "resnet50-B", "resnet50-B-stride3x3", "--strict")
    assert code == 1
    found = [(d["a"], d["b"], d["fields"]) for d in data["layer_differences"]]
    want = []
    for stage in (3, 4, 5):
        want.append(([f"res{stage}a_branch2a"], [f"res{stage}a_branch2a"], {"stride": [[2, 2], [1, 1]]}))
        want.append(([f"res{stage}a_branch2b"], [f"res{stage}a_branch2b"], {"stride": [[1, 1], [2, 2]]}))
    assert found == want
    assert data["shortcut_differences"] == [] and data["structural_differences"] == []
    assert data["a"]["parameters"] == data["b"]["parameters"] == 25_557_096
    assert (data["a"]["multiply_adds"], data["b"]["multiply_adds"]) == (3_857_973_248, 4_089_184_256)
    div = data["first_divergence"]
    assert div["reason"] == "Conv stride differ" and div["a"]["op"]["layers"] == ["res3a_branch2a"]
    assert div["a"]["context"][3] == "> Conv res3a_branch2a"
    assert div["b"]["context"][:3] == ["  BN bn2c_branch2c/scale2c_branch2c", "  Add res2c",
                                       "  ReLU res2c_relu"]


def test_pytorch_style_export_aligns_by_topology_not_names(tmp_path, run_cli):
    onnx.save(torch_resnet(18), tmp_path / "torch18.onnx")
    code, data = diff_json(run_cli, "resnet18-B", tmp_path / "torch18.onnx", "--numeric",
                           "--strict")
    assert code == 1  # the export has no Softmax
    assert data["layer_differences"] == [] and data["shortcut_differences"] == []
    [missing] = data["structural_differences"]
    assert [e["layers"] for e in missing["a"]] == [["prob"]] and missing["b"] == []
    assert missing["after_b"] == "FC /fc/Gemm"
    assert data["a"]["blocks"] == data["b"]["blocks"] == 8
    assert data["a"]["parameters"] == data["b"]["parameters"] == 11_689_512
    numeric = data["numeric"]
    assert numeric["weights"] == "B runs with A's weights, matched by alignment"
    assert numeric["max_abs_diff"] < 1e-4 and numeric["within_tolerance"]
    # The export's own (different) weights give a different function.
    code, data = diff_json(run_cli, "resnet18-B", tmp_path / "torch18.onnx", "--numeric",
                           "--weights", "own", "--strict")
    assert code == 1 and data["numeric"]["max_abs_diff"] > 1e-2


def test_torchvision_v15_resnet50_against_netgen(tmp_path, run_cli):
    onnx.save(torch_resnet(50), tmp_path / "torch50.onnx")
    code, data = diff_json(run_cli, tmp_path / "torch50.onnx", "resnet50-B-stride3x3",
                           "--strict")
    assert code == 1
    assert [(d["a"], d["b"], d["fields"]) for d in data["layer_differences"]] == [
        (["/conv1/Conv"], ["conv1"], {"bias": [False, True],
                                      "param_shapes": [[[64, 3, 7, 7]], [[64, 3, 7, 7], [64]]]})]
    assert data["shortcut_differences"] == []
    assert data["a"]["multiply_adds"] == data["b"]["multiply_adds"] == 4_089_184_256


def test_netgen_onnx_and_prototxt_of_option_a_are_equivalent(tmp_path, run_cli):
    spec = make_spec("cifar10", 20)
    graph = build(spec)
    weights = initial_weights(graph, 1)
    onnx.save(to_onnx(graph, weights), tmp_path / "m.onnx")
    (tmp_path / "deploy.prototxt").write_text(render_deploy(graph))
    write_caffemodel(tmp_path / "m.caffemodel", graph, weights)
    code, data = diff_json(run_cli, tmp_path / "m.onnx", tmp_path / "deploy.prototxt",
                           "--caffemodel-b", tmp_path / "m.caffemodel", "--numeric",
                           "--weights", "own", "--batch", "3")
    assert code == 0
    assert data["numeric"]["max_abs_diff"] == 0.0 and data["numeric"]["batch"] == 3
    assert data["b"]["weights"] == str(tmp_path / "m.caffemodel")
    # With netgen's init of another seed on B, their own weights differ: exit 1.
    code, data = diff_json(run_cli, tmp_path / "m.onnx", tmp_path / "deploy.prototxt",
                           "--numeric", "--weights", "own", "--seed", "5")
    assert code == 1 and data["numeric"]["within_tolerance"] is False
    assert data["layer_differences"] == [] and data["shortcut_differences"] == []


def test_deeper_nets_align_block_by_block():
    result = diff("resnet152-B", "resnet101-B", strict=True)
    extra = [d["a"]["block"] for d in result.shortcut_differences]
    assert len(extra) == 17 and all(d["b"]["kind"] == "none" for d in result.shortcut_differences)
    assert sum(name.startswith("res3b") for name in extra) == 4
    assert sum(name.startswith("res4b") for name in extra) == 13
    assert result.layer_differences == []
    assert [len(d["a"]) for d in result.structural_differences] == [4 * 9, 13 * 9]


def test_thousands_of_layers_are_walked_without_recursion():
    result = diff("cifar10-resnet1202-A", "cifar10-plain1202")
    assert len(result.shortcut_differences) == 600
    assert sum(d["a"]["kind"] == "zero-pad" for d in result.shortcut_differences) == 2
    assert result.layer_differences == [] and result.structural_differences == []
    assert result.to_json()["a"]["parameters"] == 19_421_274


def test_errors_exit_2(tmp_path, run_cli):
    result = run_cli("diff", "resnet50-B", "resnet51-B")
    assert result.code == 2 and "ImageNet depth 51 is not in Table 1" in result.err
    result = run_cli("diff", "resnet50-B", "googlenet")
    assert result.code == 2
    assert "'googlenet' is neither a file nor a network name; accepted:" in result.err
    assert "resnet50-B-stride3x3" in result.err and "cifar10-resnet20-A" in result.err
    result = run_cli("diff", "plain34-A", "plain34")
    assert result.code == 2 and "plain nets have no shortcut option; write plain34" in result.err
    result = run_cli("diff", tmp_path / "missing.onnx", "plain34")
    assert result.code == 2 and "missing.onnx: no such file" in result.err
    result = run_cli("diff", "resnet18-B", "plain18", "--caffemodel-a", tmp_path / "w.caffemodel")
    assert result.code == 2 and "a caffemodel goes with a prototxt file" in result.err


def test_a_file_is_a_prototxt_or_onnx_model_as_convert_decides(tmp_path, run_cli):
    """A .prototxt is read as one even with a NUL byte in a comment (binary sniffing is for
    files whose extension does not tell), so diff accepts what convert accepts."""
    net = tmp_path / "net.prototxt"
    net.write_bytes(b'# a comment with a NUL \0 byte\n'
                    b'input: "x" input_dim: 1 input_dim: 2 input_dim: 4 input_dim: 4\n'
                    b'layer { name: "r" type: "ReLU" bottom: "x" top: "r" }\n')
    assert run_cli("convert", net, "--output", tmp_path / "net.onnx").code == 0
    result = run_cli("diff", net, net)
    assert result.code == 0 and "verdict: EQUIVALENT" in result.out


@pytest.mark.parametrize("power_param", ["power: -1 scale: 0", "power: 0.5 scale: 0 shift: -1"])
def test_a_power_layer_without_a_finite_constant_value_is_compared_as_power(
        tmp_path, run_cli, power_param):
    net = tmp_path / "net.prototxt"
    net.write_text('input: "x" input_dim: 1 input_dim: 2 input_dim: 4 input_dim: 4\n'
                   'layer { name: "p" type: "Power" bottom: "x" top: "p" '
                   f'power_param {{ {power_param} }} }}\n')
    result = run_cli("diff", net, net, "--json")
    assert result.code == 0
    assert json.loads(result.out)["a"]["op_counts"] == {"Power": 1}


def test_spec_names_parse_back_to_their_spec():
    for kwargs in (dict(dataset="imagenet", depth=50), dict(dataset="imagenet", depth=18, shortcut="A"),
                   dict(dataset="imagenet", depth=34, plain=True), dict(dataset="cifar10", depth=110),
                   dict(dataset="cifar10", depth=20, plain=True),
                   dict(dataset="imagenet", depth=152, stride_in="3x3", shortcut="C"),
                   dict(dataset="imagenet", stages=(2, 2, 2, 2), block="bottleneck")):
        spec = make_spec(**kwargs)
        assert parse_spec_name(spec.name) == spec
    assert parse_spec_name("resnet50") == make_spec("imagenet", 50)  # the default shortcut
    with pytest.raises(NetgenError, match="did you mean 'resnet50-B'"):
        parse_spec_name("resnet50-B-stride1x1")


def test_alignment_is_a_minimal_edit_script():
    ops = align(list("abcabcabc"), list("abcabc"))
    assert sum(i2 - i1 for tag, i1, i2, _, _ in ops if tag == "equal") == 6
    assert [tag for tag, *_ in ops] == ["equal", "delete"]
    ops = align(list("xaay"), list("xbby"))
    assert [tag for tag, *_ in ops] == ["equal", "replace", "equal"]

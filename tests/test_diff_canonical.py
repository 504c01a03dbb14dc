"""`netgen diff` compares architectures: canonical form, grouped findings, numeric across
folding, on torchvision-shaped exports (tests/torchvision_exports.py) and netgen's builds."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest
from torchvision_exports import reference_forward, relative_error, torchvision_resnet

from netgen.arch import ir
from netgen.arch.builder import build
from netgen.arch.shapes import infer
from netgen.arch.spec import make_spec
from netgen.jobs.benchmarks import BenchContext, diff_export
from netgen.jobs.diff import Side, compare, diff, format_text, load_side, parse_spec_name
from netgen.jobs.diff.numeric import fold
from netgen.analysis.topology import analyse
from netgen.onnx.export import to_onnx
from netgen.onnx.runtime import create_session


def save(tmp_path, name: str, model: onnx.ModelProto) -> str:
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return str(path)


def diff_json(run_cli, *args):
    result = run_cli("diff", *args, "--json")
    assert result.code in (0, 1), result.err
    return result.code, json.loads(result.out)


STEM_POOL_TEXT = ("pool1: A pads 1 and rounds down (torchvision's stem), B pads 0 and rounds "
                  "up (MSRA's)")


def test_v15_against_v1_names_the_stride_placement_and_the_stem_pooling(tmp_path, run_cli):
    export = save(tmp_path, "tv50", torchvision_resnet(50))
    code, data = diff_json(run_cli, export, "resnet50-B")
    assert code == 1 and data["equivalent"] is False and data["strict"] is False
    finding, stem = data["findings"]
    assert finding["kind"] == "stride"
    assert finding["text"] == (
        "stride: in the first block of stages 3 to 5 (A /layer2/layer2.0, /layer3/layer3.0, "
        "/layer4/layer4.0; B res3a, res4a, res5a) the stride 2 sits on the 3x3 convolution in "
        "A and on the first 1x1 convolution in B; A is ResNet v1.5 (torchvision's), B v1 "
        "(the paper's)")
    # torchvision's pool1 and MSRA's: same 56x56, other windows, so other numbers.
    assert stem == {"kind": "stem_pool", "text": STEM_POOL_TEXT, "lines": [
        "A /maxpool/MaxPool | B pool1: both 3x3 max pooling, stride 2, output 56x56; windows "
        "1 pixel apart: the same weights give other numbers"]}
    # The op-level differences stay in --json: pool1, the six convolutions whose stride moved.
    assert [d["fields"] for d in data["layer_differences"]] == [
        {"pad": [[1, 1], [0, 0]], "round_mode": ["FLOOR", "CEIL"]}] + [
        {"stride": [[1, 1], [2, 2]]}, {"stride": [[2, 2], [1, 1]]}] * 3
    text = run_cli("diff", export, "resnet50-B")
    assert text.code == 1
    lines = text.out.splitlines()
    assert len(lines) <= 40
    assert "verdict: DIFFERENT (2 differences)" in lines
    assert sum("the stride 2 sits on the 3x3 convolution in A" in line for line in lines) == 1
    assert sum(STEM_POOL_TEXT in line for line in lines) == 1


def test_resnet18_against_resnet50_speaks_of_blocks_and_depths(run_cli):
    code, data = diff_json(run_cli, "resnet18-B", "resnet50-B")
    assert code == 1
    blocks = data["findings"][0]
    assert blocks["kind"] == "blocks"
    assert blocks["text"] == ("blocks: A 8 basic blocks 2-2-2-2, depth 18 | "
                              "B 16 bottleneck blocks 3-4-6-3, depth 50")
    assert blocks["lines"] == [
        "stage 2: A 2 basic blocks, width 64 | B 3 bottleneck blocks, width 64 -> 256",
        "stage 3: A 2 basic blocks, width 128 | B 4 bottleneck blocks, width 128 -> 512",
        "stage 4: A 2 basic blocks, width 256 | B 6 bottleneck blocks, width 256 -> 1024",
        "stage 5: A 2 basic blocks, width 512 | B 3 bottleneck blocks, width 512 -> 2048"]
    assert [f["kind"] for f in data["findings"]] == ["blocks", "head"]
    assert data["findings"][1]["lines"] == ["FC fc1000 | fc1000: in_features A 512 | B 2048"]
    stages = data["b"]["architecture"]["stages"]
    assert [(s["stage"], s["blocks"], s["kind"], s["inner_width"], s["out_width"])
            for s in stages] == [(2, 3, "bottleneck", 64, 256), (3, 4, "bottleneck", 128, 512),
                                 (4, 6, "bottleneck", 256, 1024), (5, 3, "bottleneck", 512, 2048)]
    assert (data["a"]["architecture"]["depth"], data["b"]["architecture"]["depth"]) == (18, 50)
    text = run_cli("diff", "resnet18-B", "resnet50-B").out
    assert len(text.splitlines()) <= 20


def test_deeper_stages_are_counted_not_listed():
    result = diff("resnet152-B", "resnet101-B")
    [blocks] = result.findings
    assert blocks["lines"] == [
        "stage 3: A 8 bottleneck blocks, width 128 -> 512 | B 4 bottleneck blocks, width 128 -> 512",
        "stage 4: A 36 bottleneck blocks, width 256 -> 1024 | B 23 bottleneck blocks, "
        "width 256 -> 1024"]


def test_resnext_against_resnet50_names_cardinality_and_widths(tmp_path, run_cli):
    export = save(tmp_path, "rx50", torchvision_resnet("resnext50_32x4d"))
    code, data = diff_json(run_cli, export, "resnet50-B")
    assert code == 1
    kinds = {f["kind"]: f for f in data["findings"]}
    assert sorted(kinds) == ["stem_pool", "stride", "width"]
    width = kinds["width"]
    assert width["text"] == ("3x3 groups and widths of all 16 blocks: A cardinality 32, width "
                             "per group 4 (32x4d) | B 1 group, width 64 (stage 2)")
    assert width["lines"] == ["inner width by stage: A 128, 256, 512, 1024 | B 64, 128, 256, 512"]
    assert data["a"]["architecture"]["stages"][0]["groups"] == 32
    assert data["a"]["parameters"] == 25_028_904 - 34_112  # torchvision's, BN folded (53 convs)
    assert len(run_cli("diff", export, "resnet50-B").out.splitlines()) <= 20
    # netgen's resnext50-32x4d is torchvision's model, stem pooling included
    result = run_cli("diff", export, "resnext50-32x4d")
    assert result.code == 0 and "verdict: EQUIVALENT" in result.out, result.out


def test_wide_resnet_against_resnet50_is_a_width_ratio(tmp_path):
    export = save(tmp_path, "wide50", torchvision_resnet("wide_resnet50_2"))
    result = diff(export, "resnet50-B-stride3x3-torchpool")
    [width] = result.findings
    assert width["text"] == ("bottleneck widths of all 16 blocks: A 1 group, width 128 | "
                             "B 1 group, width 64 (stage 2); A's inner width is 2x B's")


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("x,y", [("torchscript", "bn"), ("bn", "wild"), ("torchscript", "wild"),
                                 ("dynamo", "torchscript"), ("dynamo", "bn")])
def test_one_model_from_two_exporters_is_equivalent(tmp_path, run_cli, depth, x, y):
    def export(kind: str) -> onnx.ModelProto:
        if kind == "wild":
            return torchvision_resnet(depth, "bn", head="matmul", dropout=True, softmax=True)
        return torchvision_resnet(depth, kind)

    a, b = save(tmp_path, x, export(x)), save(tmp_path, y, export(y))
    code, data = diff_json(run_cli, a, b, "--numeric", "--weights", "own")
    assert code == 0 and data["equivalent"] is True and data["findings"] == []
    assert data["numeric"]["within_tolerance"] and data["numeric"]["max_abs_diff"] < 1e-4
    if {x, y} & {"torchscript", "dynamo"} and {x, y} & {"bn", "wild"}:
        assert any(n.startswith("BatchNorm: A has") and "(folded)" in n for n in data["notes"])
    if y == "wild":
        assert ("Softmax: B ends in Softmax (/softmax/Softmax), the other in logits; compared "
                "up to the logits") in data["notes"]
    # --strict keeps the exact comparison: folded BatchNorm is a difference there.
    code, strict = diff_json(run_cli, a, b, "--strict")
    assert code == (0 if {x, y} == {"dynamo", "torchscript"} else 1)
    text = run_cli("diff", a, b).out
    assert "verdict: EQUIVALENT" in text and len(text.splitlines()) <= 20


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo", "bn"])
def test_torchvision_export_is_equivalent_to_its_netgen_name(tmp_path, run_cli, exporter):
    export = save(tmp_path, exporter, torchvision_resnet(50, exporter))
    result = run_cli("diff", export, "resnet50-B-stride3x3-noconv1bias-torchpool")
    assert result.code == 0, result.out
    assert "verdict: EQUIVALENT" in result.out and len(result.out.splitlines()) <= 20
    assert "pool1" not in result.out and "window" not in result.out
    # With MSRA's pool1 (pad 0, rounding up) the one difference is the stem pooling.
    code, data = diff_json(run_cli, export, "resnet50-B-stride3x3-noconv1bias")
    assert code == 1 and [f["text"] for f in data["findings"]] == [STEM_POOL_TEXT]
    code, data = diff_json(run_cli, export, "resnet18-B")
    assert code == 1 and data["findings"][0]["kind"] == "blocks"


def test_torchvision_export_is_its_netgen_name_with_weights_mapped_across_folding(tmp_path,
                                                                                 run_cli):
    model = torchvision_resnet(50)
    export = save(tmp_path, "tv50", model)
    name = "resnet50-B-stride3x3-noconv1bias-torchpool"
    code, data = diff_json(run_cli, export, name, "--numeric")
    assert code == 0 and data["findings"] == []
    numeric = data["numeric"]
    assert numeric["folded"] == ("B's 106 BatchNorm/Scale/Bias layers folded into the "
                                 "convolutions before them, both sides run folded")
    assert numeric["within_tolerance"] and numeric["max_abs_diff"] < 1e-4
    assert data["a"]["representation"]["folded_convs"] == 53
    assert data["b"]["representation"]["bn_in_conv"] == 53
    # The other way round: B (the export) runs with netgen's BatchNorm weights, folded.
    code, data = diff_json(run_cli, name, export, "--numeric")
    assert code == 0 and data["numeric"]["folded"].startswith("A's 106 BatchNorm")


def test_fold_is_what_an_exporter_computes(tmp_path):
    """Folding the BN-kept export gives the TorchScript export's initializers (the fixture
    folds with its own numpy code) and ORT's outputs on the unfolded file."""
    kept = torchvision_resnet(18, "bn")
    folded_file = torchvision_resnet(18, "torchscript")
    side = load_side(save(tmp_path, "kept", kept))
    graph, weights, count = fold(analyse(side, canonical=True))
    assert count == 2 * 20  # BatchNorm + Scale after each of the 20 convolutions
    convs = [layer.name for layer in graph.layers if layer.type == "Convolution"]
    expected = [onnx.numpy_helper.to_array(t) for t in folded_file.graph.initializer
                if t.name.startswith("onnx::Conv_")]
    got = [blob for name in convs for blob in weights[name]]
    assert len(got) == len(expected) == 40
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    batch = np.random.default_rng(3).standard_normal((2, 3, 224, 224)).astype(np.float32)
    [logits] = create_session(to_onnx(graph, weights)).run_list(batch)
    assert relative_error(logits, reference_forward(kept, batch)) < 1e-5


def test_a_netgen_build_folded_like_an_export_diffs_equivalent(tmp_path):
    spec = make_spec("imagenet", 18)
    export = diff_export(BenchContext(tmp_path), spec)
    result = diff(str(export), spec.name)
    assert result.equivalent and result.findings == []
    # netgen's initial BatchNorm (mean 0, variance 1, Scale 1 / 0) folds into biases of zeros:
    # the 20 convolutions and the fc have a bias of zeros, read as "no bias" (either matches).
    assert ("A: 21 bias(es) of zeros read as none (conv1, res2a_branch2a, res2a_branch2b, "
            "res2b_branch2a)") in result.notes
    assert result.a.representation.zero_bias[-1] == "fc1000"
    text = format_text(result)
    assert "verdict: EQUIVALENT" in text and "representation (not compared):" in text


def test_rows_cover_both_main_paths_in_order():
    result = diff("resnet34-B", "plain34")
    assert [r.a for r in result.rows if r.a is not None] == result.a.entries
    assert [r.b for r in result.rows if r.b is not None] == result.b.entries
    joins = [r for r in result.rows if r.shortcut_difference is not None]
    assert len(joins) == 16 and all(r.tag == "delete" for r in joins)
    assert result.findings[0]["text"] == ("shortcuts: A has 16 residual blocks (13 identity, "
                                          "3 projection shortcuts), B is plain (none)")


def _edited(name: str, edit) -> Side:
    """netgen's graph of `name` with `edit(layers)` applied, shapes inferred again."""
    graph = build(parse_spec_name(name))
    layers = [replace(layer, top_shapes=(), blob_shapes=()) for layer in graph.layers]
    edited = infer(graph.name, graph.inputs, edit(layers))
    return Side(f"edited {name}", "spec", edited, "none")


def test_hand_edited_representation_is_equivalent_and_architecture_is_not():
    def respell(layers):
        out = []
        for layer in layers:
            if layer.name == "pool5":  # global_pooling instead of a 7x7 kernel, then a Reshape
                out.append(replace(layer, param=ir.PoolingParam("AVE", global_pooling=True)))
                out.append(ir.Layer("flat", "Reshape", ("pool5",), ("flat",),
                                    ir.ReshapeParam(shape=(0, -1))))
            elif layer.name == "fc1000":
                out.append(replace(layer, bottoms=("flat",)))
            elif layer.type != "Softmax":
                out.append(layer)
        return out

    result = compare(_edited("resnet18-B", respell), load_side("resnet18-B"))
    assert result.equivalent and result.findings == []
    assert "global pooling: A global_pooling | B whole-map kernel" in result.notes
    assert result.a.representation.to_json()["skipped"] == {"Reshape": 1}
    assert result.b.representation.to_json()["skipped"] == {}
    assert not compare(_edited("resnet18-B", respell), load_side("resnet18-B"),
                       strict=True).equivalent

    def conv1_5x5_and_dilated_3b(layers):
        out = []
        for layer in layers:
            if layer.name == "conv1":
                layer = replace(layer, param=replace(layer.param, kernel=(5, 5), pad=(2, 2)))
            if layer.name == "res3b_branch2b":
                layer = replace(layer, param=replace(layer.param, dilation=(2, 2), pad=(2, 2)))
            out.append(layer)
        return out

    result = compare(_edited("resnet18-B", conv1_5x5_and_dilated_3b), load_side("resnet18-B"))
    texts = {f["kind"]: f for f in result.findings}
    assert sorted(texts) == ["conv", "stem"]
    assert texts["stem"]["lines"] == [
        "Conv conv1 | conv1: kernel A [5, 5] | B [7, 7]; pad A [2, 2] | B [3, 3]"]
    assert [f["text"] for f in result.findings if f["kind"] == "conv"] == [
        "second 3x3 convolution of block res3b: pad A [2, 2] | B [1, 1]; dilation A [2, 2] | "
        "B [1, 1]"]


def test_make_bench_times_diff_of_a_resnet152_export():
    from netgen.jobs import benchmarks

    assert "Diffing a torchvision ResNet-152 export" in [s.title for s in benchmarks.SECTIONS]

"""timm's Res2Nets by name (--res2net-scale, --res2net-width): the counts (timm 1.0.31's own
sum(p.numel()) of timm.create_model(name), computed in the scratch torch venv), the layers of
a Res2Net block, the refusals, the CLI, and what diff and draw say of the blocks."""

from __future__ import annotations

import pytest

from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.paper_figures import figures_for
from netgen.arch.spec import FAMILY_NAMES, make_spec, spec_from_name
from netgen.errors import NetgenError

TIMM = {"res2net50-26w-4s": 25_699_120, "res2net50-48w-2s": 25_287_304,
        "res2net50-14w-8s": 25_059_816, "res2net50-26w-6s": 37_051_448,
        "res2net50-26w-8s": 48_403_776, "res2net101-26w-4s": 45_206_688}


@pytest.mark.parametrize("name", sorted(TIMM))
def test_counts_equal_timms_and_names_round_trip(name):
    assert name in FAMILY_NAMES
    spec = spec_from_name(name)
    assert spec.name == name
    assert count(build(spec)).params == TIMM[name]
    assert [f.printed for f in figures_for(spec)] == [f"{TIMM[name]:,}"]


def test_the_options_make_the_named_net():
    spec = make_spec(depth=50, res2net_scale=4)  # timm's base width 26 unless told
    assert spec == spec_from_name("res2net50-26w-4s")
    assert (spec.res2net_width, spec.res2net_widths) == (26, (26, 52, 104, 208))
    assert (spec.stride_in, spec.stem_pool, spec.conv1_bias) == ("3x3", "torchvision", False)
    assert make_spec(depth=50, res2net_scale=8, res2net_width=14).name == "res2net50-14w-8s"
    assert spec.to_dict()["res2net_widths"] == [26, 52, 104, 208]


def test_res2net_block_layers():
    graph = build(spec_from_name("res2net50-26w-4s"))
    by_name = {l.name: l for l in graph.layers}
    split = by_name["res2a_branch2a_split"]
    assert split.type == "Slice" and split.param.slice_point == (26, 52, 78)
    assert split.bottoms == ("res2a_branch2a",) and len(split.tops) == 4
    # a stage's first block: no sums, each 3x3 on its own split, the last split pooled
    for i in (1, 2, 3):
        conv = by_name[f"res2a_branch2b_{i}"]
        assert conv.bottoms == (f"res2a_branch2a_split{i}",)
        assert (conv.param.num_output, conv.param.kernel, conv.param.stride) == (26, (3, 3), (1, 1))
    pool = by_name["res2a_branch2b_pool"].param
    assert (pool.pool, pool.kernel, pool.stride, pool.pad, pool.round_mode) == \
        ("AVE", (3, 3), (1, 1), (1, 1), "CEIL")
    concat = by_name["res2a_branch2b"]
    assert concat.type == "Concat" and concat.bottoms == (
        "res2a_branch2b_1", "res2a_branch2b_2", "res2a_branch2b_3", "res2a_branch2b_pool")
    assert concat.top_shapes[0] == (1, 104, 56, 56)
    assert "res2a_branch2b_2_in" not in by_name
    # later blocks: each split from the second on adds the previous 3x3's output
    assert by_name["res2b_branch2b_1"].bottoms == ("res2b_branch2a_split1",)
    for i in (2, 3):
        add = by_name[f"res2b_branch2b_{i}_in"]
        assert add.type == "Eltwise" and add.param.operation == "SUM"
        assert add.bottoms == (f"res2b_branch2b_{i - 1}", f"res2b_branch2a_split{i}")
        assert by_name[f"res2b_branch2b_{i}"].bottoms == (add.tops[0],)
    assert by_name["res2b_branch2b"].bottoms[-1] == "res2b_branch2a_split4"
    assert "res2b_branch2b_pool" not in by_name
    # a downsampling block: every 3x3 and the pooling stride 2, the pooling rounding down
    # (timm's AvgPool2d(3, 2, padding=1) gives 28 of 56, Caffe's rounding up 29)
    assert all(by_name[f"res3a_branch2b_{i}"].param.stride == (2, 2) for i in (1, 2, 3))
    pool = by_name["res3a_branch2b_pool"]
    assert (pool.param.stride, pool.param.round_mode, pool.top_shapes[0]) == \
        ((2, 2), "FLOOR", (1, 52, 28, 28))
    assert by_name["res3a"].bottoms == ("res3a_branch1", "res3a_branch2c")
    kinds = [l.type for l in graph.layers]
    assert kinds.count("Slice") == 16 and kinds.count("Concat") == 16
    assert kinds.count("Eltwise") == 16 + 12 * 2  # the sums, two hierarchical adds per later block


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth=50, res2net_scale=4, se=16), "it does not take --se"),
    (dict(depth=50, res2net_scale=4, deep_stem=True, avg_down=True),
     "it does not take --deep-stem/--tiered-stem, --avg-down"),
    (dict(depth=50, res2net_scale=4, groups=8), "--groups/--width-per-group/--width-factor"),
    (dict(depth=50, res2net_scale=4, stride_in="1x1"), "--stride-in 1x1"),
    (dict(depth=18, res2net_scale=4, block="basic"), "--block basic"),
    (dict(dataset="cifar10", depth=20, res2net_scale=4), "--dataset cifar10"),
    (dict(depth=50, res2net_scale=1), "at least 2 scales"),
    (dict(depth=50, res2net_width=26), "give --res2net-scale S too"),
    (dict(depth=50, res2net_scale=-4), "--res2net-scale must be a positive integer"),
])
def test_bad_combinations_fail_clearly(kwargs, message):
    with pytest.raises(NetgenError) as err:
        make_spec(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name, message", [
    ("res2net50", "a Res2Net name, and only one, gives the split width and the scale"),
    ("resnet50-26w-4s", "a Res2Net name, and only one"),
    ("res2net50-26w-4s-B", "did you mean 'res2net50-26w-4s'"),
    ("res2net50-26w-1s", "at least 2 scales"),
])
def test_bad_names_fail_clearly(name, message):
    with pytest.raises(NetgenError) as err:
        spec_from_name(name)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_build_identify_and_refusal(run_cli, tmp_path):
    result = run_cli("build", "--depth", "50", "--res2net-scale", "4", "--input-size", "64",
                     "-o", tmp_path / "a")
    assert result.code == 0, result.err
    deploy = tmp_path / "a" / "deploy.prototxt"
    assert deploy.read_text().count('type: "Slice"') == 16
    result = run_cli("identify", deploy)
    assert result.out.splitlines()[:2] == [f"{deploy}: res2net50-26w-4s-input64",
                                           "build: netgen build --depth 50 --res2net-scale 4 "
                                           "--input-size 64"], result.out + result.err
    result = run_cli("build", "--depth", "50", "--res2net-scale", "4", "--eca",
                     "-o", tmp_path / "b")
    assert result.code == 2 and not (tmp_path / "b").exists()
    assert result.err.count("\n") == 1 and "does not take --eca" in result.err
    listing = run_cli("list").out
    for name in TIMM:
        assert name in listing


def test_diff_names_the_splits_and_draw_labels_them(run_cli, tmp_path):
    result = run_cli("diff", "res2net50-26w-4s", "res2net50-14w-8s")
    lines = result.out.splitlines()
    assert "verdict: DIFFERENT (1 difference)" in lines
    assert "  - Res2Net splits of all 16 blocks: A Res2Net 26w x 4 | B Res2Net 14w x 8" in lines
    assert ("architecture: A 16 Res2Net 26w x 4 blocks 3-4-6-3, depth 50 | "
            "B 16 Res2Net 14w x 8 blocks 3-4-6-3, depth 50") in lines
    result = run_cli("diff", "res2net50-26w-4s", "res2net50-26w-4s")
    assert "verdict: EQUIVALENT" in result.out
    result = run_cli("draw", "res2net50-26w-4s", "-o", tmp_path / "r.svg")
    assert result.code == 0, result.err
    svg = (tmp_path / "r.svg").read_text()
    for width in (26, 52, 104, 208):  # a stage's first block and its repeated ones
        assert svg.count(f"Res2Net split, 4 x {width}<") == 2


def test_which_split_a_3x3_reads_is_architecture():
    """A Slice's tops are one logical op; the units still tell its pieces apart, so a file
    whose first 3x3s read other splits is another network, and --like pairs each 3x3 with
    the one on the same split."""
    from dataclasses import replace as replaced

    from netgen.analysis.units import compare_units, first_difference

    graph = build(spec_from_name("res2net50-26w-4s-input64"))
    same, again = compare_units(graph, build(spec_from_name("res2net50-26w-4s-input64")))
    assert first_difference(same, again, "res2net50-26w-4s") is None
    layers = list(graph.layers)
    for k, layer in enumerate(layers):
        if layer.name in ("res2a_branch2b_1", "res2a_branch2b_2"):
            other = "res2a_branch2a_split2" if layer.name.endswith("_1") else \
                "res2a_branch2a_split1"
            layers[k] = replaced(layer, bottoms=(other,))
    swapped = replaced(graph, layers=tuple(layers))
    target, source = compare_units(graph, swapped)
    found = first_difference(target, source, "res2net50-26w-4s")
    assert found is not None and found.target.layers[0].name == "res2a_branch2b"  # the Concat


def test_the_nearest_listed_nets_of_a_res2net_are_res2nets():
    from netgen.analysis.identify import nearest_listed
    from netgen.analysis.topology import analyse
    from netgen.jobs.diff.sides import load_side
    from netgen.jobs.identify import listed_specs

    analysis = analyse(load_side("res2net50-26w-5s-input64"), canonical=True)
    assert [b.kind for b in analysis.blocks] == ["res2net"] * 16
    near = nearest_listed(analysis, listed_specs())
    assert all(spec.res2net_scale for spec in near), [spec.name for spec in near]

"""timm's ECA nets and tiered-stem (*t) nets by name: the kernel rule, the counts (timm
1.0.31's own sum(p.numel()) of timm.create_model(name), computed in the scratch torch venv),
the layers of an ECA unit, the CLI options and their refusals."""

from __future__ import annotations

import math

import pytest

from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.paper_figures import figures_for
from netgen.arch.spec import FAMILY_NAMES, eca_kernel, make_spec, spec_from_name
from netgen.errors import NetgenError

TIMM = {"ecaresnet26t": 16_011_916, "ecaresnet50d": 25_576_350, "ecaresnet101d": 44_568_563,
        "resnet50t": 25_573_728, "seresnext26t-32x4d": 16_806_976}


def timm_eca_kernel(channels: int, gamma: float = 2, beta: float = 1) -> int:
    """timm.layers.eca.EcaModule.__init__, as timm writes it."""
    t = int(abs(math.log(channels, 2) + beta) / gamma)
    return max(t if t % 2 else t + 1, 3)


def test_kernel_rule_is_timms():
    for channels in (16, 64, 128, 256, 512, 1024, 2048, 4096, 100):
        assert eca_kernel(channels) == timm_eca_kernel(channels)
    assert [eca_kernel(c) for c in (64, 256, 512, 1024, 2048)] == [3, 5, 5, 5, 7]


@pytest.mark.parametrize("name", sorted(TIMM))
def test_counts_equal_timms_and_names_round_trip(name):
    assert name in FAMILY_NAMES
    spec = spec_from_name(name)
    assert spec.name == name
    assert count(build(spec)).params == TIMM[name]
    assert [f.printed for f in figures_for(spec)] == [f"{TIMM[name]:,}"]


def test_eca_unit_layers_and_the_tiered_stem():
    graph = build(spec_from_name("ecaresnet26t"))
    names = [layer.name for layer in graph.layers]
    start = names.index("res2a_eca_pool")
    unit = graph.layers[start:start + 6]
    assert [l.type for l in unit] == ["Pooling", "Reshape", "Convolution", "Sigmoid", "Reshape",
                                      "Axpy"]
    assert unit[0].param.global_pooling and unit[0].top_shapes[0] == (1, 256, 1, 1)
    assert unit[1].top_shapes[0] == (1, 1, 1, 256)
    conv = unit[2].param
    assert (conv.num_output, conv.kernel, conv.pad, conv.bias_term) == (1, (1, 5), (0, 2), False)
    assert unit[4].top_shapes[0] == (1, 256, 1, 1)
    assert unit[5].bottoms == ("res2a_eca_gate", "res2a_branch2c", "res2a_branch1")
    kernels = [l.param.kernel[1] for l in graph.layers if l.name.endswith("_eca_conv")]
    assert kernels == [5] * 6 + [7] * 2
    stem = [l for l in graph.layers if l.type == "Convolution"][:3]
    assert [(c.param.num_output, c.param.kernel, c.param.stride) for c in stem] == \
        [(24, (3, 3), (2, 2)), (32, (3, 3), (1, 1)), (64, (3, 3), (1, 1))]
    assert spec_from_name("ecaresnet26t").to_dict()["eca_kernels"] == [5, 5, 5, 7]


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth=50, eca=True, se=16), "--eca and --se are two channel gates"),
    (dict(depth=50, eca=True, plain=True), "--eca puts an ECA unit"),
    (dict(depth=50, eca=True, preact=True), "--eca builds post-activation nets"),
    (dict(depth=50, tiered_stem=True), "--tiered-stem is the stem of timm's *t nets"),
    (dict(dataset="cifar10", depth=20, tiered_stem=True, avg_down=True, shortcut="B"),
     "--tiered-stem replaces the ImageNet 7x7 stem"),
])
def test_bad_combinations_fail_clearly(kwargs, message):
    with pytest.raises(NetgenError) as err:
        make_spec(**kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_names_fail_clearly():
    with pytest.raises(NetgenError, match="already means -avgdown"):
        spec_from_name("resnet50t-avgdown")
    with pytest.raises(NetgenError, match="is not a network name"):
        spec_from_name("seecaresnet50")  # SE and ECA together: no such kind
    assert spec_from_name("ecaresnet50").name == "ecaresnet50"  # ECA on the 7x7 stem


def test_cli(run_cli, tmp_path):
    result = run_cli("build", "--depth", "50", "--eca", "--deep-stem", "--avg-down",
                     "-o", tmp_path / "a")
    assert result.code == 0, result.err
    assert (tmp_path / "a" / "deploy.prototxt").read_text().count("_eca_conv\"") >= 16
    result = run_cli("build", "--depth", "50", "--tiered-stem", "-o", tmp_path / "b")
    assert result.code == 2 and not (tmp_path / "b").exists()
    assert result.err.count("\n") == 1 and "add --avg-down" in result.err
    listing = run_cli("list").out
    for name in TIMM:
        assert name in listing


def test_diff_names_the_eca_units_and_draw_boxes_them(run_cli, tmp_path):
    result = run_cli("diff", "ecaresnet50d", "resnet50d")
    assert result.code == 1 or "DIFFERENT" in result.out
    assert "  - efficient channel attention of all 16 blocks: A ECA k=5, 5, 5, 7 | B none" \
        in result.out.splitlines()
    assert "DIFFERENT (1 difference)" in result.out
    result = run_cli("diff", "ecaresnet50d", "ecaresnet50d")
    assert "verdict: EQUIVALENT" in result.out
    result = run_cli("draw", "ecaresnet26t", "-o", tmp_path / "e.svg")
    assert result.code == 0, result.err
    svg = (tmp_path / "e.svg").read_text()
    assert svg.count("ECA k=5, 256") == 2 and svg.count("ECA k=7, 2048") == 2

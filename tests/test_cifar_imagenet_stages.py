"""Issue 16 item 3: CIFAR-10 nets with the ImageNet stages, the literature's "ResNet-18 on
CIFAR-10" (the PyTorch CIFAR code's ResNet18/34/50/101/152 and PreActResNet18).

The reference counts are torch's sum(p.numel() for p in net.parameters()) of that code,
which counts conv and fc weights, the fc bias and every BatchNorm's weight and bias (not
its running statistics), as netgen counts Scale's gamma and beta; the unfolded fixture of
cifar_code_exports counts them again, without netgen.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import onnx
import pytest
from cifar_code_exports import cifar_code_resnet, learned_parameters
from torchvision_exports import random_input, reference_forward, relative_error, softmax

from netgen.arch import ir
from netgen.arch.builder import build
from netgen.arch.counting import count
from netgen.arch.paper_figures import figures_for
from netgen.arch.spec import IMAGENET_STAGES_NAMES, ArchSpec, make_spec, spec_from_name
from netgen.caffe.prototxt import solver_options
from netgen.errors import NetgenError
from netgen.jobs.build import write_build
from netgen.onnx.runtime import create_session

TORCH_COUNTS = {18: 11_173_962, 34: 21_282_122, 50: 23_520_842, 101: 42_512_970,
                152: 58_156_618}
R18 = "cifar10-resnet18-imagenetstages"


def _layers(spec: ArchSpec) -> dict[str, ir.Layer]:
    return {layer.name: layer for layer in build(spec).layers}


# ------------------------------------------------------------------------------ counts

@pytest.mark.parametrize("depth", sorted(TORCH_COUNTS))
def test_parameters_are_the_cifar_codes(depth):
    spec = make_spec("cifar10", depth, imagenet_stages=True)
    assert spec.name == f"cifar10-resnet{depth}-imagenetstages"
    assert count(build(spec)).params == TORCH_COUNTS[depth]
    fixture = cifar_code_resnet(depth, "bn")  # counted from the export, without netgen
    assert learned_parameters(fixture) == TORCH_COUNTS[depth]
    [figure] = figures_for(spec)
    assert figure.printed == f"{TORCH_COUNTS[depth]:,}" and figure.matches(TORCH_COUNTS[depth])


def test_resnet18_counts_per_stage():
    """By hand, 32x32 input, multiply-adds = weights x output positions:

    conv1    3*64*9 = 1,728 weights + 128 BN; x 32*32 -> 1,769,472
    conv2_x  4 convs 64*64*9 = 36,864 each (147,456) + 4*128 BN = 147,968;
             x 32*32 -> 150,994,944
    conv3_x  64*128*9 = 73,728 + 3 * 128*128*9 = 442,368 + projection 64*128 = 8,192
             + 5*256 BN = 525,568; (73,728 + 442,368 + 8,192) x 16*16 -> 134,217,728
    conv4_x  128*256*9 = 294,912 + 3 * 589,824 + 128*256 = 32,768 + 5*512 BN = 2,099,712;
             (294,912 + 1,769,472 + 32,768) x 8*8 -> 134,217,728
    conv5_x  256*512*9 = 1,179,648 + 3 * 2,359,296 + 256*512 = 131,072 + 5*1024 BN
             = 8,393,728; (1,179,648 + 7,077,888 + 131,072) x 4*4 -> 134,217,728
    head     fc 512*10 + 10 = 5,130; 5,120 multiply-adds
    total    11,173,962 parameters, 555,422,720 multiply-adds
    """
    counted = count(build(spec_from_name(R18)))
    got = {s.stage: (s.output_size, s.params, s.macs) for s in counted.stages}
    assert got == {
        "conv1": ((64, 32, 32), 1_856, 1_769_472),
        "conv2_x": ((64, 32, 32), 147_968, 150_994_944),
        "conv3_x": ((128, 16, 16), 525_568, 134_217_728),
        "conv4_x": ((256, 8, 8), 2_099_712, 134_217_728),
        "conv5_x": ((512, 4, 4), 8_393_728, 134_217_728),
        "head": ((10,), 5_130, 5_120),
    }
    assert (counted.params, counted.macs) == (11_173_962, 555_422_720)


def test_preact_differs_from_the_code_by_the_final_bn_only():
    """netgen's pre-activation nets end with BN-ReLU; that code's PreActResNet18 does not:
    one BN's scale and shift over 512 channels apart, everything else the same."""
    spec = spec_from_name("cifar10-preresnet18-imagenetstages")
    fixture = cifar_code_resnet(18, "bn", preact=True)
    assert count(build(spec)).params == learned_parameters(fixture) + 2 * 512 == 11_172_170
    assert figures_for(spec) == []


# ------------------------------------------------------------------------------ names

@pytest.mark.parametrize("name", IMAGENET_STAGES_NAMES + (
    "cifar10-resnet18-imagenetstages-A", "cifar10-resnet50-imagenetstages-stride1x1",
    "cifar10-resnet18-imagenetstages-classes100-input64", "cifar10-plain18-imagenetstages",
    "cifar10-resnet26-2-2-2-2-bottleneck-imagenetstages", "cifar10-preresnet200-imagenetstages"))
def test_names_round_trip(name):
    spec = spec_from_name(name)
    assert spec.name == name and spec.imagenet_stages and spec.dataset == "cifar10"
    assert spec.to_dict()["imagenet_stages"] is True


@pytest.mark.parametrize(("name", "canonical"), [
    ("cifar10-resnet18-imagenetstages-B", R18),
    ("cifar10-resnet50-imagenetstages-stride3x3", "cifar10-resnet50-imagenetstages"),
    ("cifar10-resnet18-imagenetstages-input32", R18),
    ("cifar10-resnet18-imagenetstages-classes10", R18),
    ("cifar10-resnet18-2-2-2-2-basic-imagenetstages", R18),
])
def test_non_canonical_names_are_refused_with_the_canonical_one(name, canonical):
    with pytest.raises(NetgenError, match=f"did you mean '{canonical}'"):
        spec_from_name(name)


def test_names_do_not_collide_with_the_papers():
    paper = make_spec("cifar10", 50)  # the paper's 6n+2 net, n = 8
    assert paper.name == "cifar10-resnet50-A" and paper.stages == (8, 8, 8)
    assert not paper.imagenet_stages and "imagenet_stages" not in paper.to_dict()
    ours = make_spec("cifar10", 50, imagenet_stages=True)
    assert ours.stages == (3, 4, 6, 3) and ours.name != paper.name
    assert make_spec("cifar10", imagenet_stages=True).name == R18  # depth 18 unless told
    # positional construction of the old fields still works, the new field last
    old = ArchSpec("imagenet", 18, "basic", (2, 2, 2, 2), (64, 128, 256, 512), "B", 1000, 224)
    assert not old.imagenet_stages and old == make_spec("imagenet", 18)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(dataset="imagenet", depth=18), "--imagenet-stages gives a CIFAR-10 net"),
    (dict(dataset="cifar10", depth=20), "CIFAR-10 --imagenet-stages depth 20 is not in Table 1"),
    (dict(dataset="cifar10", stages=(3, 3, 3)), "CIFAR-10 --imagenet-stages nets have 4 stages"),
    (dict(dataset="cifar10", stem_pool="msra"), "--stem-pool applies to ImageNet nets only"),
    (dict(dataset="cifar10", depth=18, stride_in="3x3"), "bottleneck blocks only"),
])
def test_bad_requests_name_what_is_allowed(kwargs, message):
    with pytest.raises(NetgenError, match=message):
        make_spec(imagenet_stages=True, **kwargs)


def test_cli_refuses_imagenet_in_one_line(run_cli, tmp_path):
    result = run_cli("build", "--imagenet-stages", "--out", tmp_path / "x")
    assert result.code == 2 and not (tmp_path / "x").exists()
    assert len(result.err.strip().splitlines()) == 1 and "--dataset cifar10" in result.err
    assert "ResNet-18 on CIFAR-10" in run_cli("build", "--help").out


# ------------------------------------------------------------------------------ the graph

def test_stem_is_a_3x3_conv_with_no_pool_and_the_head_pools_4x4():
    layers = _layers(spec_from_name(R18))
    conv1 = layers["conv1"].param
    assert (conv1.num_output, conv1.kernel, conv1.stride, conv1.pad, conv1.bias_term) == \
        (64, (3, 3), (1, 1), (1, 1), False)
    assert [layers[n].type for n in ("bn_conv1", "scale_conv1", "conv1_relu")] == \
        ["BatchNorm", "Scale", "ReLU"]
    pools = [layer for layer in layers.values() if layer.type == "Pooling"]
    assert [p.name for p in pools] == ["pool5"]
    assert (pools[0].param.pool, pools[0].param.kernel) == ("AVE", (4, 4))
    assert layers["fc10"].param.num_output == 10
    # option B: projections (conv + BN) only where the shape changes
    assert [n for n in layers if n.startswith("res") and n.endswith("_branch1")] == \
        ["res3a_branch1", "res4a_branch1", "res5a_branch1"]
    assert "bn3a_branch1" in layers


def test_bottleneck_stride_sits_on_the_3x3_unless_told():
    default = _layers(spec_from_name("cifar10-resnet50-imagenetstages"))
    assert default["res3a_branch2b"].param.stride == (2, 2)
    assert default["res3a_branch2a"].param.stride == (1, 1)
    other = _layers(spec_from_name("cifar10-resnet50-imagenetstages-stride1x1"))
    assert other["res3a_branch2a"].param.stride == (2, 2)
    assert other["res3a_branch2b"].param.stride == (1, 1)
    assert default["res2a_branch2c"].param.num_output == 256  # expansion 4, as the code


def test_preact_stem_is_bare_and_projections_have_no_bn():
    layers = _layers(spec_from_name("cifar10-preresnet18-imagenetstages"))
    assert "bn_conv1" not in layers and layers["bn2a_branch2a"].bottoms == ("conv1",)
    assert layers["res3a_branch1"].bottoms == ("bn3a_branch2a",)  # on relu(bn1(x))
    assert "bn3a_branch1" not in layers and "bn_final" in layers


def test_solver_is_the_cifar_schedule_without_warm_up():
    for name in ("cifar10-resnet152-imagenetstages", R18):
        [(file_name, solver)] = solver_options(spec_from_name(name), 128)
        assert file_name == "solver.prototxt"
        assert (solver.base_lr, solver.stepvalue, solver.max_iter) == (0.1, (32_000, 48_000),
                                                                       64_000)
    assert len(solver_options(make_spec("cifar10", 110), 128)) == 2  # the paper's keeps it


# ------------------------------------------------------------------------------ the commands

def test_build_is_deterministic_and_validates(run_cli, tmp_path):
    for out in ("one", "two"):
        result = run_cli("build", "--dataset", "cifar10", "--imagenet-stages", "--weights",
                         "--out", tmp_path / out)
        assert result.code == 0, result.err
    files = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert files == ["deploy.prototxt", "model.caffemodel", "model.onnx", "net.svg",
                     "solver.prototxt", "summary.json", "train_val.prototxt"]
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["spec"]["imagenet_stages"] is True and summary["parameters"] == 11_173_962
    train_val = (tmp_path / "one" / "train_val.prototxt").read_text()
    assert "examples/cifar10/cifar10_train_lmdb" in train_val and "crop_size: 32" in train_val
    result = run_cli("validate", tmp_path / "one", "--json")
    report = json.loads(result.out)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    opencv = "PASS" if importlib.util.find_spec("cv2") else "SKIP"  # validate's own rule
    assert result.code == 0 and statuses == {"prototxt": "PASS", "onnx": "PASS",
                                             "forward": "PASS", "counts": "PASS",
                                             "formats": "PASS", "opencv": opencv}
    counts = next(c for c in report["checks"] if c["name"] == "counts")
    assert "11,173,962 (PyTorch CIFAR code)" in counts["figure"]
    result = run_cli("bench", tmp_path / "one", "--device", "cpu", "--batch", "1,2",
                     "--repeat", "2", "--json")
    assert result.code == 0, result.err
    bench = json.loads(result.out)
    assert bench["network"] == R18 and [t["batch"] for t in bench["timings"]] == [1, 2]
    assert all(t["images_per_s"] > 0 for t in bench["timings"])


def test_list_shows_them_with_their_counts(run_cli):
    rows = [r for r in json.loads(run_cli("list", "--json").out)
            if r["section"] == "imagenet-stages"]
    assert [r["name"] for r in rows] == list(IMAGENET_STAGES_NAMES)
    by_name = {r["name"]: r for r in rows}
    for depth, params in TORCH_COUNTS.items():
        assert by_name[f"cifar10-resnet{depth}-imagenetstages"]["parameters"] == params
    assert by_name[R18]["multiply_adds"] == 555_422_720
    assert "CIFAR-10 with ImageNet stages" in run_cli("list").out


def test_summary_and_draw(run_cli, tmp_path):
    text = run_cli("summary", "--dataset", "cifar10", "--imagenet-stages", "--depth", "50").out
    assert text.startswith("cifar10-resnet50-imagenetstages: 50 layers") and "no pool1" in text
    assert "23,520,842" in text
    result = run_cli("draw", R18, "-o", tmp_path / "net.svg")
    assert result.code == 0, result.err
    svg = (tmp_path / "net.svg").read_text()
    assert "3x3 conv, 64" in svg and "7x7" not in svg and "max pool" not in svg


@pytest.mark.parametrize(("other", "words"), [
    ("resnet18-B", ("stem: A 3x3 conv 64, ReLU | B 7x7 conv 64 /2, ReLU, 3x3 max pool /2",
                    "input: A [[1, 3, 32, 32]]")),
    ("cifar10-resnet20-A", ("stage 5: A 2 basic blocks, width 512 | B nothing",
                            "out_channels A 64 | B 16")),
])
def test_diff_names_the_differences(run_cli, other, words):
    result = run_cli("diff", R18, other)
    assert result.code == 1 and not result.err
    assert "verdict: DIFFERENT (3 differences)" in result.out
    for text in words:
        assert text in result.out


# ------------------------------------------------------------------------------ their exports

@pytest.mark.parametrize(("depth", "exporter", "dynamic"), [
    (18, "torchscript", False), (18, "torchscript", True), (18, "dynamo", False),
    (18, "bn", False), (50, "torchscript", True)])
def test_diff_of_the_codes_export_is_equivalent(run_cli, tmp_path, depth, exporter, dynamic):
    """The view's size computed from Shape (a dynamic batch) or from unfolded constants is
    folded by the reader, so the head is the InnerProduct's own flattening."""
    model = cifar_code_resnet(depth, exporter, seed=2, dynamic_batch=dynamic)
    assert ("Shape" in {n.op_type for n in model.graph.node}) == dynamic
    onnx.save(model, tmp_path / "export.onnx")
    result = run_cli("diff", tmp_path / "export.onnx", f"cifar10-resnet{depth}-imagenetstages")
    assert result.code == 0, result.out + result.err
    assert "verdict: EQUIVALENT" in result.out
    # the paper's CIFAR-10 ResNet-50 is another net
    assert run_cli("diff", tmp_path / "export.onnx", f"cifar10-resnet{depth}-imagenetstages-"
                   + ("stride1x1" if depth == 50 else "A")).code == 1


def test_diff_of_preactresnet18_names_only_the_final_bn_relu(run_cli, tmp_path):
    onnx.save(cifar_code_resnet(18, "bn", preact=True), tmp_path / "preact.onnx")
    result = run_cli("diff", tmp_path / "preact.onnx", "cifar10-preresnet18-imagenetstages")
    assert result.code == 1 and "verdict: DIFFERENT (1 difference)" in result.out
    assert "after the sum of block A /layer4/layer4.1; B res5b: A nothing | B BN ReLU" \
        in result.out


@pytest.mark.parametrize(("depth", "exporter", "dynamic"), [
    (18, "torchscript", True), (18, "bn", False), (50, "dynamo", False)])
def test_like_puts_the_codes_weights_on_netgens_network(run_cli, tmp_path, depth, exporter,
                                                        dynamic):
    cv2 = pytest.importorskip("cv2")
    name = f"cifar10-resnet{depth}-imagenetstages"
    model = cifar_code_resnet(depth, exporter, seed=5, dynamic_batch=dynamic)
    onnx.save(model, tmp_path / "export.onnx")
    result = run_cli("convert", tmp_path / "export.onnx", "--like", name, "-o", tmp_path / "out")
    assert result.code == 0, result.err
    write_build(spec_from_name(name), tmp_path / "built", onnx=False)
    out = tmp_path / "out"
    assert (out / "deploy.prototxt").read_bytes() == \
        (tmp_path / "built" / "deploy.prototxt").read_bytes()
    batch = random_input(model, 1, seed=7)
    want = softmax(reference_forward(model, batch))
    net = cv2.dnn.readNetFromCaffe(str(out / "deploy.prototxt"), str(out / "model.caffemodel"))
    net.setInput(batch)
    assert relative_error(net.forward(), want) <= 1e-4
    got = create_session(out / "model.onnx", device="cpu").run_list(batch)[-1]
    assert relative_error(got, want) <= 1e-4
    assert np.argmax(got) == np.argmax(want)


def test_a_gather_of_a_computed_tensor_is_refused_in_one_line(run_cli, tmp_path):
    """Only shape arithmetic on constants folds; a Gather of activations has no Caffe layer."""
    model = cifar_code_resnet(18, "torchscript", dynamic_batch=True)
    gather = next(n for n in model.graph.node if n.op_type == "Gather")
    gather.input[0] = next(n for n in model.graph.node if n.op_type == "AveragePool").output[0]
    onnx.save(model, tmp_path / "bad.onnx")
    result = run_cli("diff", tmp_path / "bad.onnx", R18)
    assert result.code == 2 and len(result.err.strip().splitlines()) == 1
    assert "(Gather): the data" in result.err and "must be a constant" in result.err

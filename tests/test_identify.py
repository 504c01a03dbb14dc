"""`netgen identify FILE`: the netgen name of the architecture in a file.

The reference is the file's origin: a torchvision-shaped export of resnet50 is torchvision's
ResNet-50 (`resnet50-B-stride3x3-noconv1bias-torchpool`), a real torch export of the PyTorch
CIFAR code's ResNet-34 is `cifar10-resnet34-imagenetstages`, a build folder of NAME is NAME.
The name identify prints must also build, with the command it prints, a network that diff
calls EQUIVALENT to the file.
"""

from __future__ import annotations

import json

import onnx
import pytest

import keras_exports
import mxnet_exports
import real_exports
from netgen.analysis.topology import analyse
from netgen.arch.spec import spec_from_name
from netgen.jobs.build import write_build
from netgen.jobs.diff import compare, load_side
from netgen.jobs.identify import Score, build_command, identify
from netgen.jobs.paper import family_specs, imagenet_stages_specs, iresnet_specs, paper_specs
from torchvision_exports import torchvision_resnet

# Every network `netgen list` shows, except the two deepest (their own tests cover them).
LISTED = [spec.name for spec in paper_specs() + family_specs() + imagenet_stages_specs()
          + iresnet_specs()
          if spec.name not in ("cifar10-resnet1202-A", "cifar10-preresnet1001", "iresnet200")]


@pytest.mark.parametrize("name", LISTED)
def test_every_listed_network_names_itself(name):
    found = identify(name)
    assert found.equivalent and found.name == name and found.findings == []
    assert found.misfits == []


@pytest.mark.parametrize("name", ["resnet50-B", "plain34", "cifar10-resnet20-A",
                                  "cifar10-preresnet164", "resnext50-32x4d-msrapool",
                                  "cifar10-resnet18-imagenetstages", "resnet18-A-classes100-input112"])
def test_a_build_folder_and_its_files_are_the_build(tmp_path, run_cli, name):
    """Folder and deploy carry netgen's seeded weights (not data): the name comes back
    exactly; the ONNX file holds them as data, where the published ResNet-50's conv1 bias
    is zeros at initialisation, so that one reads as the bias-free spelling (EQUIVALENT)."""
    write_build(spec_from_name(name), tmp_path / "b")
    for arg in (tmp_path / "b", tmp_path / "b" / "deploy.prototxt", tmp_path / "b" / "model.onnx"):
        result = run_cli("identify", arg, "--json")
        assert result.code == 0, result.err
        data = json.loads(result.out)
        want = name
        if arg.suffix == ".onnx" and name == "resnet50-B":
            want = "resnet50-B-noconv1bias"
        assert data["name"] == want and data["equivalent"] is True


TORCHVISION = [
    (18, "resnet18-B-torchpool-input64"), (34, "resnet34-B-torchpool-input64"),
    (50, "resnet50-B-stride3x3-noconv1bias-torchpool-input64"),
    ("resnext50_32x4d", "resnext50-32x4d-input64"), ("wide_resnet50_2", "wide-resnet50-2-input64")]


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo", "bn"])
@pytest.mark.parametrize("arch, name", TORCHVISION)
def test_torchvision_exports_are_named_as_convert_like_takes_them(tmp_path, run_cli, arch, name,
                                                                  exporter):
    onnx.save(torchvision_resnet(arch, exporter, input_size=64), tmp_path / "m.onnx")
    result = run_cli("identify", tmp_path / "m.onnx", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["name"] == name
    if exporter != "torchscript" or arch == "wide_resnet50_2":
        return  # the exporters alike; --like of every one is tests/test_torchvision_like.py's
    # the name identify gives is the one --like accepts
    result = run_cli("convert", tmp_path / "m.onnx", "--like", name, "-o", tmp_path / "out")
    assert result.code == 0, result.err


def test_a_caffe_stem_export_is_named_with_msras_pool1(tmp_path, run_cli):
    onnx.save(torchvision_resnet(50, "dynamo", input_size=64, stem="caffe"), tmp_path / "m.onnx")
    result = run_cli("identify", tmp_path / "m.onnx")
    assert result.code == 0
    assert result.out.splitlines()[0].endswith(": resnet50-B-stride3x3-noconv1bias-input64")
    assert result.out.splitlines()[1] == ("build: netgen build --depth 50 --input-size 64 "
                                          "--stride-in 3x3 --no-conv1-bias")
    assert "BatchNorm: A has 53 convolutions with a bias and no BatchNorm (folded)" in result.out


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_real_exports_of_the_pytorch_cifar_code(tmp_path, depth, exporter):
    file = f"kuangliu_resnet{depth}.{exporter}.onnx"
    onnx.save(real_exports.load(file), tmp_path / file)
    found = identify(str(tmp_path / file))
    assert found.name == f"cifar10-resnet{depth}-imagenetstages", found.findings


# The PyTorch CIFAR code's own files (models/preact_resnet.py, senet.py, resnext.py): the
# name, and the build command that makes it, with torch's parameter count (manifest.json).
CIFAR_CODE = {
    "kuangliu_preactresnet18": ("cifar10-preresnet18-imagenetstages-nofinalbn",
                                "--dataset cifar10 --imagenet-stages --depth 18 --preact "
                                "--no-final-bn", 11_171_146),
    "kuangliu_senet18": ("cifar10-preseresnet18-imagenetstages-stembn-nofinalbn",
                         "--dataset cifar10 --imagenet-stages --depth 18 --se 16 --preact "
                         "--stem-bn --no-final-bn", 11_260_354),
    "kuangliu_resnext29_2x64d": ("cifar10-resnext29-2x64d-stem1x1",
                                 "--dataset cifar10 --depth 29 --groups 2 --stem-kernel 1",
                                 9_128_778),
}


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("model", sorted(CIFAR_CODE))
def test_the_cifar_codes_preact_se_and_resnext_files_are_named(tmp_path, run_cli, model,
                                                                exporter):
    name, options, parameters = CIFAR_CODE[model]
    file = f"{model}.{exporter}.onnx"
    assert real_exports.record(file)["parameters"] == parameters
    onnx.save(real_exports.load(file), tmp_path / file)
    result = run_cli("identify", tmp_path / file, "--json")
    assert result.code == 0, result.out + result.err
    data = json.loads(result.out)
    assert data["name"] == name and data["findings"] == [] and data["misfits"] == []
    assert " ".join(data["build"]) == "netgen build " + options
    summary = run_cli("summary", *options.split(), "--json")
    info = json.loads(summary.out)
    assert info["name"] == name and info["parameters"] == parameters
    diff = run_cli("diff", tmp_path / file, name)
    assert diff.code == 0 and "verdict: EQUIVALENT" in diff.out


@pytest.mark.parametrize("name", ["resnet50-B-stride3x3-noconv1bias-torchpool-input64",
                                  "cifar10-resnet56-B", "wide-resnet50-2-msrapool",
                                  "resnet26-2-2-2-2-bottleneck-C-classes10", "preresnet200",
                                  "cifar10-resnet50-imagenetstages-stride1x1", "plain18"])
def test_the_build_command_makes_the_name(run_cli, name):
    argv = build_command(spec_from_name(name))
    assert argv[:2] == ["netgen", "build"]
    result = run_cli("summary", *argv[2:], "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["name"] == name


def test_bad_input_is_one_line(tmp_path, run_cli):
    for args, message in [((tmp_path / "none.onnx",), "no such file"),
                          (("resnet18-Q",), "neither a file nor a network name")]:
        result = run_cli("identify", *args)
        assert result.code == 2 and message in result.err
        assert len(result.err.strip().splitlines()) == 1
    (tmp_path / "junk.onnx").write_bytes(b"\x00\x01not onnx")
    result = run_cli("identify", tmp_path / "junk.onnx")
    assert result.code == 2 and "not a readable ONNX model" in result.err


def test_identify_reads_the_train_val_of_another_project_with_its_input_shape(tmp_path, run_cli):
    from trainval_fixtures import cifar_resnet_train_val

    path = tmp_path / "trainval.prototxt"
    path.write_text(cifar_resnet_train_val())
    result = run_cli("identify", path)
    assert result.code == 2 and "--input-shape" in result.err
    result = run_cli("identify", path, "--input-shape", "1,3,32,32")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0].endswith(": cifar10-resnet20-B")


# Every real file among the fixtures that is none of netgen's networks, with the closest
# name a person picks from its architecture (written down by hand, not read off identify):
# - Keras's ResNet50V2 is a pre-activation ResNet-50 (He et al., ECCV 2016, as Keras writes
#   it: conv1 bias, the stride in each stage's last block, biased last 1x1s), at 64 pixels;
# - Keras's ResNet50(include_top=False) + Flatten + Dense(10) is ResNet-50 (stride on the
#   first 1x1, torchvision's pool1, no conv1 bias) whose head flattens instead of pooling;
# - Gluon's resnet18_v2 is a pre-activation ResNet-18 with an input BatchNorm;
# - SENet's SE-ResNet-50 cut to stages 3-2 is an SE-ResNet-50 of SENet's layout (stride on
#   the first 1x1, MSRA's pool1), with its reduced fixture's 10 classes at 64 pixels;
# - SENet-154 cut to stages 3-1 is an SE-ResNeXt of 64 groups of 4 (its 64-64-128 stem is
#   the difference), the nearest depth of that kind 50.
UNNAMED = {
    ("keras", "ResNet50V2"): "preresnet50-input64",
    ("keras", "ResNet50V2-tf"): "preresnet50-input64",
    ("keras", "ResNet50-flatten"): "resnet50-B-noconv1bias-torchpool-classes10-input64",
    ("keras", "ResNet50-flatten-tf"): "resnet50-B-noconv1bias-torchpool-classes10-input64",
    ("mxnet", "resnet18_v2"): "preresnet18-input64",
    ("senet", "SE-ResNet-reduced.prototxt"): "seresnet50-stride1x1-msrapool-classes10-input64",
    ("senet", "SENet-154-reduced.prototxt"): "seresnext50-64x4d-classes10-input64",
    # timm's selective-kernel nets: the plain net, SK units being no spec option
    ("exports", "timm_skresnet18.torchscript.onnx"): "resnet18-B-torchpool",
    ("exports", "timm_skresnet18.dynamo.onnx"): "resnet18-B-torchpool",
    ("exports", "timm_skresnet34.torchscript.onnx"): "resnet34-B-torchpool",
    ("exports", "timm_skresnet34.dynamo.onnx"): "resnet34-B-torchpool",
    # timm's ResNeSt: netgen builds no split attention; the radix convolution's 2 groups
    **{("exports", f"timm_resnest{depth}d.{exporter}.onnx"): name
       for depth, name in ((14, "resnext14d-2x64d-1-1-1-1-bottleneck-C"),
                           (26, "resnext26d-2x64d"), (50, "resnext50d-2x64d"))
       for exporter in ("torchscript", "dynamo")},
    # timm's GroupNorm ResNet-50: the norms (blocks and stem) are its two differences
    **{("exports", f"timm_resnet50_gn.{e}.onnx"): "resnet50-B-stride3x3-noconv1bias-torchpool"
       for e in ("torchscript", "dynamo")},
    # timm's BlurPool ResNet-50: the blur pools (stem, first block of stages 3 to 5)
    **{("exports", f"timm_resnetblur50.{e}.onnx"): "resnet50-B-noconv1bias"
       for e in ("torchscript", "dynamo")},
}


def _real_files(tmp_path) -> dict[tuple[str, str], str]:
    """Every real export or file among the fixtures, saved where identify reads it."""
    files = {}
    for record in real_exports.manifest():
        onnx.save(real_exports.load(record["file"]), tmp_path / record["file"])
        files[("exports", record["file"])] = str(tmp_path / record["file"])
    for name, file in keras_exports.FILES.items():
        files[("keras", name)] = str(keras_exports.save(name, tmp_path / f"keras-{file}"))
    for name in mxnet_exports.NAMES:
        files[("mxnet", name)] = str(mxnet_exports.save(name, tmp_path / f"mxnet-{name}.onnx"))
    senet = real_exports.EXPORTS.parent / "senet"
    for path in sorted(senet.glob("*.prototxt")):
        files[("senet", path.name)] = str(path)
    return files


def test_every_real_file_is_named_or_has_the_closest_name_a_person_picks(tmp_path):
    files = _real_files(tmp_path)
    assert set(UNNAMED) <= set(files)
    for key, path in files.items():
        found = identify(path)
        if key in UNNAMED:
            assert not found.equivalent and found.closest == UNNAMED[key], (key, found.closest)
            # the name it gives builds, and diff lists the same differences against it
            assert spec_from_name(found.closest).name == found.closest
        else:
            assert found.equivalent, (key, found.closest, found.findings)


def test_the_closest_name_ranks_the_outline_before_the_ops(tmp_path):
    """Gluon's resnet18_v2 is one stem BatchNorm and one BN-ReLU from preresnet18-input64;
    a CIFAR-10 pre-activation net of the same blocks is one difference (the stem) from it
    in diff's grouping but does not even downsample in its stem: the outline decides."""
    side = load_side(str(mxnet_exports.save("resnet18_v2", tmp_path / "m.onnx")))
    left = analyse(side, canonical=True)
    near = Score.of(compare(side, load_side("preresnet18-input64"), left=left))
    far = Score.of(compare(side, load_side(
        "cifar10-preresnet18-imagenetstages-classes1000-input64"), left=left))
    assert near.outline == 0 and far.outline == 1
    assert near < far

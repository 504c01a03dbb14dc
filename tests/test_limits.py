"""Resource limits and output paths: refused up front, with the size in the message.

Every entry point (build, convert, validate, diff) goes through the same bounds: the spec's
layer ceiling, shape inference's activation and weight ceilings, and the readers' file-size
ceilings (prototxt, caffemodel, ONNX). Huge files are sparse (no disk, no reading) or the
limits are monkeypatched small; nothing here allocates more than a few MB.

Output paths: --out into a file, into an unwritable folder, or onto an existing build
without --force is a one-line error with exit code 2, and nothing outside the chosen folder
is written or deleted, not even a temporary file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from netgen.arch import shapes, spec
from netgen.caffe import proto as caffe_proto
from netgen.caffe import reader as caffe_reader
from netgen.errors import NetgenError
from netgen.onnx import reader as onnx_import

GiB = 2**30


def sparse(path: Path, size: int) -> Path:
    """A file of `size` bytes that takes no disk space (a hole)."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def one_error(result, *needles: str) -> str:
    assert result.code == 2, (result.code, result.out, result.err)
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def small_net(tmp_path, run_cli):
    """A CIFAR ResNet-8 build (deploy, caffemodel, model.onnx) to take files from."""
    folder = tmp_path / "small"
    assert run_cli("build", "--dataset", "cifar10", "--depth", "8", "--weights",
                   "--out", folder).code == 0
    return folder


# --------------------------------------------------------------------------- build


@pytest.mark.parametrize("args, needles", [
    (["--depth", "152", "--input-size", "4096"],
     ["activations would need more than 2,147,483,648 float32 elements", "GiB", "by layer"]),
    (["--stages", "3,4,6,3", "--classes", "1000000"],
     ["weights would need more than 1,073,741,824 float32 elements", "7.7 GiB", "fc1000000"]),
    (["--stages", "5000,5000,5000,5000"],
     ["would have about 320016 layers; the limit is 200000"]),
    (["--input-size", "5000"], ["input size 5000 is over the limit of 4096"]),
    (["--classes", "1000001"], ["number of classes 1000001 is over the limit of 1000000"]),
])
def test_build_refuses_oversized_networks_up_front(tmp_path, run_cli, args, needles):
    out = tmp_path / "out"
    one_error(run_cli("build", *args, "--weights", "--out", out), *needles)
    assert list(tmp_path.iterdir()) == []


def test_limits_are_read_at_call_time(tmp_path, run_cli, monkeypatch):
    """Monkeypatching the module constants tightens every entry point at once."""
    monkeypatch.setattr(shapes, "MAX_ACTIVATION_ELEMENTS", 100_000)
    one_error(run_cli("build", "--dataset", "cifar10", "--depth", "8", "--out", tmp_path / "a"),
              "more than 100,000 float32 elements")
    monkeypatch.setattr(shapes, "MAX_ACTIVATION_ELEMENTS", 2**31)
    monkeypatch.setattr(shapes, "MAX_PARAMETER_ELEMENTS", 10_000)
    one_error(run_cli("summary", "--dataset", "cifar10", "--depth", "8"),
              "weights would need more than 10,000 float32 elements")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- readers


def test_prototxt_over_the_limit_is_refused_by_size_without_reading(tmp_path, run_cli, small_net):
    huge = sparse(tmp_path / "huge.prototxt", caffe_reader.MAX_PROTOTXT_BYTES + 1)
    size = f"{caffe_reader.MAX_PROTOTXT_BYTES + 1:,} bytes (64.0 MiB)"
    with pytest.raises(NetgenError, match=r"67,108,865 bytes \(64\.0 MiB\) is more than"):
        caffe_reader.read_prototxt(huge)
    one_error(run_cli("convert", huge, "--output", tmp_path / "x.onnx"), size, "limit")
    assert not (tmp_path / "x.onnx").exists()


def test_diff_goes_through_the_prototxt_limit(small_net, run_cli, monkeypatch):
    monkeypatch.setattr(caffe_reader, "MAX_PROTOTXT_BYTES", 1000)
    size = (small_net / "deploy.prototxt").stat().st_size
    one_error(run_cli("diff", "cifar10-resnet8-A", small_net / "deploy.prototxt"),
              f"{size:,} bytes", "more than the 1,000-byte limit")


def test_prototxt_limit_applies_to_text_and_streams(tmp_path, monkeypatch, small_net):
    monkeypatch.setattr(caffe_reader, "MAX_PROTOTXT_BYTES", 1000)
    text = (small_net / "deploy.prototxt").read_text()
    with pytest.raises(NetgenError, match=f"<prototxt>: {len(text):,} bytes"):
        caffe_reader.read_prototxt(text)
    with pytest.raises(NetgenError, match="more than the 1,000-byte limit"):
        caffe_reader.read_prototxt("/dev/zero")  # st_size 0, never ends


def test_caffemodel_over_the_limit_is_refused_by_size(tmp_path, run_cli, small_net):
    huge = sparse(tmp_path / "huge.caffemodel", caffe_proto.DEFAULT_MAX_CAFFEMODEL_BYTES + 1)
    needles = ["4294967297 bytes (4.0 GiB) is more than the 4294967296-byte limit"]
    deploy = small_net / "deploy.prototxt"
    one_error(run_cli("convert", deploy, huge, "--output", tmp_path / "x.onnx"), *needles)
    one_error(run_cli("diff", deploy, deploy, "--caffemodel-b", huge), *needles)
    assert not (tmp_path / "x.onnx").exists()


def test_onnx_over_the_limit_is_refused_by_size(tmp_path, run_cli, small_net):
    huge = sparse(tmp_path / "huge.onnx", onnx_import.MAX_ONNX_BYTES + 1)
    one_error(run_cli("convert", huge, "--output", tmp_path / "x.prototxt"),
              "4294967297 bytes is larger than the limit of 4294967296")
    one_error(run_cli("diff", small_net / "model.onnx", huge), "4294967297 bytes")
    assert not (tmp_path / "x.prototxt").exists()


HUGE_INPUT = """
input: "data"
input_dim: 1 input_dim: 3 input_dim: 60000 input_dim: 60000
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 8 kernel_size: 3 } }
"""
HUGE_WEIGHTS = """
input: "data"
input_shape { dim: 1 dim: 4096 }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
        inner_product_param { num_output: 1000000 } }
"""


@pytest.mark.parametrize("text, needles", [
    (HUGE_INPUT, ["activations would need more than 2,147,483,648", "147.5 GiB", "'conv'"]),
    (HUGE_WEIGHTS, ["weights would need more than 1,073,741,824", "15.3 GiB", "'fc'"]),
])
def test_files_describing_huge_networks_are_refused_before_allocating(
        tmp_path, run_cli, small_net, text, needles):
    net = tmp_path / "net.prototxt"
    net.write_text(text)
    one_error(run_cli("convert", net, "--output", tmp_path / "x.onnx"), *needles)
    one_error(run_cli("diff", small_net / "deploy.prototxt", net), *needles)


@pytest.mark.parametrize("name, size, needle", [
    ("deploy.prototxt", caffe_reader.MAX_PROTOTXT_BYTES + 1, "67,108,865 bytes (64.0 MiB) is more than"),
    ("model.caffemodel", caffe_proto.DEFAULT_MAX_CAFFEMODEL_BYTES + 1,
     "4294967297 bytes (4.0 GiB) is more than"),
    ("model.caffemodel", caffe_proto.DEFAULT_MAX_CAFFEMODEL_BYTES + 1,
     "4,294,967,297 bytes is more than netgen's"),
    ("model.onnx", onnx_import.MAX_ONNX_BYTES + 1, "4,294,967,297 bytes is more than"),
])
def test_validate_reports_oversized_files_with_their_size(tmp_path, run_cli, small_net,
                                                          name, size, needle):
    """validate fails the checks that would read an oversized file (exit 1), naming the
    size, and hands it to no other tool (ORT, onnx, OpenCV would read it whole)."""
    folder = tmp_path / "build"
    folder.mkdir()
    for item in small_net.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    sparse(folder / name, size)
    result = run_cli("validate", folder, "--json")
    assert result.code == 1, result.err
    report = json.loads(result.out)
    failed = [c for c in report["checks"] if c["status"] == "FAIL"]
    assert failed and any(needle in json.dumps(c) for c in failed), report
    assert len(json.dumps(report)) < 20_000  # messages, not file contents


# --------------------------------------------------------------------------- output paths


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_out_pointing_at_or_into_a_file(tmp_path, run_cli):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    before = listing(tmp_path)
    one_error(run_cli("build", "--dataset", "cifar10", "--depth", "8", "--out", afile),
              "is a file, not a folder")
    one_error(run_cli("build", "--dataset", "cifar10", "--depth", "8", "--out", afile / "sub"),
              "is a file")
    assert listing(tmp_path) == before and afile.read_text() == "mine"


def test_out_in_an_unwritable_folder(tmp_path, run_cli, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "keep.txt").write_text("x")
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):  # root writes anywhere: make access() say no instead
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode, **kw: False
                                if Path(p) == locked else real(p, mode, **kw))
        before = listing(tmp_path)
        one_error(run_cli("build", "--dataset", "cifar10", "--depth", "8",
                          "--out", locked / "net"), "permission denied", str(locked))
        assert listing(tmp_path) == before
    finally:
        locked.chmod(0o755)


def test_existing_build_without_force_is_left_alone(tmp_path, run_cli):
    out = tmp_path / "net"
    assert run_cli("build", "--dataset", "cifar10", "--depth", "8", "--out", out).code == 0
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    before = listing(tmp_path)
    one_error(run_cli("build", "--dataset", "cifar10", "--depth", "14", "--out", out),
              "already exists", "--force")
    assert listing(tmp_path) == before
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamp


def test_failed_write_leaves_old_build_and_no_temporaries(tmp_path, run_cli, monkeypatch):
    """A disk that fills up in the middle of a --force build: old files, nothing else."""
    import errno

    from netgen.storage import commit

    out = tmp_path / "net"
    assert run_cli("build", "--dataset", "cifar10", "--depth", "8", "--out", out).code == 0
    old = {p.name: p.read_bytes() for p in out.iterdir()}
    (tmp_path / "neighbour.txt").write_text("keep")
    before = listing(tmp_path)
    staged = {"n": 0}
    real_stage = commit._stage

    def full_disk(folder, name, payload):
        staged["n"] += 1
        if staged["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_stage(folder, name, payload)

    monkeypatch.setattr(commit, "_stage", full_disk)
    one_error(run_cli("build", "--dataset", "cifar10", "--depth", "14", "--out", out, "--force"),
              "No space left on device")
    assert listing(tmp_path) == before
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old


def test_failed_new_folder_leaves_nothing(tmp_path, run_cli, monkeypatch):
    import errno

    from netgen.storage import atomic

    calls = {"n": 0}
    real = atomic.write_atomic

    def full_disk(path, data):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(atomic, "write_atomic", full_disk)  # commit.write_folder's writes
    (tmp_path / "neighbour.txt").write_text("keep")
    one_error(run_cli("build", "--dataset", "cifar10", "--depth", "8", "--out", tmp_path / "net"),
              "No space left on device")
    assert listing(tmp_path) == ["neighbour.txt"]


def test_spec_limits_are_the_documented_ones():
    """The figures the messages above quote."""
    assert spec.MAX_LAYERS == 200_000 and spec.MAX_INPUT_SIZE == 4096
    assert shapes.MAX_ACTIVATION_ELEMENTS == 2**31 and shapes.MAX_PARAMETER_ELEMENTS == 2**30
    assert caffe_reader.MAX_PROTOTXT_BYTES == 64 * 2**20
    assert caffe_proto.DEFAULT_MAX_CAFFEMODEL_BYTES == onnx_import.MAX_ONNX_BYTES == 4 * GiB

"""The paper's CIFAR-10 ResNets as the most used PyTorch reproduction writes them: option A's
zero channels on both sides of the subsampled input (`F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0,
planes // 4, planes // 4))`), real torch.onnx.export files (tests/fixtures/exports/).

netgen appends the zeros after the input; the two networks are equal up to a fixed
permutation of the residual stream's channels. diff says EQUIVALENT with a note, identify
names the file, and convert --like carries the weights through the permutation: the
numbers of the Caffe files (OpenCV) and of model.onnx (ONNX Runtime) are the file's own
(ONNX Runtime on the source). Without the permutation they are not, which the last test
shows, so the first ones cannot pass by accident.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import real_exports
from netgen.analysis import units

TOLERANCE = 1e-4
RESNET20 = ["cifar_resnet20.torchscript.onnx", "cifar_resnet20.dynamo.onnx",
            "cifar_resnet20.torchscript_nofold.onnx"]


def _save(tmp_path, file: str):
    path = tmp_path / file
    onnx.save(real_exports.load(file), path)
    return path


def _logits(path, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _relative(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("file", RESNET20)
def test_diff_is_equivalent_with_a_note_on_the_zero_channels(tmp_path, run_cli, file):
    result = run_cli("diff", _save(tmp_path, file), "cifar10-resnet20-A", "--json")
    assert result.code == 0, result.out
    data = json.loads(result.out)
    assert data["equivalent"] is True and data["findings"] == []
    assert len(data["a"]["representation"]["zeros_before"]) == 2
    note = [n for n in data["notes"] if n.startswith("option A:")]
    assert len(note) == 1 and "both sides of the subsampled input (2 shortcut(s)" in note[0]
    assert note[0].endswith("the same network up to a fixed permutation of channels")


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_identify_names_the_papers_cifar_networks(tmp_path, run_cli, depth, exporter):
    result = run_cli("identify", _save(tmp_path, f"cifar_resnet{depth}.{exporter}.onnx"), "--json")
    assert result.code == 0, result.out
    data = json.loads(result.out)
    assert data["name"] == f"cifar10-resnet{depth}-A"
    assert data["build"] == ["netgen", "build", "--dataset", "cifar10", "--depth", str(depth)]
    assert any(n.startswith("option A: A puts the zero channels on both sides")
               for n in data["notes"])


def _like(tmp_path, run_cli, file: str) -> tuple[np.ndarray, np.ndarray]:
    """convert FILE --like cifar10-resnet20-A into tmp_path/out; a batch and the source's
    probabilities on it (ONNX Runtime)."""
    source = _save(tmp_path, file)
    result = run_cli("convert", source, "--like", "cifar10-resnet20-A", "-o", tmp_path / "out")
    assert result.code == 0, result.err
    batch = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
    return batch, _softmax(_logits(source, batch))


def _opencv(tmp_path, batch: np.ndarray, want: np.ndarray) -> float:
    net = cv2.dnn.readNetFromCaffe(str(tmp_path / "out" / "deploy.prototxt"),
                                   str(tmp_path / "out" / "model.caffemodel"))
    net.setInput(batch)
    return _relative(net.forward(), want)


@pytest.mark.parametrize("file", RESNET20)
def test_convert_like_maps_the_weights_through_the_permutation(tmp_path, run_cli, file):
    batch, want = _like(tmp_path, run_cli, file)
    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: batch})[-1]
    assert _opencv(tmp_path, batch, want) <= TOLERANCE
    assert _relative(got, want) <= TOLERANCE


def test_without_the_permutation_the_numbers_are_not_the_files(tmp_path, run_cli, monkeypatch):
    """The same conversion with every channel order taken as the identity: the weights land
    on the wrong channels after the first stage that widens."""
    monkeypatch.setattr(units, "channel_orders", lambda u: [None] * len(u.units))
    batch, want = _like(tmp_path, run_cli, RESNET20[0])
    assert _opencv(tmp_path, batch, want) > 1e-2


def test_channel_orders_of_the_file():
    """The orders themselves: stage 3's stream holds the subsampled input in channels 8..23
    (8 zeros before it, 8 after), stage 4's in 16..47 in stage 3's order, then the zeros."""
    from netgen.onnx.reader import import_model

    graph, _ = import_model(real_exports.load(RESNET20[1]))
    table: dict = {}
    read = units.Units(graph, table)
    orders = units.channel_orders(read)
    concats = [u for u in read.units if u.kind == "Concat"]
    first, second = (orders[u.op.id] for u in concats)
    assert list(first) == list(range(8, 24)) + list(range(8)) + list(range(24, 32))
    inner = list(16 + first)
    assert list(second) == inner + list(range(16)) + list(range(48, 64))


@pytest.mark.parametrize("file", RESNET20[:2])
@pytest.mark.parametrize("file_first", [True, False])
def test_diff_numeric_runs_the_other_side_through_the_permutation(tmp_path, run_cli, file,
                                                                   file_first):
    """diff --numeric carries A's weights to B as --like does: the file's own (real, refilled)
    weights on netgen's layers, or netgen's seeded ones on the file's, either way within
    ONNX Runtime's float error."""
    pair = [_save(tmp_path, file), "cifar10-resnet20-A"]
    result = run_cli("diff", *(pair if file_first else pair[::-1]), "--numeric", "--json")
    assert result.code == 0, result.out
    numeric = json.loads(result.out)["numeric"]
    assert numeric["weights"] == ("B runs with A's weights as convert --like maps them, "
                                  "channels permuted to option A's other zero placement")
    assert numeric["within_tolerance"] and numeric["max_abs_diff"] < 1e-5


def test_diff_numeric_without_the_permutation_is_far_off(tmp_path, run_cli, monkeypatch):
    """Matched by the alignment alone, the same weights land on the wrong channels."""
    monkeypatch.setattr(units, "channel_orders", lambda u: [None] * len(u.units))
    result = run_cli("diff", _save(tmp_path, RESNET20[0]), "cifar10-resnet20-A", "--numeric",
                     "--json")
    numeric = json.loads(result.out)["numeric"]
    assert result.code == 1 and numeric["max_abs_diff"] > 1e-2
    assert numeric["weights"] == "B runs with A's weights, matched by alignment"

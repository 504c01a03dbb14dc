"""netgen.onnx.runtime: one session per model, batches passed straight through, devices."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from netgen.arch.builder import build
from netgen.arch.spec import make_spec
from netgen.arch.weights import initial_weights
from netgen.errors import NetgenError
from netgen.onnx import runtime
from netgen.onnx.export import save_onnx, to_onnx
from netgen.onnx.runtime import create_session, random_batch, time_calls

HAS_CUDA = runtime.CUDA in ort.get_available_providers()


@pytest.fixture(scope="module")
def model():
    graph = build(make_spec("cifar10", 8))
    return to_onnx(graph, initial_weights(graph))


@pytest.fixture(scope="module")
def model_path(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("runtime") / "model.onnx"
    save_onnx(model, path)
    return path


def test_random_batch_is_deterministic():
    a, b = random_batch((2, 3, 4, 4), 5), random_batch((2, 3, 4, 4), 5)
    assert a.dtype == np.float32 and a.shape == (2, 3, 4, 4) and a.flags.c_contiguous
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, random_batch((2, 3, 4, 4), 6))
    assert abs(float(random_batch((100_000,), 0).std()) - 1.0) < 0.02


def test_session_outputs_equal_a_plain_ort_session(model, model_path):
    session = create_session(model_path, "cpu")
    assert session.device == "cpu" and session.providers == [runtime.CPU]
    assert session.input_name == "data" and session.input_shape == ("N", 3, 32, 32)
    assert session.output_names == ["fc10", "prob"]
    assert session.threads == runtime.default_threads()
    x = random_batch((3, 3, 32, 32), 1)
    got = session.run(x)
    plain = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    want = plain.run(None, {"data": x})
    np.testing.assert_allclose(got["fc10"], want[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got["prob"], want[1], rtol=1e-6, atol=1e-7)
    # bytes and ModelProto give the same session
    for source in (model.SerializeToString(), model):
        again = create_session(source, "cpu", threads=1)
        assert again.threads == 1
        np.testing.assert_allclose(again.run(x)["prob"], got["prob"], rtol=1e-5, atol=1e-7)


def test_session_is_created_once_and_batches_are_not_copied(model, monkeypatch):
    made = []
    real = ort.InferenceSession

    def counting(*args, **kwargs):
        made.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting)
    session = create_session(model, "cpu")
    x = random_batch((2, 3, 32, 32), 0)
    assert session._check(x) is x  # contiguous float32: handed to ORT as is
    for _ in range(3):
        session.run(x)
    session.time_batch(1, warmup=1, repeat=2)
    assert len(made) == 1
    # other layouts are converted once, to the same numbers
    fortran = np.asfortranarray(x.astype(np.float64))
    np.testing.assert_array_equal(session._check(fortran), x)


def test_bad_inputs_and_models_are_user_errors(model, tmp_path):
    session = create_session(model, "cpu")
    with pytest.raises(NetgenError, match=r"\['N', 3, 32, 32\]"):
        session.run(np.zeros((1, 3, 28, 28), np.float32))
    with pytest.raises(NetgenError, match="no such model file"):
        create_session(tmp_path / "missing.onnx", "cpu")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(NetgenError, match="cannot load"):
        create_session(broken, "cpu")
    with pytest.raises(NetgenError, match="auto, cpu, cuda"):
        create_session(model, "tpu")


def test_time_calls_and_timing():
    calls = []
    times = time_calls(lambda: calls.append(1), warmup=3, repeat=5)
    assert len(calls) == 8 and len(times) == 5 and all(t >= 0 for t in times)
    timing = runtime.Timing(8, (0.1, 0.3, 0.2))
    assert timing.median_s == 0.2
    assert timing.images_per_s == pytest.approx(40.0)
    assert timing.ms_per_batch == pytest.approx(200.0)
    with pytest.raises(NetgenError):
        time_calls(lambda: None, repeat=0)


@pytest.mark.skipif(HAS_CUDA, reason="onnxruntime has CUDA here")
def test_cuda_without_provider_is_a_user_error(model):
    with pytest.raises(NetgenError, match="CUDAExecutionProvider"):
        create_session(model, "cuda")


@pytest.mark.skipif(HAS_CUDA, reason="onnxruntime has CUDA here")
def test_auto_falls_back_to_cpu_with_one_notice(model, monkeypatch, capsys):
    runtime._notice.cache_clear()  # the notice is once per process: start afresh
    assert create_session(model, "auto").device == "cpu"
    create_session(model, "auto")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "running on the CPU" in err


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime's CUDAExecutionProvider")
def test_cuda_session_matches_cpu(model):
    x = random_batch((4, 3, 32, 32), 2)
    gpu = create_session(model, "cuda")
    assert gpu.device == "cuda" and gpu.providers[0] == runtime.CUDA
    cpu = create_session(model, "cpu")
    np.testing.assert_allclose(gpu.run(x)["prob"], cpu.run(x)["prob"], atol=1e-4)
    assert create_session(model, "auto").device == "cuda"

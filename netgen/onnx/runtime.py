"""ONNX Runtime, set up once and then out of the way.

On a CPU ORT runs a ResNet at about the machine's matrix-multiply rate; the runtime's job is
not to waste that. The session is created once per model (graph optimisations on, one intra-op
thread per core this process may use), and `run` hands a C-contiguous float32 batch straight
to ORT: no per-call session, no copies, no dtype round trips.
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from netgen.errors import NetgenError, first_line

if TYPE_CHECKING:  # imported lazily at run time: `netgen build` never needs ORT
    import onnx
    import onnxruntime

DEVICES = ("auto", "cpu", "cuda")
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def default_threads() -> int:
    """The cores this process may run on (its affinity mask), else os.cpu_count()."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def providers_for(device: str) -> list[str]:
    """Execution providers for --device; `cuda` without CUDA is the user's error."""
    if device not in DEVICES:
        raise NetgenError(f"unknown device {device!r}; allowed: {', '.join(DEVICES)}")
    have_cuda = CUDA in available_providers()
    if device == "cuda":
        if not have_cuda:
            raise NetgenError("--device cuda: onnxruntime has no CUDAExecutionProvider here "
                              "(install onnxruntime-gpu with a matching CUDA, or use --device cpu)")
        return [CUDA, CPU]
    if device == "auto" and have_cuda:
        return [CUDA, CPU]
    if device == "auto":
        _notice("CUDA is not available to onnxruntime")
    return [CPU]


@functools.lru_cache(maxsize=None)
def _notice(reason: str) -> None:
    """One line on stderr, once per process and reason, when `auto` ends up on the CPU."""
    print(f"netgen: {reason}; running on the CPU", file=sys.stderr)


def random_batch(shape: tuple[int, ...] | list[int], seed: int = 0) -> np.ndarray:
    """A standard-normal float32 batch, the same numbers for the same shape and seed."""
    rng = np.random.Generator(np.random.PCG64(seed))
    return rng.standard_normal(tuple(int(d) for d in shape), dtype=np.float32)


@dataclass(frozen=True)
class Timing:
    """Median wall time of `repeat` runs of one batch, after `warmup` runs."""

    batch: int
    times_s: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def ms_per_batch(self) -> float:
        return self.median_s * 1e3

    @property
    def images_per_s(self) -> float:
        return self.batch / self.median_s

    def to_dict(self) -> dict:
        return {"batch": self.batch, "ms_per_batch": self.ms_per_batch,
                "images_per_s": self.images_per_s, "runs": len(self.times_s),
                "min_ms": min(self.times_s) * 1e3, "max_ms": max(self.times_s) * 1e3}


def time_calls(call: Callable[[], object], warmup: int = 2, repeat: int = 10) -> tuple[float, ...]:
    """Wall time of each of `repeat` calls, after `warmup` untimed ones."""
    if repeat < 1:
        raise NetgenError(f"repeat must be at least 1, got {repeat}")
    for _ in range(max(0, warmup)):
        call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return tuple(times)


class Session:
    """One ONNX Runtime session over one model, created once and reused for every batch."""

    def __init__(self, session, device: str, threads: int, source: str):
        self.session = session
        self.device = device  # "cpu" or "cuda": what actually runs it
        self.threads = threads
        self.source = source
        first = session.get_inputs()[0]
        self.input_name: str = first.name
        self.input_shape: tuple = tuple(first.shape)  # ("N", 3, 224, 224)
        self.output_names: list[str] = [o.name for o in session.get_outputs()]
        self._feed_extra = len(session.get_inputs()) != 1

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def batch_shape(self, batch: int) -> tuple[int, ...]:
        """The input shape with the symbolic batch axis set to `batch`."""
        dims = [batch if i == 0 else d for i, d in enumerate(self.input_shape)]
        if not all(isinstance(d, int) and d > 0 for d in dims):
            raise NetgenError(f"{self.source}: input {self.input_name!r} has symbolic dims "
                              f"{list(self.input_shape)} besides the batch")
        return tuple(dims)

    def _check(self, batch: np.ndarray) -> np.ndarray:
        if self._feed_extra:
            raise NetgenError(f"{self.source}: the model has several inputs; netgen's runtime "
                              "feeds exactly one")
        if batch.dtype != np.float32 or not batch.flags.c_contiguous:
            batch = np.ascontiguousarray(batch, dtype=np.float32)  # the only copy, if any
        want = self.input_shape
        if batch.ndim != len(want) or any(isinstance(d, int) and d != g
                                          for d, g in zip(want[1:], batch.shape[1:])):
            raise NetgenError(f"{self.source}: input {self.input_name!r} must have shape "
                              f"{['N', *want[1:]]}, got {list(batch.shape)}")
        return batch

    def run_list(self, batch: np.ndarray) -> list[np.ndarray]:
        """The outputs in model order, as ORT returns them (no dict)."""
        return self.session.run(self.output_names, {self.input_name: self._check(batch)})

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """Output name -> array for one batch."""
        return dict(zip(self.output_names, self.run_list(batch)))

    def time_batch(self, batch: int, warmup: int = 2, repeat: int = 10, seed: int = 0) -> Timing:
        """Median time of a random batch of `batch` images (input prepared once, outside)."""
        data = random_batch(self.batch_shape(batch), seed)
        feed = {self.input_name: self._check(data)}
        names = self.output_names
        run = self.session.run
        return Timing(batch, time_calls(lambda: run(names, feed), warmup, repeat))


def session_options(threads: int | None = None) -> onnxruntime.SessionOptions:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Left at 0, ORT starts one thread per core and pins each to its core; an explicit count
    # gives unpinned threads, which measured up to 2x slower on small batches here when
    # other sessions' threads share the cores. So the count is set only when asked for, or
    # when this process may use fewer cores than the machine has (ORT would oversubscribe).
    usable = default_threads()
    if threads is not None:
        options.intra_op_num_threads = threads
    elif usable < (os.cpu_count() or usable):
        options.intra_op_num_threads = usable
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: no shape-mismatch warnings on stderr
    return options


def create_session(model_path_or_bytes: str | os.PathLike | bytes | onnx.ModelProto,
                   device: str = "auto", threads: int | None = None) -> Session:
    """A Session over a model file, the bytes of one, or an onnx.ModelProto.

    device `auto` takes CUDA when onnxruntime offers it, else the CPU with a one-line notice
    on stderr; `cuda` without it raises NetgenError. threads defaults to the usable cores.
    """
    import onnxruntime as ort

    if threads is not None and threads < 1:
        raise NetgenError(f"threads must be at least 1, got {threads}")
    providers = providers_for(device)
    source = "<model bytes>"
    model = model_path_or_bytes
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    elif isinstance(model, (str, os.PathLike)):
        path = Path(model)
        source = str(path)
        if not path.is_file():
            raise NetgenError(f"{path}: no such model file")
        model = str(path)
    options = session_options(threads)
    try:
        session = ort.InferenceSession(model, sess_options=options, providers=providers)
    except Exception as exc:  # ORT raises its own types (Fail, InvalidGraph, ...) for bad models
        message = first_line(exc)
        raise NetgenError(f"{source}: onnxruntime cannot load it: {message}") from exc
    running = "cuda" if CUDA in session.get_providers() else "cpu"
    if device == "cuda" and running != "cuda":
        raise NetgenError("--device cuda: onnxruntime could not start CUDA for this model "
                          "(driver or CUDA libraries missing?); use --device cpu")
    if device == "auto" and CUDA in providers and running != "cuda":
        _notice("onnxruntime offers CUDA but could not start it")
    return Session(session, running, options.intra_op_num_threads or default_threads(), source)

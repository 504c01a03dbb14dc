"""Benchmarks: `netgen bench` for one build, and `python -m netgen.jobs.benchmarks results.md`.

Timings are medians of repeated runs after warm-up runs. The report (make bench) measures,
on one machine in one run: netgen's ORT session against a plain ORT session made by hand on
the same file, OpenCV's Caffe importer on the same weights, and multiply-adds per second as a
fraction of the machine's single-precision matrix-multiply rate, which it measures itself
with an ORT MatMul model.

The report is a list of sections (SECTIONS); each renders one markdown section from a shared
BenchContext, so further sections (a depth-scaling study, say) are appended with `@section`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from netgen.arch.spec import ArchSpec, make_spec
from netgen.errors import NetgenError
from netgen.onnx.runtime import Timing, create_session, default_threads, random_batch, time_calls

DEFAULT_BATCHES = (1, 8, 32)
DEFAULT_REPEAT = 10
DEFAULT_WARMUP = 2

# --------------------------------------------------------------------------- one build


def spec_of(folder: Path) -> ArchSpec | None:
    from netgen.jobs.validate import spec_from_summary

    try:
        return spec_from_summary(json.loads((folder / "summary.json").read_text()))
    except (OSError, ValueError, NetgenError):
        return None


def build_seconds(spec: ArchSpec, repeat: int = 1) -> float:
    """Median wall time of `netgen build` for `spec` (prototxt, solver, summary, model.onnx)."""
    from netgen.jobs.build import write_build

    times = []
    with tempfile.TemporaryDirectory(prefix="netgen-bench-build-") as tmp:
        for i in range(max(1, repeat)):
            start = time.perf_counter()
            write_build(spec, Path(tmp) / f"{spec.name}-{i}", force=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def ensure_model(folder: Path, work: Path) -> tuple[Path, str]:
    """model.onnx of a build folder; emitted from deploy.prototxt when the folder has none,
    with its model.caffemodel or else netgen's seed-0 weights (the timing does not depend on
    them; `netgen validate` is what seeds them like the build)."""
    model = folder / "model.onnx"
    if model.is_file():
        return model, "model.onnx"
    from netgen.caffe.reader import read_caffe
    from netgen.onnx.export import save_onnx, to_onnx

    caffemodel = folder / "model.caffemodel"
    graph, weights = read_caffe(folder / "deploy.prototxt",
                                caffemodel if caffemodel.is_file() else None)
    out = work / "model.onnx"
    save_onnx(to_onnx(graph, weights), out)
    return out, "emitted from deploy.prototxt (the folder has no model.onnx)"


def _model_of(path: Path, work: Path, input_shape: tuple[int, ...] | None
              ) -> tuple[Path, str, ArchSpec | None]:
    """An ONNX file as it is; a prototxt or a name emitted to ONNX into `work`."""
    from netgen.jobs.network import load_network, resolve
    from netgen.onnx.export import save_onnx, to_onnx

    ref = resolve(path)
    if ref.kind == "onnx":
        return path, path.name, None
    side = load_network(path, input_shape=input_shape)
    out = work / "model.onnx"
    save_onnx(to_onnx(side.graph, side.weights), out)
    what = "the prototxt" if ref.kind == "prototxt" else "the name's build"
    return out, f"emitted from {what} with seed-0 weights", ref.spec


def bench_path(path: str | os.PathLike, device: str = "auto",
               batches: tuple[int, ...] = DEFAULT_BATCHES, repeat: int = DEFAULT_REPEAT,
               warmup: int = DEFAULT_WARMUP, threads: int | None = None,
               input_shape: tuple[int, ...] | None = None) -> dict:
    """Images/s and ms per batch for each batch size, plus the time to build the files.

    `path` is a build folder (its model.onnx), an ONNX file, or a prototxt or network name
    (netgen.jobs.network), emitted to ONNX with seed-0 weights in a temporary folder (the
    timing does not depend on them); `input_shape` for a train_val that does not tell it."""
    path = Path(path)
    if not batches or any(b < 1 for b in batches):
        raise NetgenError(f"batch sizes must be positive integers, got {list(batches)}")
    if repeat < 1:
        raise NetgenError(f"--repeat must be at least 1, got {repeat}")
    with tempfile.TemporaryDirectory(prefix="netgen-bench-") as tmp:
        if path.is_dir():
            if not (path / "deploy.prototxt").is_file() and not (path / "model.onnx").is_file():
                raise NetgenError(f"{path}: not a build folder (no deploy.prototxt or model.onnx)")
            model, origin = ensure_model(path, Path(tmp))
            spec = spec_of(path)
        else:
            model, origin, spec = _model_of(path, Path(tmp), input_shape)
        start = time.perf_counter()
        session = create_session(model, device, threads)
        session_s = time.perf_counter() - start
        timings = [session.time_batch(b, warmup, repeat) for b in batches]
    result = {
        "path": str(path),
        "network": spec.name if spec else path.stem,
        "model": origin,
        "device": session.device,
        "providers": session.providers,
        "threads": session.threads,
        "session_s": session_s,
        "build_s": build_seconds(spec) if spec else None,
        "warmup": warmup,
        "repeat": repeat,
        "timings": [t.to_dict() for t in timings],
        "machine": machine(),
    }
    return result


def bench_lines(result: dict) -> list[str]:
    m = result["machine"]
    lines = [f"{result['network']}: {result['model']} on {result['device'].upper()} "
             f"({result['threads']} threads; {m['cpu']}, {m['cores']} cores)",
             f"  session created in {result['session_s'] * 1e3:.0f} ms"]
    if result["build_s"] is not None:
        lines.append(f"  build (netgen build: prototxt, solver, summary, model.onnx): "
                     f"{result['build_s']:.2f} s")
    lines.append(f"  median of {result['repeat']} runs after {result['warmup']} warm-up runs:")
    for t in result["timings"]:
        lines.append(f"  batch {t['batch']:>4}: {t['ms_per_batch']:9.2f} ms/batch  "
                     f"{t['images_per_s']:9.1f} images/s")
    return lines


# --------------------------------------------------------------------------- machine


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    return {"cpu": cpu, "cores": default_threads(), "os_cpu_count": os.cpu_count(),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__, "platform": platform.platform()}


def matmul_rate(threads: int | None = None, sizes: tuple[int, ...] = (512, 1024, 2048),
                repeat: int = DEFAULT_REPEAT, warmup: int = DEFAULT_WARMUP) -> dict:
    """The machine's float32 matrix-multiply rate, multiply-adds/s, from an ORT MatMul model
    (n x n times an n x n initializer). The best size is the machine's rate."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from netgen.onnx.export import DEFAULT_OPSET, ir_version_for

    best, rows = 0.0, []
    for n in sizes:
        weight = numpy_helper.from_array(random_batch((n, n), 1), "B")
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["A", "B"], ["C"])], "matmul",
            [helper.make_tensor_value_info("A", TensorProto.FLOAT, [n, n])],
            [helper.make_tensor_value_info("C", TensorProto.FLOAT, [n, n])], [weight])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", DEFAULT_OPSET)])
        model.ir_version = ir_version_for(DEFAULT_OPSET)
        onnx.checker.check_model(model)
        session = create_session(model, "cpu", threads)
        timing = session.time_batch(n, warmup, repeat)  # "batch" n rows of the n x n input
        rate = n ** 3 / timing.median_s
        rows.append({"n": n, "ms": timing.ms_per_batch, "macs_per_s": rate})
        best = max(best, rate)
    return {"macs_per_s": best, "sizes": rows}


# --------------------------------------------------------------------------- comparisons


def time_opencv(deploy: Path, caffemodel: Path, shape: tuple[int, ...], repeat: int,
                warmup: int) -> tuple[float, ...] | None:
    try:
        import cv2
    except ImportError:
        return None
    net = cv2.dnn.readNetFromCaffe(str(deploy), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    net.setInput(random_batch(shape, 0))  # once, outside the timed calls: forward() keeps it
    return time_calls(net.forward, warmup, repeat)


def interleaved(calls: dict[str, Callable[[], object]], repeat: int, warmup: int,
                target_s: float = 0.0, max_repeat: int = 1000,
                block: int = 4) -> dict[str, tuple[float, ...]]:
    """Time several callables in alternating blocks, so drift in the machine's speed hits all.

    Blocks, not single calls: an ORT session's worker threads keep spinning for a while after
    a run, so a call right after another session's run competes with those threads. Timed
    call by call, two identical sessions differed by 20% here; in blocks that each start
    with one untimed settling call, they agree within 1%. The block order alternates.
    With target_s, short calls get more runs (up to max_repeat) so that the timed runs last
    about target_s in all: a median of 10 runs of 10 ms is at the mercy of one hiccup.
    """
    for _ in range(max(1, warmup)):
        start = time.perf_counter()
        for call in calls.values():
            call()
        round_s = time.perf_counter() - start
    if target_s > 0 and round_s > 0:
        repeat = min(max_repeat, max(repeat, math.ceil(target_s / round_s)))
    times: dict[str, list[float]] = {k: [] for k in calls}
    order = list(calls.items())
    rounds = math.ceil(repeat / block)
    for round_index in range(rounds):
        for key, call in (order if round_index % 2 == 0 else order[::-1]):
            call()  # settle: the previous contender's threads stop competing
            for _ in range(min(block, repeat - round_index * block)):
                start = time.perf_counter()
                call()
                times[key].append(time.perf_counter() - start)
    return {k: tuple(v) for k, v in times.items()}


# --------------------------------------------------------------------------- report


@dataclass
class BenchContext:
    """What the sections share: a scratch folder, settings, and results other sections use."""

    work: Path
    repeat: int = DEFAULT_REPEAT
    warmup: int = DEFAULT_WARMUP
    threads: int | None = None  # None: the runtime's default, as a user gets it
    target_s: float = 10.0  # timed seconds per comparison at least (short runs get more rounds)
    results: dict = field(default_factory=dict)
    _builds: dict = field(default_factory=dict)

    def build(self, spec: ArchSpec) -> Path:
        """A build folder with weights (seed 0) for `spec`, made once per report."""
        if spec.name not in self._builds:
            from netgen.jobs.build import write_build

            out = self.work / spec.name
            write_build(spec, out, force=True, weights=True, seed=0)
            self._builds[spec.name] = out
        return self._builds[spec.name]

    def matmul(self) -> dict:
        if "matmul" not in self.results:
            self.results["matmul"] = matmul_rate(self.threads, repeat=self.repeat,
                                                 warmup=self.warmup)
        return self.results["matmul"]


@dataclass(frozen=True)
class Section:
    title: str
    render: Callable[[BenchContext], str]


SECTIONS: list[Section] = []


def section(title: str) -> Callable[[Callable[[BenchContext], str]], Callable[[BenchContext], str]]:
    """Append a report section: `@section("Title") def body(ctx) -> markdown`."""

    def register(render: Callable[[BenchContext], str]) -> Callable[[BenchContext], str]:
        SECTIONS.append(Section(title, render))
        return render

    return register


@section("Machine")
def _machine_section(ctx: BenchContext) -> str:
    m = machine()
    rate = ctx.matmul()
    sizes = ", ".join(f"{r['n']}x{r['n']}: {r['macs_per_s'] / 1e9:.1f} G/s ({r['ms']:.1f} ms)"
                      for r in rate["sizes"])
    try:
        load = "load average {:.2f} {:.2f} {:.2f} (1, 5, 15 min) when the report started".format(
            *os.getloadavg())
    except OSError:
        load = "load average unknown"
    return "\n".join([
        f"- CPU: {m['cpu']}, {m['cores']} usable cores (os.cpu_count {m['os_cpu_count']}); "
        f"{load}: other work on the machine shows up in every figure below",
        f"- {m['platform']}; Python {m['python']}, onnxruntime {m['onnxruntime']}, "
        f"numpy {m['numpy']}",
        f"- threads used by netgen's sessions: {ctx.threads or default_threads()}; timings are medians of at least "
        f"{ctx.repeat} runs (more for short runs, to fill {ctx.target_s:.0f} s) after "
        f"{ctx.warmup} warm-up runs",
        f"- single-precision matrix-multiply rate, measured with an ORT MatMul model: "
        f"**{rate['macs_per_s'] / 1e9:.1f} G multiply-adds/s** (best of {sizes})",
    ])


RUNTIME_CASES: list[tuple[ArchSpec, tuple[int, ...]]] = [
    (make_spec("imagenet", 50, "B"), (1, 8)),
    (make_spec("cifar10", 110, "A"), (1, 32)),
]


@section("Runtimes on the same files")
def _runtime_section(ctx: BenchContext) -> str:
    from netgen.arch.builder import build
    from netgen.arch.counting import count

    rate = ctx.matmul()["macs_per_s"]
    rows = ["| network | batch | runs | netgen ORT ms | images/s | plain ORT ms | netgen / plain | "
            "control / plain | OpenCV (Caffe importer) ms | OpenCV / netgen | multiply-adds/s | "
            "of matmul rate |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    notes = []
    for spec, batches in RUNTIME_CASES:
        folder = ctx.build(spec)
        build_s = build_seconds(spec)
        macs = count(build(spec)).macs
        model = folder / "model.onnx"
        session = create_session(model, "cpu")  # threads as a user gets them: the default
        import onnxruntime as ort

        plain = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        # A second plain session timed the same way: how far two identical sessions drift
        # apart on this machine, the noise floor that "netgen / plain" must be read against.
        control = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        for batch in batches:
            data = random_batch(session.batch_shape(batch), 0)
            feed = {session.input_name: data}
            names = session.output_names
            times = interleaved({
                "netgen": lambda: session.session.run(names, feed),
                "plain": lambda: plain.run(None, feed),
                "control": lambda: control.run(None, feed),
            }, ctx.repeat, ctx.warmup, target_s=ctx.target_s)
            ours = Timing(batch, times["netgen"])
            theirs = Timing(batch, times["plain"])
            cv = time_opencv(folder / "deploy.prototxt", folder / "model.caffemodel",
                             data.shape, max(3, ctx.repeat // 2), 1)
            cv_ms = statistics.median(cv) * 1e3 if cv else None
            achieved = macs * batch / ours.median_s
            rows.append(
                f"| {spec.name} | {batch} | {len(ours.times_s)} | {ours.ms_per_batch:.1f} | {ours.images_per_s:.1f} | "
                f"{theirs.ms_per_batch:.1f} | {ours.median_s / theirs.median_s:.3f} | "
                f"{statistics.median(times['control']) / theirs.median_s:.3f} | "
                + (f"{cv_ms:.1f} | {cv_ms / ours.ms_per_batch:.2f}" if cv_ms else "n/a | n/a")
                + f" | {achieved / 1e9:.1f} G | {achieved / rate:.0%} |")
            ctx.results.setdefault("runtime", []).append(
                {"network": spec.name, "batch": batch, "netgen_ms": ours.ms_per_batch,
                 "plain_ms": theirs.ms_per_batch, "opencv_ms": cv_ms,
                 "runs": len(ours.times_s), "macs_per_s": achieved,
                 "fraction_of_matmul": achieved / rate})
        notes.append(f"- {spec.name}: {macs / 1e9:.3f} G multiply-adds per image; "
                     f"`netgen build` (prototxt, solver, summary, model.onnx) takes "
                     f"{build_s:.2f} s")
    return "\n".join(rows + [""] + notes + [
        "",
        "netgen ORT: `netgen.onnx.runtime.create_session` (one session, ORT_ENABLE_ALL, one "
        "intra-op thread per usable core, the batch passed through without copies). Plain "
        "ORT: `onnxruntime.InferenceSession(path)` with default options on the same file; the "
        "two are timed in alternating blocks of runs so that drift in the machine's speed hits both alike. "
        "OpenCV: `cv2.dnn.readNetFromCaffe(deploy.prototxt, model.caffemodel)` on the same "
        "weights, default settings. The last column divides the network's multiply-adds per "
        "second by the MatMul rate above. Control: a second plain session in the same rotation; "
        "its ratio to the first shows the machine's noise at that size.",
    ])


def _scaling_section(ctx: BenchContext) -> str:
    from netgen.jobs import bench_scaling  # its own module: measured in fresh interpreters

    return bench_scaling.section(ctx)


section("Depth scaling: build time, peak memory and file sizes")(_scaling_section)


# (network, --blocks/--full/None for the default, the goal in seconds, the page-height bound)
DRAW_CASES = [("resnet152-B", False, 5.0, None), ("resnet152-B", None, None, None),
              ("cifar10-resnet1202-A", None, 10.0, 6000), ("cifar10-resnet1202-A", False, None, None)]


@section("Drawing: `netgen draw`")
def _draw_section(ctx: BenchContext) -> str:
    """End to end as the command does it: the network built (or read), laid out, rendered."""
    import xml.etree.ElementTree as ET

    from netgen.jobs.draw import draw

    rows = ["| network | mode | runs | median s | goal | SVG bytes | page height px |",
            "|---|---|---:|---:|---|---:|---:|"]
    for name, blocks, goal_s, max_height in DRAW_CASES:
        times, svg = [], ""
        for _ in range(max(3, ctx.repeat // 3)):
            t0 = time.perf_counter()
            svg = draw([name], blocks)
            times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        root = ET.fromstring(svg)
        mode = root.find("{http://www.w3.org/2000/svg}g").get("data-mode")
        height = float(root.get("height"))
        goal = []
        if goal_s is not None:
            goal.append(f"under {goal_s:.0f} s: {'yes' if median < goal_s else 'NO'}")
        if max_height is not None:
            goal.append(f"height <= {max_height}: {'yes' if height <= max_height else 'NO'}")
        ctx.results.setdefault("draw", []).append(
            {"network": name, "mode": mode, "median_s": median, "height": height})
        rows.append(f"| {name} | {'--' + mode} | {len(times)} | {median:.2f} | "
                    f"{'; '.join(goal) or '-'} | {len(svg):,} | {height:.0f} |")
    return "\n".join(rows + ["", "Each run is `netgen.jobs.draw.draw([name], blocks)`: the "
                              "network built from its name, its main path and shortcuts "
                              "analysed, laid out and rendered through the jinja2 templates."])

CONVERT_GOAL_S = 5.0  # issue 10: convert of a ResNet-152 export on a 2-core machine


KERAS_RATIO_GOAL = 1.5  # issue 18: a Keras ResNet-152 export within 1.5x of torchvision's


def _torchvision_fixtures(module: str = "torchvision_exports"):
    """tests/<module>.py of this checkout (the exports are built without torch or keras)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "tests" / f"{module}.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location(f"netgen_bench_{module}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _fresh_seconds(args: list[str], repeat: int) -> list[float]:
    """Wall times of `netgen ARGS` in fresh interpreters, imports included, as a user runs it."""
    import subprocess

    times = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "netgen", *args], capture_output=True,
                              text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise NetgenError(f"netgen {' '.join(args)} failed: {done.stderr.strip()}")
    return times


@section("Converting a torchvision ResNet-152 export")
def _convert_section(ctx: BenchContext) -> str:
    fixtures = _torchvision_fixtures()
    if fixtures is None:
        return "Skipped: tests/torchvision_exports.py is not beside this package (run from a checkout)."
    import onnx

    rows = ["| file | command | runs | median s | min s | max s | goal |",
            "|---|---|---:|---:|---:|---:|---|"]
    repeat = max(3, ctx.repeat // 3)
    cases = [
        ("TorchScript export, ResNet-152 (opset 17, BN folded, floor MaxPool)",
         dict(arch=152, exporter="torchscript"), None),
        ("dynamo export, ResNet-152 (opset 18, ReduceMean head)",
         dict(arch=152, exporter="dynamo"), None),
        ("TorchScript export, ResNet-152 v1.5, onto netgen's", dict(arch=152),
         "resnet152-B-stride3x3-torchpool"),
    ]
    keras = _torchvision_fixtures("keras_exports")
    if keras is not None:
        cases.append(("Keras 3 export (torch backend), ResNet152 (opset 20, NHWC, Transposes, "
                      "Sub/Mul/Add BatchNorm, Casts, Pads)", dict(keras=152), None))
    first_median = None
    for i, (what, kwargs, like) in enumerate(cases):
        source = ctx.work / f"export{i}.onnx"
        model = (keras.keras_resnet(kwargs["keras"]) if "keras" in kwargs
                 else fixtures.torchvision_resnet(**kwargs))
        onnx.save(model, source)
        del model
        size_mb = source.stat().st_size / 1e6
        if like is None:
            args = ["convert", str(source), "-o", str(ctx.work / f"c{i}" / "deploy.prototxt"),
                    "--force"]
            shown = "`netgen convert export.onnx -o out/deploy.prototxt`"
        else:
            args = ["convert", str(source), "--like", like, "-o", str(ctx.work / f"c{i}"),
                    "--force"]
            shown = f"`netgen convert export.onnx --like {like} -o out`"
        times = _fresh_seconds(args, repeat)
        median = statistics.median(times)
        first_median = first_median or median
        ctx.results.setdefault("convert", []).append({"file": what, "median_s": median})
        goal = f"{'under' if median < CONVERT_GOAL_S else 'OVER'} {CONVERT_GOAL_S:.0f} s"
        if "keras" in kwargs:
            ratio = median / first_median
            ctx.results["convert"][-1]["ratio_to_torchscript"] = ratio
            goal += (f"; {ratio:.2f}x the TorchScript export's, "
                     f"{'within' if ratio <= KERAS_RATIO_GOAL else 'OVER'} {KERAS_RATIO_GOAL}x")
        rows.append(f"| {what}, {size_mb:.0f} MB | {shown} | {len(times)} | {median:.2f} | "
                    f"{min(times):.2f} | {max(times):.2f} | {goal} |")
    return "\n".join(rows + [
        "",
        "Each run is a fresh `python -m netgen` process (imports, reading the ONNX file, "
        "the IR, the prototxt and the caffemodel or, with --like, the build's three files, "
        "written atomically). The exports are the fixtures of tests/torchvision_exports.py "
        "at 224x224 with seeded random weights, built with onnx.helper in the exporters' shapes; "
        "the Keras one is tests/keras_exports.keras_resnet(152): keras.applications.ResNet152 "
        "in the node pattern of Keras 3's torch-backend export (tests/fixtures/keras/), whose "
        "normalisation (constants, Casts, layout, BatchNorm fusion, pads) the conversion adds.",
    ])


DIFF_GOAL_S = 5.0  # issue 10: diff of a ResNet-152 export under 5 s on a 2-core machine


def diff_export(ctx: BenchContext, spec: ArchSpec) -> Path:
    """`spec`'s graph with every BatchNorm folded into its convolution, as ONNX: the shape of
    a PyTorch export (folded convs with biases, no Softmax), written once per report. Used
    where tests/torchvision_exports.py is not at hand."""
    from netgen.arch.builder import build
    from netgen.arch.weights import initial_weights
    from netgen.analysis.network import Side
    from netgen.analysis.topology import analyse
    from netgen.jobs.diff import fold
    from netgen.onnx.export import to_onnx
    from netgen.storage.atomic import write_atomic

    path = ctx.work / f"{spec.name}-folded.onnx"
    if not path.exists():
        graph = build(spec)
        side = Side(spec.name, "spec", graph, "seed 0", _weights=initial_weights(graph, 0))
        folded, weights, _ = fold(analyse(side, canonical=True))
        without_softmax = folded.with_layers(folded.layers[:-1])
        write_atomic(path, to_onnx(without_softmax, weights).SerializeToString())
    return path


def diff_seconds(args: list[str], repeat: int) -> list[float]:
    """Wall times of `netgen diff ARGS` in fresh interpreters, imports included (exit 0 and 1
    are both answers)."""
    import subprocess

    times = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "netgen", "diff", *args],
                              capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):
            raise NetgenError(f"netgen diff {' '.join(args)} failed: {proc.stderr.strip()}")
    return times


@section("Diffing a torchvision ResNet-152 export")
def _diff_section(ctx: BenchContext) -> str:
    fixtures = _torchvision_fixtures()
    # torchvision's ResNet-152: v1.5, no conv1 bias, its own pool1 (pad 1, rounding down)
    spec = make_spec("imagenet", 152, stride_in="3x3", conv1_bias=False,
                     stem_pool="torchvision" if fixtures is not None else None)
    if fixtures is not None:
        import onnx

        export, other = ctx.work / "diff-torchscript.onnx", ctx.work / "diff-dynamo.onnx"
        onnx.save(fixtures.torchvision_resnet(152, "torchscript"), export)
        onnx.save(fixtures.torchvision_resnet(152, "dynamo"), other)
        what = "the TorchScript and dynamo exports of tests/torchvision_exports.py"
        cases = [("export vs " + spec.name + " (EQUIVALENT)", [str(export), spec.name]),
                 ("export vs resnet152-B (stride placement, stem pooling)",
                  [str(export), "resnet152-B"]),
                 ("TorchScript vs dynamo export (EQUIVALENT)", [str(export), str(other)]),
                 ("export vs " + spec.name + ", --strict", [str(export), spec.name, "--strict"])]
    else:
        export = diff_export(ctx, spec)
        what = f"{spec.name} with its BatchNorm folded (tests/torchvision_exports.py not found)"
        cases = [("export vs " + spec.name, [str(export), spec.name]),
                 ("export vs resnet152-B", [str(export), "resnet152-B"])]
    repeat = max(3, ctx.repeat // 3)
    rows = ["| diff | runs | median s | min s | max s | goal |", "|---|---:|---:|---:|---:|---|"]
    for title, args in cases:
        times = diff_seconds(args, repeat)
        median = statistics.median(times)
        rows.append(f"| {title} | {len(times)} | {median:.2f} | {min(times):.2f} | "
                    f"{max(times):.2f} | {'under' if median < DIFF_GOAL_S else 'OVER'} "
                    f"{DIFF_GOAL_S:.0f} s |")
    return "\n".join(rows + [
        "",
        f"Each run is a fresh `python -m netgen diff` process (imports, reading both sides, "
        f"the comparison and the report) on {os.cpu_count()} CPU(s); the files are {what}, "
        f"{Path(export).stat().st_size / 1e6:.0f} MB each.",
    ])


def write_report(path: str | os.PathLike, repeat: int = DEFAULT_REPEAT,
                 warmup: int = DEFAULT_WARMUP, sections: list[Section] | None = None,
                 log=sys.stderr) -> str:
    """Render every section into one markdown file (written atomically) and return it."""
    from netgen.storage.atomic import write_atomic

    started = time.perf_counter()
    parts = ["# netgen benchmarks", "",
             f"Generated by `python -m netgen.jobs.benchmarks` on {time.strftime('%Y-%m-%d')}; "
             "every figure below comes from the same machine in the same run.", ""]
    with tempfile.TemporaryDirectory(prefix="netgen-bench-") as tmp:
        ctx = BenchContext(Path(tmp), repeat=repeat, warmup=warmup)
        for sec in sections if sections is not None else SECTIONS:
            t0 = time.perf_counter()
            if log is not None:
                print(f"benchmarks: {sec.title} ...", file=log, flush=True)
            body = sec.render(ctx)
            parts += [f"## {sec.title}", "", body.rstrip(), ""]
            if log is not None:
                print(f"benchmarks: {sec.title} done in {time.perf_counter() - t0:.0f} s",
                      file=log, flush=True)
    parts.append(f"_Total time of this report: {time.perf_counter() - started:.0f} s._")
    text = "\n".join(parts) + "\n"
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, text)
    return text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m netgen.jobs.benchmarks RESULTS.md", file=sys.stderr)
        return 2
    try:
        write_report(argv[0])
    except NetgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

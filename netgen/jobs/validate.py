"""`netgen validate`: six independent checks of one build folder, each one line PASS/FAIL/SKIP.

1. prototxt  every .prototxt parses against netgen's caffe.proto; deploy reads into the IR
2. onnx      onnx.checker (full_check) passes; strict shape inference gives the IR's shapes
3. forward   ONNX Runtime: logits (N, classes), all finite, prob rows sum to 1 within 1e-5
4. counts    parameters and multiply-adds counted from the ONNX graph = summary.json = the
             paper's figures (for the paper's networks)
5. formats   deploy.prototxt + model.caffemodel -> IR -> ONNX again runs like model.onnx
             (max abs diff <= 1e-5)
6. opencv    cv2.dnn's own Caffe importer on the same files agrees with ORT (<= 1e-4 of the
             largest output)

and, where asked (--target), in the runtimes people deploy to (netgen.runtimes):

7. mnn       MNN's Caffe converter on deploy.prototxt + model.caffemodel, then MNN's CPU
             runtime, agrees with ORT (<= 1e-4 of the largest output)
8. openvino  model.onnx compiled for OpenVINO's CPU device (float32) agrees with ORT (<= 1e-4)

A folder without weights (generated/ commits none) gets deterministic ones, seeded like the
build (the solver's random_seed, else 0), written to a temporary folder: the Caffe side and
any missing model.onnx are made from them, so checks 3, 5 and 6 still run.

A single prototxt or ONNX file is checked as a build made from it in a temporary folder
(validate_file says what goes in); a name is built into one (validate_spec).
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from netgen.arch import ir
from netgen.arch.spec import ArchSpec, spec_from_name
from netgen.errors import NetgenError, first_line

if TYPE_CHECKING:
    from netgen.caffe.reader import Reading
    from netgen.onnx.export import TensorPlan

PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
CHECK_NAMES = {1: "prototxt", 2: "onnx", 3: "forward", 4: "counts", 5: "formats", 6: "opencv"}
# validate --target: the runtime -> its check's number; run only where asked
RUNTIME_CHECKS = {"mnn": 7, "openvino": 8}
ALL_CHECK_NAMES = {**CHECK_NAMES, **{n: name for name, n in RUNTIME_CHECKS.items()}}
PROB_SUM_TOLERANCE = 1e-5
FORMATS_TOLERANCE = 1e-5
OPENCV_TOLERANCE = 1e-4
RUNTIME_TOLERANCE = 1e-4


@dataclass
class Check:
    number: int
    status: str
    figure: str
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return ALL_CHECK_NAMES[self.number]

    def line(self) -> str:
        return f"{self.status} {self.number} {self.name}: {self.figure}"

    def to_dict(self) -> dict:
        return {"number": self.number, "name": self.name, "status": self.status,
                "figure": self.figure, "details": self.details,
                "seconds": round(self.seconds, 3)}


@dataclass
class Report:
    folder: str
    network: str
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def lines(self) -> list[str]:
        out = [f"validating {self.folder} ({self.network})"]
        out += [f"  note: {n}" for n in self.notes]
        for check in self.checks:
            out.append(check.line())
            if check.status == FAIL and check.details != [check.figure]:
                out += [f"    {d}" for d in check.details[:10]]
                if len(check.details) > 10:
                    out.append(f"    ... and {len(check.details) - 10} more")
        verdict = "all checks passed" if self.ok else \
            "FAILED: " + ", ".join(f"{c.number} {c.name}" for c in self.failed)
        out.append(f"{verdict} ({self.seconds:.1f} s)")
        return out

    def to_dict(self) -> dict:
        return {"folder": self.folder, "network": self.network, "ok": self.ok,
                "seconds": round(self.seconds, 3), "notes": self.notes,
                "checks": [c.to_dict() for c in self.checks]}


class CheckFailed(Exception):
    """A check's verdict with its figure, raised from inside the check."""

    def __init__(self, figure: str, details: list[str] | None = None):
        super().__init__(figure)
        self.figure = figure
        self.details = details or []


class Skipped(Exception):
    pass


def _first_line(exc: BaseException) -> str:
    """netgen's own errors as they are; a library's with its type, which says what failed."""
    if isinstance(exc, NetgenError):
        return first_line(exc)
    return f"{type(exc).__name__}: {first_line(exc)}"


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise CheckFailed(f"shapes differ: {list(a.shape)} vs {list(b.shape)}")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def spec_from_summary(data: dict | None) -> ArchSpec | None:
    """The spec summary.json records, or None where it records none.

    Made again from the recorded name by spec_from_name, so it passes make_spec's checks;
    NetgenError where the record is not one netgen writes (a field contradicting the name,
    an unknown dataset), so that no IR is ever built from it.
    """
    if not data or not isinstance(data.get("spec"), dict):
        return None
    record = data["spec"]
    name = record.get("name")
    if not isinstance(name, str):
        raise NetgenError("no network name")
    spec = spec_from_name(name)
    made = spec.to_dict()
    if made != record:
        differ = sorted(k for k in set(made) | set(record) if made.get(k) != record.get(k))
        raise NetgenError(f"fields contradicting the name {name!r}: {', '.join(differ)}")
    return spec


class _Validation:
    """State shared by the checks of one folder; each check is a method returning a figure."""

    def __init__(self, folder: Path, device: str, batch: int, work: Path,
                 no_spec: str = "no spec in summary.json", targets: tuple[str, ...] = ()):
        self.folder = folder
        self.targets = targets
        self.no_spec = no_spec  # why the paper's figures do not apply, where no spec is known
        self.device = device
        self.batch = batch
        self.work = work
        self.notes: list[str] = []
        self.deploy = folder / "deploy.prototxt"
        self.summary: dict | None = None
        self.summary_error = ""
        self.spec: ArchSpec | None = None
        self.spec_error = ""
        self.reading: Reading | None = None  # deploy.prototxt read into the IR, once
        self.graph: ir.Graph | None = None  # that reading's graph, else one built from the spec
        self.graph_error = ""
        self.seed = 0
        self.model_path: Path | None = None
        self.caffemodel: Path | None = None
        self.inputs: np.ndarray | None = None
        self.outputs: dict[str, np.ndarray] | None = None
        self.no_caffemodel = ""  # why no caffemodel can exist (over Caffe's 2 GiB), if so

    # -- preparation ---------------------------------------------------------------
    def oversized(self, *names: str) -> None:
        """Files over netgen's reading limits are never handed to ORT, onnx or OpenCV
        (which would read them whole): the checks that would, fail with the size."""
        from netgen.caffe.proto import DEFAULT_MAX_CAFFEMODEL_BYTES
        from netgen.caffe.reader import MAX_PROTOTXT_BYTES
        from netgen.onnx.reader import MAX_ONNX_BYTES

        limits = {"deploy.prototxt": MAX_PROTOTXT_BYTES,
                  "model.caffemodel": DEFAULT_MAX_CAFFEMODEL_BYTES, "model.onnx": MAX_ONNX_BYTES}
        for name in names:
            limit = limits[name]
            path = self.folder / name
            size = path.stat().st_size if path.is_file() else 0
            if size > limit:
                raise CheckFailed(f"{name}: {size:,} bytes is more than netgen's {limit:,}-byte "
                                  "limit; not handed to other tools")

    def prepare(self) -> None:
        """What the checks share: summary and spec, seed, the IR, and the model files."""
        self._read_summary()
        self._read_seed()
        self._read_deploy()
        self._make_missing_models()

    def _read_summary(self) -> None:
        path = self.folder / "summary.json"
        try:
            self.summary = json.loads(path.read_text())
        except FileNotFoundError:
            self.summary_error = "summary.json is missing"
        except (OSError, ValueError) as exc:
            self.summary_error = f"summary.json unreadable: {_first_line(exc)}"
        try:
            self.spec = spec_from_summary(self.summary)
        except NetgenError as exc:
            self.spec_error = f"summary.json's spec is not valid ({first_line(exc)})"
            self.notes.append(f"{self.spec_error}: ignored")

    def _read_seed(self) -> None:
        """The build's seed: the first solver's random_seed that parses (else 0)."""
        from netgen.caffe import proto as caffe_proto
        from netgen.caffe.reader import load_text

        for solver in sorted(self.folder.glob("solver*.prototxt")):
            try:
                parsed = caffe_proto.parse_solver(load_text(solver)[0], str(solver))
                if parsed.HasField("random_seed") and parsed.random_seed >= 0:
                    self.seed = int(parsed.random_seed)
                break
            except Exception:  # reported by check 1
                pass

    def _read_deploy(self) -> None:
        from netgen.caffe.reader import read_net

        try:
            self.reading = read_net(self.deploy)
            self.graph = self.reading.graph
        except Exception as exc:
            self.graph_error = _first_line(exc)
            if self.spec is not None:
                from netgen.arch.builder import build

                self.graph = build(self.spec)
                self.notes.append("deploy.prototxt does not read; the IR is rebuilt from "
                                  "summary.json's spec")

    def _make_missing_models(self) -> None:
        """A caffemodel and model.onnx in the scratch folder for a folder that lacks them."""
        model = self.folder / "model.onnx"
        caffemodel = self.folder / "model.caffemodel"
        self.caffemodel = caffemodel if caffemodel.is_file() else None
        self.model_path = model if model.is_file() else None
        if self.graph is None or (self.caffemodel and self.model_path):
            return
        from netgen.arch.weights import initial_weights, trained_looking
        from netgen.caffe.caffemodel import caffemodel_bytes, check_size
        from netgen.onnx.export import to_onnx
        from netgen.onnx.files import model_files

        # Scratch files in a private temporary folder: plain writes, no fsync needed.
        weights = None
        if self.caffemodel is None:
            try:
                check_size(self.graph)  # over 2 GiB: no caffemodel can exist for this net
            except NetgenError as exc:
                self.no_caffemodel = str(exc)
                self.notes.append(f"no model.caffemodel and none can be made: {exc}")
                if self.model_path is not None:
                    return
                raise
            weights = initial_weights(self.graph, self.seed)
            if self.targets:
                # identity BatchNorms would hide a runtime that skips or misreads one
                weights = trained_looking(self.graph, weights, self.seed)
            self.caffemodel = self.work / "model.caffemodel"
            graph, blobs = self.graph, weights
            if self.reading is not None and self.reading.constants:
                # The file writes SE in the mnn form: its Deconvolutions need their ones.
                from netgen.caffe.targets import realize

                graph, blobs = realize(self.graph, weights, "mnn")
            self.caffemodel.write_bytes(caffemodel_bytes(graph, blobs))
            self.notes.append(f"no model.caffemodel: weights generated with seed {self.seed} "
                              f"(the solver's random_seed) in a temporary folder"
                              + (", BatchNorm and Scale values as trained ones are (for the "
                                 "runtime checks)" if self.targets else ""))
        # A folder's model.onnx holds netgen's initial weights; the trained-looking ones the
        # runtime checks get need a model.onnx of their own.
        again = self.model_path is not None and self.targets and weights is not None
        if self.model_path is None or again:
            if weights is None:
                from netgen.caffe.reader import weights_for

                _, weights = weights_for(self.graph, self.caffemodel)
            # model_files: over protobuf's 2 GiB the tensors go to model.onnx.data beside it
            for name, payload in model_files(to_onnx(self.graph, weights)).items():
                (self.work / name).write_bytes(payload)
            self.model_path = self.work / "model.onnx"
            self.notes.append(
                "model.onnx emitted again from deploy.prototxt with those weights into a "
                "temporary folder (the folder's has netgen's initial ones)" if again else
                "no model.onnx: emitted from deploy.prototxt and the same weights into a "
                "temporary folder")

    def need_graph(self) -> ir.Graph:
        if self.graph is None:
            raise CheckFailed(f"deploy.prototxt does not read into the IR ({self.graph_error}) "
                              "and summary.json has no valid spec to rebuild it from")
        return self.graph

    def need_model(self) -> Path:
        if self.model_path is None:
            raise CheckFailed("no model.onnx and no IR to emit one from")
        return self.model_path

    @cached_property
    def plan(self) -> TensorPlan:
        """The IR's ONNX tensor names (onnx_export.tensor_plan), made once for checks 2, 3, 6."""
        from netgen.onnx.export import tensor_plan

        return tensor_plan(self.need_graph())

    @cached_property
    def outputs_map(self) -> tuple[bool, dict[str, str]]:
        """(foreign, model.onnx's output names -> the IR's tensor names). netgen's own files
        name every IR tensor as tensor_plan does; a file written elsewhere (foreign: an
        ONNX file given to validate_file) names its tensors as its exporter chose, and only
        its outputs correspond to the IR's, by position."""
        import onnx

        model = onnx.load(str(self.need_model()), load_external_data=False)
        names = [output.name for output in model.graph.output]
        tensors = {name for node in model.graph.node for name in node.output}
        tensors.update(value.name for value in model.graph.input)
        if set(self.plan.shapes) <= tensors and set(names) <= set(self.plan.shapes):
            return False, {name: name for name in names}
        ours = self.plan.graph_outputs
        if len(names) != len(ours):
            raise CheckFailed(f"model.onnx has {len(names)} outputs ({', '.join(names)}), the "
                              f"IR read from deploy.prototxt {len(ours)} ({', '.join(ours)})")
        return True, dict(zip(names, ours))

    @property
    def ir_names(self) -> dict[str, str]:
        return self.outputs_map[1]

    @cached_property
    def producers(self) -> dict[str, ir.Layer]:
        """ONNX tensor name -> the IR layer that writes it."""
        layers = self.need_graph().layers
        return {name: layers[i] for i, names in enumerate(self.plan.outputs) for name in names}

    # -- 1 ---------------------------------------------------------------------------
    def check_prototxt(self) -> str:
        from netgen.caffe import proto as caffe_proto
        from netgen.caffe.reader import load_text

        files = sorted(self.folder.glob("*.prototxt"))
        if not self.deploy.is_file():
            raise CheckFailed("deploy.prototxt is missing")
        parts, problems = [], []
        for path in files:
            try:
                text = load_text(path)[0]  # bounded by MAX_PROTOTXT_BYTES
                if path.name.startswith("solver"):
                    caffe_proto.parse_solver(text, str(path))
                    parts.append(path.stem)
                else:
                    net = caffe_proto.parse_net(text, str(path))
                    parts.append(f"{path.stem} {len(net.layer)} layers")
            except Exception as exc:
                problems.append(f"{path.name}: {_first_line(exc)}")
        if problems:
            raise CheckFailed(f"{len(problems)} of {len(files)} files do not parse: "
                              f"{problems[0]}", problems)
        if self.reading is None:
            raise CheckFailed(f"deploy.prototxt parses but does not read into the IR: "
                              f"{self.graph_error}")
        return (f"{len(files)} files parse against caffe.proto ({', '.join(parts)}); deploy "
                f"reads into the IR ({len(self.reading.graph.layers)} layers, Caffe shape rules)")

    # -- 2 ---------------------------------------------------------------------------
    def check_onnx(self) -> str:
        import onnx

        from netgen.onnx.export import shape_mismatches

        graph = self.need_graph()
        path = self.need_model()
        self.oversized("model.onnx")
        try:
            onnx.checker.check_model(str(path), full_check=True)
        except Exception as exc:
            raise CheckFailed(f"onnx.checker: {_first_line(exc)}")
        model = onnx.load(str(path), load_external_data=False)
        foreign = self.outputs_map[0]
        try:
            if foreign:
                compared, problems = self._output_shapes(model)
            else:
                compared, problems = shape_mismatches(model, graph, self.plan)
        except CheckFailed:
            raise
        except Exception as exc:
            raise CheckFailed(f"strict shape inference fails: {_first_line(exc)}")
        what = ("outputs (by position: the file's tensors are not named as netgen's)"
                if foreign else "tensors")
        if problems:
            raise CheckFailed(f"{len(problems)} of {compared} {what} differ from the IR's "
                              f"shapes: {problems[0]}", problems)
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), "?")
        shapes = f"inferred shapes of {compared} {what}" if foreign else \
            f"{compared} tensors' inferred shapes"
        return (f"checker (full) passes; opset {opset}, IR version {model.ir_version}; "
                f"{shapes} = the IR's (batch symbolic)")

    def _output_shapes(self, model) -> tuple[int, list[str]]:
        """Strict shape inference of a file written elsewhere: its outputs (the only tensors
        that correspond by more than a name) against the IR's, batch dimension aside."""
        import onnx

        from netgen.onnx.export import dims

        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        found = {v.name: dims(v) for v in inferred.graph.output}
        problems = []
        for name, ours in self.ir_names.items():
            got, want = found.get(name), self.plan.shapes[ours][1:]
            if got is None or tuple(got[1:]) != tuple(want):
                problems.append(f"{name}: ONNX {list(got) if got else 'no shape'}, IR "
                                f"{ours} [N, {', '.join(map(str, want))}]")
        return len(self.ir_names), problems

    # -- 3 ---------------------------------------------------------------------------
    def check_forward(self) -> str:
        from netgen.onnx.runtime import create_session, random_batch

        self.need_graph()
        self.oversized("model.onnx")
        session = create_session(self.need_model(), self.device)
        self.inputs = random_batch(session.batch_shape(self.batch), seed=0)
        start = time.perf_counter()
        outputs = session.run(self.inputs)
        elapsed = time.perf_counter() - start
        self.outputs = outputs
        probs = [name for name in outputs if self.ir_names.get(name) in self.producers
                 and self.producers[self.ir_names[name]].type == "Softmax"]
        logits_name = next((name for name in outputs if name not in probs), None)
        classes = self._classes()
        problems = []
        for name, value in outputs.items():
            if not np.all(np.isfinite(value)):
                problems.append(f"{name}: {int(np.size(value) - np.isfinite(value).sum())} "
                                "non-finite values")
        for name in [n for n in (logits_name, *probs) if n is not None]:
            if outputs[name].shape != (self.batch, classes):
                problems.append(f"{name}: shape {list(outputs[name].shape)}, expected "
                                f"[{self.batch}, {classes}]")
        parts = [f"{name} {list(outputs[name].shape)}" for name in outputs if name not in probs]
        for name in probs:
            prob = outputs[name]
            sums = prob.reshape(prob.shape[0], -1).sum(axis=1, dtype=np.float64)
            worst = float(np.max(np.abs(sums - 1.0))) if sums.size else math.inf
            if not worst <= PROB_SUM_TOLERANCE:
                problems.append(f"{name} rows sum to 1 only within {worst:.2e}")
            parts.append(f"{name} rows sum to 1 within {worst:.1e}")
        if not probs:
            parts.append("no Softmax output to sum")
        figure = (", ".join(parts) + f", all finite ({session.device.upper()}, batch "
                  f"{self.batch}, {elapsed * 1e3:.0f} ms)")
        if problems:
            raise CheckFailed(f"{problems[0]}; {figure}", problems)
        return figure

    def _classes(self) -> int:
        if self.spec is not None:
            return self.spec.output_width
        return self.plan.shapes[self.plan.graph_outputs[-1]][-1]

    # -- 4 ---------------------------------------------------------------------------
    def check_counts(self) -> str:
        import onnx

        from netgen.arch.paper_figures import figures_for
        from netgen.onnx.count import count_onnx

        self.oversized("model.onnx")
        model = onnx.load(str(self.need_model()), load_external_data=False)
        counted = count_onnx(model)
        if self.summary is None:
            raise CheckFailed(f"{self.summary_error}; ONNX counts {counted.params:,} "
                              f"parameters, {counted.macs:,} multiply-adds")
        problems = []
        for key, value, what in (("parameters", counted.params, "parameters"),
                                 ("multiply_adds", counted.macs, "multiply-adds")):
            stated = self.summary.get(key)
            if stated != value:
                problems.append(f"{what}: ONNX graph {value:,}, summary.json {stated!r}")
        figure = f"ONNX graph: {counted.params:,} parameters, {counted.macs / 1e9:.3f} G " \
                 "multiply-adds = summary.json"
        if self.spec is None:
            paper = f"{self.spec_error or self.no_spec}: paper figures not applicable"
        else:
            figures = figures_for(self.spec)
            matched = []
            for fig in figures:
                value = counted.params if fig.quantity == "parameters" else counted.macs
                if fig.matches(value):
                    matched.append(f"{fig.quantity.replace('_', '-')} {fig.expected_text()}")
                else:
                    problems.append(f"{fig.quantity}: {fig.rendered(value)} at the printed "
                                    f"precision, {fig.source} prints {fig.expected_text()}")
            paper = ("matches " + "; ".join(matched)) if figures else \
                f"{self.spec.name} is not one of the paper's networks: no paper figure applies"
        if problems:
            raise CheckFailed(f"{problems[0]}", problems)
        return f"{figure}; {paper}"

    # -- 5 ---------------------------------------------------------------------------
    def check_formats(self) -> str:
        from netgen.caffe.reader import weights_for
        from netgen.onnx.export import to_onnx
        from netgen.onnx.runtime import create_session

        if self.outputs is None:
            raise Skipped("needs check 3's ORT outputs")
        if self.caffemodel is None and self.no_caffemodel:
            raise Skipped(self.no_caffemodel)
        if self.caffemodel is None:
            raise CheckFailed("no caffemodel")
        if self.reading is None:
            raise CheckFailed(self.graph_error)
        graph, weights = weights_for(self.reading.graph, self.caffemodel,
                                     constants=self.reading.constants)
        session = create_session(to_onnx(graph, weights), self.device)
        again = session.run(self.inputs)
        if sorted(again) != sorted(self.ir_names.get(name, name) for name in self.outputs):
            raise CheckFailed(f"outputs differ: re-emitted {list(again)}, model.onnx "
                              f"{list(self.outputs)}")
        foreign = self.outputs_map[0]
        # netgen's own model.onnx is the same graph: equal to float rounding, absolutely. A
        # file's own graph (validate FILE) is another graph of the same function (BatchNorm
        # fused or not, ops in another order): its rounding grows with its outputs, so it
        # is held to the figure of check 6, relative to the largest output.
        diffs = {name: _max_abs(again[self.ir_names[name]], value)
                 / ((float(np.max(np.abs(value))) or 1.0) if foreign else 1.0)
                 for name, value in self.outputs.items()}
        worst = max(diffs.values())
        source = "model.caffemodel" if self.caffemodel.parent == self.folder else \
            "generated caffemodel"
        what = "max abs diff / max |output|" if foreign else "max abs diff"
        tolerance = OPENCV_TOLERANCE if foreign else FORMATS_TOLERANCE
        figure = (f"deploy.prototxt + {source} -> IR -> ONNX vs model.onnx: {what} "
                  f"{worst:.1e} (" + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()) + ")")
        if not worst <= tolerance:
            raise CheckFailed(f"{figure} > {tolerance:g}")
        return figure

    # -- 6 ---------------------------------------------------------------------------
    def check_opencv(self) -> str:
        try:
            import cv2
        except ImportError as exc:
            raise Skipped(f"cv2 is not importable ({exc})")
        if self.outputs is None:
            raise Skipped("needs check 3's ORT outputs")
        if self.caffemodel is None:
            raise Skipped("no caffemodel")
        self.need_graph()
        self.oversized("deploy.prototxt", "model.caffemodel")
        if _uses_axpy(self.deploy):
            raise Skipped("deploy.prototxt uses SENet's Axpy layer, which OpenCV (and BVLC "
                          "Caffe) lack; the stock form (build --se-form stock) runs there")
        names = list(self.outputs)
        layers = [self.producers[self.ir_names[name]].name
                  if self.ir_names.get(name) in self.producers else name for name in names]
        try:
            net = cv2.dnn.readNetFromCaffe(str(self.deploy), str(self.caffemodel))
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
            if hasattr(net, "enableWinograd"):
                # OpenCV's Winograd 3x3 convolutions lose about a digit: a plain-110's
                # logits then differ from a float64 reference by 1e-4 (ORT: 7e-6).
                net.enableWinograd(False)
            net.setInput(self.inputs)
            got = net.forward(layers)
        except cv2.error as exc:
            raise CheckFailed(f"cv2.dnn cannot run the files: {_first_line(exc)}")
        parts, worst = [], 0.0
        for name, value in zip(names, got):
            ref = self.outputs[name]
            value = np.asarray(value).reshape(ref.shape) if np.size(value) == ref.size else value
            scale = float(np.max(np.abs(ref))) or 1.0
            rel = _max_abs(np.asarray(value), ref) / scale
            worst = max(worst, rel)
            parts.append(f"{name} {rel:.1e}")
        figure = (f"cv2.dnn {cv2.__version__} vs ORT: max abs diff / max |output| {worst:.1e} "
                  f"(" + ", ".join(parts) + ")")
        if not worst <= OPENCV_TOLERANCE:
            raise CheckFailed(f"{figure} > {OPENCV_TOLERANCE:g}")
        return figure


    # -- 7, 8 ------------------------------------------------------------------------
    def _compare(self, runtime: str, got: dict[str, np.ndarray],
                 names: dict[str, str]) -> str:
        """`got` (by the runtime's names) against check 3's ORT outputs (by ONNX names)."""
        parts, worst = [], 0.0
        for onnx_name, theirs in names.items():
            ref = self.outputs[onnx_name]
            value = np.asarray(got[theirs])
            if value.size != ref.size:
                raise CheckFailed(f"{runtime} gives {onnx_name} of shape {list(value.shape)}, "
                                  f"ORT {list(ref.shape)}")
            rel = _max_abs(value.reshape(ref.shape), ref) / (float(np.max(np.abs(ref))) or 1.0)
            worst = max(worst, rel)
            parts.append(f"{onnx_name} {rel:.1e}")
        figure = (f"{runtime} vs ORT: max abs diff / max |output| {worst:.1e} ("
                  + ", ".join(parts) + ")")
        if not worst <= RUNTIME_TOLERANCE:
            raise CheckFailed(f"{figure} > {RUNTIME_TOLERANCE:g}")
        return figure

    def check_mnn(self) -> str:
        from netgen.runtimes import RuntimeFailed, RuntimeMissing
        from netgen.runtimes import mnn

        try:
            version = mnn.version()
        except RuntimeMissing as exc:
            raise Skipped(str(exc))
        if self.outputs is None:
            raise Skipped("needs check 3's ORT outputs")
        if self.caffemodel is None:
            raise Skipped(self.no_caffemodel or "no caffemodel")
        self.need_graph()
        self.oversized("deploy.prototxt", "model.caffemodel")
        if _uses_axpy(self.deploy):
            raise CheckFailed("deploy.prototxt uses SENet's Axpy layer, which MNN's Caffe "
                              "converter lacks; build or convert with --target mnn")
        tops = {name: self.producers[self.ir_names[name]].tops[0]
                if self.ir_names.get(name) in self.producers else name for name in self.outputs}
        input_name = self.need_graph().inputs[0].name
        try:
            got = mnn.run_caffe(self.deploy, self.caffemodel, {input_name: self.inputs},
                                sorted(set(tops.values())), self.work / "mnn")
        except RuntimeFailed as exc:
            hint = ("" if self.reading is not None and self.reading.constants else
                    "; netgen build/convert --target mnn writes the forms MNN converts")
            raise CheckFailed(f"{exc}{hint}")
        rewritten = sorted({top for top in tops.values() for layer in self.need_graph().layers
                            if layer.in_place and top in layer.tops})
        try:
            return self._compare(f"MNN {version}", got, tops)
        except CheckFailed as exc:
            if not rewritten:
                raise
            raise CheckFailed(f"{exc.figure}; {', '.join(rewritten)} is written in place, and "
                              "MNN keeps a blob's name on its first writer (netgen build/convert "
                              "--target mnn writes no layer in place)") from None

    def check_openvino(self) -> str:
        from netgen.runtimes import RuntimeFailed, RuntimeMissing
        from netgen.runtimes import openvino

        try:
            version = openvino.version()
        except RuntimeMissing as exc:
            raise Skipped(str(exc))
        if self.outputs is None:
            raise Skipped("needs check 3's ORT outputs")
        model = self.need_model()
        self.oversized("model.onnx")
        import onnx

        proto = onnx.load(str(model), load_external_data=False)
        input_name = proto.graph.input[0].name
        try:
            got = openvino.run_onnx(model, {input_name: self.inputs}, list(self.outputs))
        except RuntimeFailed as exc:
            raise CheckFailed(str(exc))
        return self._compare(f"OpenVINO {version} (CPU, f32)", got,
                             {name: name for name in self.outputs})


def _uses_axpy(deploy: Path) -> bool:
    """Whether the file writes an SE unit as SENet's Axpy (build/convert --se-form axpy)."""
    from netgen.caffe import proto as caffe_proto
    from netgen.caffe.reader import load_text

    net = caffe_proto.parse_net(load_text(deploy)[0], str(deploy))
    return any(layer.type == "Axpy" for layer in net.layer)


def _run_check(number: int, body: Callable[[], str]) -> Check:
    start = time.perf_counter()
    try:
        check = Check(number, PASS, body())
    except CheckFailed as exc:
        check = Check(number, FAIL, exc.figure, exc.details)
    except Skipped as exc:
        check = Check(number, SKIP, str(exc))
    except Exception as exc:  # a corrupted file can make any library raise: report, go on
        check = Check(number, FAIL, _first_line(exc))
    check.seconds = time.perf_counter() - start
    return check


def check_targets(targets: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    unknown = [t for t in targets if t not in RUNTIME_CHECKS]
    if unknown:
        raise NetgenError(f"unknown target {unknown[0]!r}; allowed: "
                          + ", ".join(RUNTIME_CHECKS))
    return tuple(sorted(set(targets), key=list(RUNTIME_CHECKS).index))


def validate_folder(folder: str | Path, device: str = "auto", batch: int = 1,
                    no_spec: str = "no spec in summary.json",
                    targets: tuple[str, ...] = ()) -> Report:
    """Run the six checks on one build folder, and one more per runtime in `targets`
    (RUNTIME_CHECKS); `no_spec` says why the paper's figures do not apply where
    summary.json records no network."""
    targets = check_targets(targets)
    from netgen.onnx.runtime import providers_for

    folder = Path(folder)
    if not folder.is_dir():
        raise NetgenError(f"{folder}: not a folder (give a build folder, e.g. generated/resnet50-B)")
    if batch < 1:
        raise NetgenError(f"--batch must be at least 1, got {batch}")
    providers_for(device)  # --device cuda without CUDA is the user's error, before any work
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="netgen-validate-") as tmp:
        state = _Validation(folder, device, batch, Path(tmp), no_spec, targets)
        state.prepare()
        name = (state.summary or {}).get("name") or (state.graph.name if state.graph else "") \
            or folder.name
        report = Report(str(folder), name, notes=state.notes)
        for number, body in ((1, state.check_prototxt), (2, state.check_onnx),
                             (3, state.check_forward), (4, state.check_counts),
                             (5, state.check_formats), (6, state.check_opencv),
                             (7, state.check_mnn), (8, state.check_openvino)):
            if number in RUNTIME_CHECKS.values() and ALL_CHECK_NAMES[number] not in targets:
                continue
            report.checks.append(_run_check(number, body))
    report.seconds = time.perf_counter() - start
    return report


def caffe_target(targets: tuple[str, ...]) -> str:
    """The Caffe forms (netgen.caffe.targets) of files netgen makes for the checks: MNN's
    where MNN is a target (they run in BVLC Caffe and OpenCV too), else stock BVLC's."""
    return "mnn" if "mnn" in targets else "bvlc"


def validate_spec(spec: ArchSpec, device: str = "auto", batch: int = 1,
                  targets: tuple[str, ...] = ()) -> Report:
    """Build `spec` (with seed-0 weights) into a temporary folder and validate it; with MNN
    among the targets it is built as `build --target mnn` builds it."""
    from netgen.jobs.build import write_build

    targets = check_targets(targets)
    with tempfile.TemporaryDirectory(prefix="netgen-build-") as tmp:
        out = Path(tmp) / spec.name
        # without model.caffemodel and model.onnx: validate makes them, with trained-looking
        # BatchNorm and Scale values where runtimes are checked
        write_build(spec, out, force=True, weights=not targets, onnx=not targets, seed=0,
                    target=caffe_target(targets))
        report = validate_folder(out, device, batch, targets=targets)
    report.folder = f"(built in a temporary folder) {spec.name}"
    if caffe_target(targets) == "mnn":
        report.notes.insert(0, "built with --target mnn (the Caffe forms MNN computes right)")
    return report


def validate_file(path: str | Path, device: str = "auto", batch: int = 1,
                  input_shape: tuple[int, ...] | None = None,
                  targets: tuple[str, ...] = ()) -> Report:
    """The six checks on a single prototxt or ONNX file, made into a build in a temporary
    folder from the file's IR:

    - a prototxt that declares its input (input/input_dim, an Input layer) is the folder's
      deploy.prototxt as it is; a train_val is kept as train_val.prototxt (check 1 parses
      it) beside the deploy netgen renders from its IR; the weights are netgen's seeded
      initialisation (seed 0), as for a build folder without model.caffemodel;
    - an ONNX file is the folder's model.onnx as it is (one with external data: emitted again
      from the IR), beside the deploy.prototxt and model.caffemodel netgen renders from its
      IR and its initializers, so checks 5 and 6 run netgen's Caffe files against the file;
    - summary.json holds the counts of the file's IR, so check 4 compares them with the ONNX
      graph's; a file names no netgen network, so the paper's figures do not apply (give the
      name, or a build folder, for those);
    - with MNN among the targets, the Caffe files netgen renders are in the mnn forms, as
      `convert --target mnn` writes them; a prototxt given as deploy is checked as it is.
    """
    from netgen.caffe.targets import realize

    import onnx

    from netgen.caffe import prototxt
    from netgen.caffe.caffemodel import caffemodel_bytes
    from netgen.caffe.reader import DATA_TYPES, load_text, parse_text
    from netgen.jobs.build import file_summary
    from netgen.jobs.network import read_prototxt, resolve
    from netgen.onnx.reader import read_onnx_with_layout

    targets = check_targets(targets)
    form = caffe_target(targets)
    ref = resolve(path)
    if ref.kind not in ("prototxt", "onnx"):
        raise NetgenError(f"{path}: not a prototxt or ONNX file")
    if batch < 1:
        raise NetgenError(f"--batch must be at least 1, got {batch}")
    files: dict[str, bytes] = {}
    if ref.kind == "prototxt":
        text, _ = load_text(ref.path)
        declared = not any(layer.type in DATA_TYPES
                           for layer in parse_text(text, str(ref.path)).layer)
        graph = read_prototxt(ref.path, "TEST", input_shape).graph
        if declared:
            files["deploy.prototxt"] = text.encode()
            made = "the file as deploy.prototxt"
        else:
            shown = realize(graph, None, form)[0]
            files["deploy.prototxt"] = prototxt.render_deploy(shown).encode()
            files["train_val.prototxt"] = text.encode()
            made = "deploy.prototxt rendered from its IR, the file as train_val.prototxt"
        made += ", weights generated (seed 0)"
    else:
        graph, weights, layout = read_onnx_with_layout(ref.path)
        model = onnx.load(str(ref.path), load_external_data=False)
        external = any(t.data_location == onnx.TensorProto.EXTERNAL
                       for t in model.graph.initializer)
        if external or layout != "NCHW":
            from netgen.onnx.export import to_onnx
            from netgen.onnx.files import model_files

            files.update(model_files(to_onnx(graph, weights)))
            made = ("model.onnx emitted again from its IR (the file keeps its tensors apart)"
                    if external else "model.onnx emitted again from its IR, channels-first (the "
                    f"file is {layout}: the Caffe files take the image channels-first)")
        else:
            files["model.onnx"] = ref.path.read_bytes()
            made = "the file as model.onnx"
        caffe_graph, caffe_weights = realize(graph, weights, form)
        files["deploy.prototxt"] = prototxt.render_deploy(caffe_graph).encode()
        files["model.caffemodel"] = caffemodel_bytes(caffe_graph, caffe_weights)
        made += ", deploy.prototxt and model.caffemodel rendered from its IR and initializers"
    if form != "bvlc" and "deploy.prototxt rendered" in made or ref.kind == "onnx" and form != "bvlc":
        made += f" in the {form} forms"
    files["summary.json"] = (json.dumps(file_summary(graph), indent=2) + "\n").encode()
    with tempfile.TemporaryDirectory(prefix="netgen-file-") as tmp:
        folder = Path(tmp) / ref.path.stem
        folder.mkdir()
        for name, payload in files.items():
            (folder / name).write_bytes(payload)
        report = validate_folder(folder, device, batch,
                                 no_spec="a file, not one of netgen's names", targets=targets)
    report.folder = str(path)
    report.notes.insert(0, f"checked as a build in a temporary folder: {made}")
    return report


def find_builds(root: str | Path) -> list[Path]:
    """Every folder under `root` (itself included) that holds a deploy.prototxt."""
    root = Path(root)
    if not root.is_dir():
        raise NetgenError(f"{root}: not a folder")
    found = sorted({p.parent for p in root.rglob("deploy.prototxt")})
    if not found:
        raise NetgenError(f"{root}: no build folders (none holds a deploy.prototxt)")
    return found


def summary_table(reports: list[Report]) -> list[str]:
    width = max([len("network")] + [len(r.network) for r in reports])
    numbers = sorted({c.number for r in reports for c in r.checks}) or list(CHECK_NAMES)
    head = f"{'network':<{width}}  " + " ".join(str(n) for n in numbers) + "  result    time"
    lines = [head, "-" * len(head)]
    for r in reports:
        marks = " ".join(c.status[0] for c in r.checks)
        lines.append(f"{r.network:<{width}}  {marks}  {'ok' if r.ok else 'FAILED':<8}"
                     f"{r.seconds:6.1f} s")
    passed = sum(r.ok for r in reports)
    lines.append(f"{len(reports)} builds: {passed} passed, {len(reports) - passed} failed "
                 f"(P pass, F fail, S skip; checks: "
                 + ", ".join(f"{n} {ALL_CHECK_NAMES[n]}" for n in numbers) + ")")
    return lines

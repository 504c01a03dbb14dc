"""The whole pipeline under a small fixed recursion limit, shared by the scale tests.

No walk over the IR may recurse per layer: a stack allowance that is whatever the libraries
need (jinja2, protobuf, onnx) plus a margin, far below one frame per layer, must serve a
shallow net and a net of thousands of layers alike. It runs in its own thread so that the
lowered limit never meets pytest's own frames.
"""

from __future__ import annotations

import sys
import threading
from typing import Callable

from netgen.arch.builder import build
from netgen.arch.weights import initial_weights
from netgen.caffe import prototxt
from netgen.caffe import reader as caffe_reader
from netgen.onnx import export as onnx_export
from netgen.onnx.reader import import_model

MARGIN = 120  # frames above what the caller already uses


def _frames() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def pipeline(spec) -> tuple[int, int, int]:
    """Build, emit, read back, export and import: the layers built, read back and imported."""
    graph = build(spec)
    text = prototxt.render_deploy(graph)
    prototxt.render_train_val(graph, prototxt.data_options(spec))
    again = caffe_reader.read_prototxt(text)
    imported, _ = import_model(onnx_export.to_onnx(again, initial_weights(again)))
    return len(graph.layers), len(again.layers), len(imported.layers)


def with_small_stack(call: Callable[[], object]) -> object:
    """call() under the small recursion limit; its result, or its exception re-raised."""
    results: dict = {}

    def run():
        limit = sys.getrecursionlimit()
        try:
            sys.setrecursionlimit(_frames() + MARGIN)
            results["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - reported by the calling thread
            results["error"] = exc
        finally:
            sys.setrecursionlimit(limit)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in results:
        raise results["error"]
    return results["value"]

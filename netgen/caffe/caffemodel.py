"""Binary .caffemodel writer: the deploy net's blobs, loadable by Caffe, pycaffe and cv2.dnn.

Caffe's Net::CopyTrainedLayersFrom matches layers by name and checks blob counts and shapes,
so each layer record carries name, type, bottoms, tops and blobs. The file is assembled as
protobuf wire bytes layer by layer (a repeated field may be written record by record), which
keeps a ResNet-152's 240 MB of floats to a single copy instead of a tree of Python objects.
"""

from __future__ import annotations

import math
import os

from netgen.arch import ir
from netgen.arch.weights import Weights
from netgen.caffe import proto as caffe_proto
from netgen.errors import NetgenError
from netgen.storage.atomic import write_atomic

_LAYER_FIELD = 100  # NetParameter.layer
_BLOBS_FIELD = 7    # LayerParameter.blobs
_LEN = 2            # wire type of length-delimited fields


def _record(number: int, payload: bytes) -> bytes:
    return caffe_proto._varint(number << 3 | _LEN) + caffe_proto._varint(len(payload)) + payload


# Caffe reads a .caffemodel through protobuf with a total-bytes limit of INT_MAX
# (kProtoReadBytesLimit in caffe/util/io.cpp), and protobuf cannot even build one blob of
# 2 GiB or more: larger weights are refused before anything is computed.
MAX_CAFFEMODEL_BYTES = 2**31 - 1


def check_size(graph: ir.Graph) -> int:
    """The caffemodel's approximate size in bytes, or a NetgenError if Caffe could not read it."""
    size = sum(4 * math.prod(shape) for layer in graph.layers for shape in layer.blob_shapes)
    size += 200 * len(graph.layers)  # names, tops, shapes: generous
    if size > MAX_CAFFEMODEL_BYTES:
        raise NetgenError(
            f"model.caffemodel would be about {size:,} bytes ({size / 2**30:.1f} GiB); Caffe "
            f"reads at most {MAX_CAFFEMODEL_BYTES:,} (protobuf's 2 GiB limit). Build without "
            "--weights: model.onnx stores large weights as external data")
    return size


def caffemodel_bytes(graph: ir.Graph, weights: Weights) -> bytes:
    """NetParameter bytes holding every layer of `graph` that has blobs."""
    check_size(graph)
    parts = [caffe_proto.NetParameter(name=graph.name).SerializeToString()]
    for layer in graph.layers:
        if not layer.blob_shapes:
            continue
        blobs = weights.get(layer.name)
        if blobs is None or len(blobs) != len(layer.blob_shapes):
            have = "none" if blobs is None else len(blobs)
            raise NetgenError(f"layer {layer.name!r}: {have} weight blob(s), the net needs "
                              f"{len(layer.blob_shapes)}")
        header = caffe_proto.LayerParameter(
            name=layer.name, type=layer.type, bottom=list(layer.bottoms), top=list(layer.tops))
        body = [header.SerializeToString(deterministic=True)]
        for shape, blob in zip(layer.blob_shapes, blobs):
            if tuple(blob.shape) != tuple(shape):
                raise NetgenError(f"layer {layer.name!r}: blob of shape {list(blob.shape)}, the "
                                  f"net needs {list(shape)}")
            body.append(_record(_BLOBS_FIELD, caffe_proto.blob_from_array(blob).SerializeToString()))
        parts.append(_record(_LAYER_FIELD, b"".join(body)))
    return b"".join(parts)


def write_caffemodel(path: str | os.PathLike, graph: ir.Graph, weights: Weights) -> None:
    write_atomic(path, caffemodel_bytes(graph, weights))

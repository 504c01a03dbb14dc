"""Caffe reader: a prototxt (and optionally its .caffemodel) into the graph IR.

Reads what the ResNet family and its usual neighbours are written with: the legacy
`input:`/`input_dim:`/`input_shape` declarations or an Input layer (or the data layers of a
train_val, which are dropped with their labels, losses and accuracies), every spelling of
kernel/pad/stride, in-place tops, and the train/test `include`/`exclude` rules.

Everything the IR cannot represent stops with a NetgenError that names the layer and its
type; nothing is ever half read. Weights come from the binary .caffemodel by layer name
(from `layer`, or from the V1 `layers` field of old files), with Caffe's legacy 4-D blob
shapes mapped onto the IR's; without a caffemodel netgen's deterministic initialisation
stands in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf import text_format

from netgen.arch import ir
from netgen.arch.shapes import infer, pool_out, rounding_matters
from netgen.arch.stages import assign_stages, f32, is_subsample_pattern, mark_fixed_by_weights
from netgen.arch.weights import Weights, initial_weights
from netgen.caffe import proto as caffe_proto
from netgen.errors import InputShapeNeeded, NetgenError, first_line

PHASES = ("TRAIN", "TEST")

# Layers that produce the net's input in a train_val (their first top is the image blob,
# the others are labels); they are replaced by a graph input.
DATA_TYPES = frozenset({"Data", "ImageData", "HDF5Data", "MemoryData", "DummyData",
                        "WindowData", "VideoData", "AnnotatedData"})
# Layers that only make sense with labels; dropped, with anything else that needs a label.
LOSS_TYPES = frozenset({"SoftmaxWithLoss", "Accuracy", "EuclideanLoss", "HingeLoss",
                        "InfogainLoss", "MultinomialLogisticLoss", "SigmoidCrossEntropyLoss",
                        "ContrastiveLoss", "Silence"})
SUPPORTED_TYPES = tuple(sorted(set(ir.PARAM_TYPES) | {"Input"}))
# Larger prototxt files are refused before reading: 64 MiB is about 300,000 layers, past
# spec.MAX_LAYERS, and text_format parses it in about 20 s.
MAX_PROTOTXT_BYTES = 64 << 20

# Option A's realization: netgen's exact stride-2 subsample is a depthwise 1x1 convolution
# with constant weight 1 named like this.
FIXED_SUBSAMPLE_SUFFIX = "_branch1_sub"


@dataclass(frozen=True)
class Reading:
    """A prototxt read into the IR, with what the reader decided on the way."""

    graph: ir.Graph
    source: str
    input_source: str  # how the input was declared, for the user
    dropped: tuple[str, ...]  # layers left out: other phase, data, loss, accuracy
    frozen: frozenset[str]  # layers whose every `param` has lr_mult 0
    # layers folded away whose caffemodel blobs must be all ones (the Deconvolution of an SE
    # gate's broadcast, netgen's mnn form): weights_for checks them
    constants: tuple[str, ...] = ()


# --------------------------------------------------------------------------- text


def _looks_like_text(value: str) -> bool:
    """Prototxt text rather than a path: several lines, or braces or colons and no such file."""
    return "\n" in value or (("{" in value or ":" in value) and not os.path.exists(value))


def _too_big(source: str, size: int) -> NetgenError:
    return NetgenError(f"{source}: {size:,} bytes ({size / 2**20:.1f} MiB) is more than the "
                       f"{MAX_PROTOTXT_BYTES:,}-byte limit for a prototxt")


def load_text(path_or_text: str | os.PathLike) -> tuple[str, str]:
    """(text, source) from a path or from prototxt text itself.

    Files over MAX_PROTOTXT_BYTES are refused before they are read (and at most that much
    is ever read, so a pipe or a device that never ends cannot exhaust memory either).
    """
    if isinstance(path_or_text, str) and _looks_like_text(path_or_text):
        if len(path_or_text) > MAX_PROTOTXT_BYTES:
            raise _too_big("<prototxt>", len(path_or_text))
        return path_or_text, "<prototxt>"
    path = Path(path_or_text)
    try:
        size = path.stat().st_size
        if size > MAX_PROTOTXT_BYTES:
            raise _too_big(str(path), size)
        with open(path, "rb") as handle:
            data = handle.read(MAX_PROTOTXT_BYTES + 1)
        if len(data) > MAX_PROTOTXT_BYTES:
            raise NetgenError(f"{path}: more than the {MAX_PROTOTXT_BYTES:,}-byte limit for a "
                              "prototxt")
        return data.decode("utf-8"), str(path)
    except FileNotFoundError:
        raise NetgenError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise NetgenError(f"{path}: not a text prototxt (is it a binary .caffemodel?)") from None
    except IsADirectoryError:
        raise NetgenError(f"{path}: is a folder, not a prototxt") from None
    except OSError as exc:
        raise NetgenError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError:  # e.g. a NUL byte in the path
        raise NetgenError(f"{path_or_text!r}: neither prototxt text nor a valid path") from None


def parse_text(text: str, source: str) -> Any:
    """NetParameter from prototxt text. An unsupported layer whose parameter message netgen's
    schema lacks (an LRN's lrn_param, say) is reported as that layer, not as a syntax error."""
    try:
        return caffe_proto.parse_net(text, source)
    except NetgenError as original:
        lenient = caffe_proto.NetParameter()
        try:
            text_format.Parse(text, lenient, allow_unknown_field=True)
        except Exception:
            raise original from None
        for layer in lenient.layer:
            if layer.type not in SUPPORTED_TYPES and layer.type not in DATA_TYPES | LOSS_TYPES:
                raise _unsupported(layer.name, layer.type) from None
        raise


def _unsupported(name: str, type_: str) -> NetgenError:
    return NetgenError(f"layer {name!r} ({type_}): unsupported layer type; netgen reads "
                       f"{', '.join(SUPPORTED_TYPES)} (and drops data, loss and accuracy layers)")


def _fail(layer: Any, message: str) -> NetgenError:
    return NetgenError(f"layer {layer.name!r} ({layer.type}): {message}")


# --------------------------------------------------------------------------- phase rules


def _rule_matches(rule: Any, phase: int, level: int, stages: set[str]) -> bool:
    """Caffe's Net::StateMeetsRule."""
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    if any(stage not in stages for stage in rule.stage):
        return False
    if any(stage in stages for stage in rule.not_stage):
        return False
    return True


def _included(layer: Any, phase: int, level: int, stages: set[str]) -> bool:
    """Caffe's Net::FilterNet: include rules (any must match) or exclude rules (none may)."""
    if layer.include and layer.exclude:
        raise _fail(layer, "has both include and exclude rules (Caffe rejects that)")
    if layer.include:
        return any(_rule_matches(r, phase, level, stages) for r in layer.include)
    return not any(_rule_matches(r, phase, level, stages) for r in layer.exclude)


# --------------------------------------------------------------------------- parameters


def _hw_pair(layer: Any, p: Any, name: str, values: list[int], default: int | None,
             missing: str) -> ir.Pair:
    """kernel_size / pad / stride: the `values` given under `name` (one or two), or the
    _h/_w pair, or the default; `missing` is the error where there is none."""
    base = "kernel" if name == "kernel_size" else name
    h_name, w_name = f"{base}_h", f"{base}_w"
    if p.HasField(h_name) or p.HasField(w_name):
        if values:
            raise _fail(layer, f"give either {name} or {h_name}/{w_name}, not both")
        if name != "pad" and not (p.HasField(h_name) and p.HasField(w_name)):
            raise _fail(layer, f"{h_name} and {w_name} must be given together")
        return int(getattr(p, h_name)), int(getattr(p, w_name))
    if not values:
        if default is None:
            raise _fail(layer, missing)
        return default, default
    if len(values) == 1:
        return values[0], values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise _fail(layer, f"{len(values)} values of {name}: only 2-D convolutions are supported")


def _pair_repeated(layer: Any, p: Any, name: str, default: int | None) -> ir.Pair:
    """kernel_size / pad / stride of a ConvolutionParameter: repeated, or the _h/_w pair."""
    return _hw_pair(layer, p, name, [int(v) for v in getattr(p, name)], default,
                    "convolution_param needs kernel_size (or kernel_h and kernel_w)")


def _convolution(layer: Any) -> ir.ConvolutionParam:
    p = layer.convolution_param
    if not layer.HasField("convolution_param") or not p.HasField("num_output"):
        raise _fail(layer, "convolution_param needs num_output")
    if p.axis != 1:
        raise _fail(layer, f"convolution_param axis {p.axis}: only axis 1 (NCHW) is supported")
    dilation = [int(v) for v in p.dilation]
    if len(dilation) > 2:
        raise _fail(layer, f"{len(dilation)} values of dilation: only 2-D convolutions are supported")
    dil = (1, 1) if not dilation else (dilation[0], dilation[-1])
    return ir.ConvolutionParam(
        num_output=int(p.num_output),
        kernel=_pair_repeated(layer, p, "kernel_size", None),
        stride=_pair_repeated(layer, p, "stride", 1),
        pad=_pair_repeated(layer, p, "pad", 0),
        dilation=dil,
        group=int(p.group),
        bias_term=bool(p.bias_term),
    )


def _pool_pair(layer: Any, p: Any, name: str, default: int | None) -> ir.Pair:
    """kernel_size / pad / stride of a PoolingParameter: optional, or the _h/_w pair."""
    values = [int(getattr(p, name))] if p.HasField(name) else []
    return _hw_pair(layer, p, name, values, default, "pooling_param needs kernel_size (or "
                    "kernel_h and kernel_w, or global_pooling)")


def _pooling(layer: Any) -> ir.PoolingParam:
    p = layer.pooling_param
    method = caffe_proto.PoolingParameter.PoolMethod.Name(p.pool)
    if method not in ("MAX", "AVE"):
        raise _fail(layer, f"pool {method} is not supported (MAX or AVE)")
    if p.global_pooling:
        if p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w"):
            raise _fail(layer, "with global_pooling the kernel size cannot be given")
        if _pool_pair(layer, p, "pad", 0) != (0, 0) or _pool_pair(layer, p, "stride", 1) != (1, 1):
            raise _fail(layer, "with global_pooling only pad 0 and stride 1 are allowed")
        return ir.PoolingParam(method, global_pooling=True)
    return ir.PoolingParam(method, kernel=_pool_pair(layer, p, "kernel_size", None),
                           stride=_pool_pair(layer, p, "stride", 1),
                           pad=_pool_pair(layer, p, "pad", 0),
                           round_mode=caffe_proto.PoolingParameter.RoundMode.Name(p.round_mode))


def _one_bottom(layer: Any, what: str) -> None:
    if len(layer.bottom) != 1:
        raise _fail(layer, f"{len(layer.bottom)} bottoms: only the one-bottom form (learned "
                    f"{what}) is supported, not the {what} given as a second blob")


def _param(layer: Any) -> ir.LayerParam:
    """The IR parameters of one (non-data, non-loss) layer."""
    t = layer.type
    if t in ("Convolution", "Deconvolution"):
        return _convolution(layer)
    if t == "Pooling":
        return _pooling(layer)
    if t == "BatchNorm":
        p = layer.batch_norm_param
        return ir.BatchNormParam(
            use_global_stats=bool(p.use_global_stats) if p.HasField("use_global_stats") else None,
            eps=f32(p.eps), moving_average_fraction=f32(p.moving_average_fraction))
    if t == "Scale":
        p = layer.scale_param
        if len(layer.bottom) == 2 and not p.bias_term:
            # The factor given as a second blob (netgen's stock SE form: a gate flattened
            # to N x C, axis 0); shape inference checks that it lines up.
            return ir.ScaleParam(axis=int(p.axis), num_axes=int(p.num_axes))
        _one_bottom(layer, "scale")
        return ir.ScaleParam(bias_term=bool(p.bias_term), axis=int(p.axis),
                             num_axes=int(p.num_axes))
    if t == "Bias":
        _one_bottom(layer, "bias")
        p = layer.bias_param
        return ir.BiasParam(axis=int(p.axis), num_axes=int(p.num_axes))
    if t == "ReLU":
        return ir.ReLUParam(negative_slope=f32(layer.relu_param.negative_slope))
    if t == "PReLU":
        return ir.PReLUParam(channel_shared=bool(layer.prelu_param.channel_shared))
    if t == "Eltwise":
        p = layer.eltwise_param
        op = caffe_proto.EltwiseParameter.EltwiseOp.Name(p.operation)
        return ir.EltwiseParam(operation=op, coeff=tuple(f32(c) for c in p.coeff))
    if t == "InnerProduct":
        p = layer.inner_product_param
        if not p.HasField("num_output"):
            raise _fail(layer, "inner_product_param needs num_output")
        return ir.InnerProductParam(num_output=int(p.num_output), bias_term=bool(p.bias_term),
                                    axis=int(p.axis), transpose=bool(p.transpose))
    if t == "Softmax":
        return ir.SoftmaxParam(axis=int(layer.softmax_param.axis))
    if t == "Concat":
        p = layer.concat_param
        axis = p.axis if p.HasField("axis") or not p.HasField("concat_dim") else p.concat_dim
        return ir.ConcatParam(axis=int(axis))
    if t == "Slice":
        p = layer.slice_param
        axis = p.axis if p.HasField("axis") or not p.HasField("slice_dim") else p.slice_dim
        return ir.SliceParam(axis=int(axis), slice_point=tuple(int(v) for v in p.slice_point))
    if t == "Power":
        p = layer.power_param
        return ir.PowerParam(power=f32(p.power), scale=f32(p.scale), shift=f32(p.shift))
    if t == "MVN":
        p = layer.mvn_param
        return ir.MVNParam(normalize_variance=bool(p.normalize_variance),
                           across_channels=bool(p.across_channels), eps=f32(p.eps))
    if t == "Dropout":
        return ir.DropoutParam(dropout_ratio=f32(layer.dropout_param.dropout_ratio))
    if t == "Flatten":
        p = layer.flatten_param
        return ir.FlattenParam(axis=int(p.axis), end_axis=int(p.end_axis))
    if t == "Reshape":
        p = layer.reshape_param
        if not p.HasField("shape"):
            raise _fail(layer, "reshape_param needs a shape")
        return ir.ReshapeParam(shape=tuple(int(d) for d in p.shape.dim), axis=int(p.axis),
                               num_axes=int(p.num_axes))
    if t in ("Split", "Sigmoid", "Axpy"):
        return ir.NoParam()  # Axpy: SENet's a * x + y; shape inference checks its bottoms
    raise _unsupported(layer.name, t)


# --------------------------------------------------------------------------- inputs


def _legacy_inputs(net: Any) -> list[ir.Blob]:
    names = list(net.input)
    if not names:
        if net.input_dim or net.input_shape:
            raise NetgenError("input_dim/input_shape without an `input:` name")
        return []
    if net.input_shape:
        if len(net.input_shape) != len(names):
            raise NetgenError(f"{len(names)} input(s) but {len(net.input_shape)} input_shape(s)")
        return [ir.Blob(n, tuple(int(d) for d in s.dim)) for n, s in zip(names, net.input_shape)]
    dims = [int(d) for d in net.input_dim]
    if len(dims) != 4 * len(names):
        raise NetgenError(f"{len(names)} input(s) need {4 * len(names)} input_dim values "
                          f"(N, C, H, W each), got {len(dims)}")
    return [ir.Blob(n, tuple(dims[4 * i:4 * i + 4])) for i, n in enumerate(names)]


def _input_layer_blobs(layer: Any) -> list[ir.Blob]:
    """The tops of an Input layer: one shape per top, or one shape for all."""
    shapes = list(layer.input_param.shape)
    if not shapes or len(shapes) not in (1, len(layer.top)):
        raise _fail(layer, f"input_param needs one shape per top ({len(layer.top)}), "
                    f"got {len(shapes)}")
    return [ir.Blob(top, tuple(int(d) for d in shapes[i if len(shapes) > 1 else 0].dim))
            for i, top in enumerate(layer.top)]


def _data_layer_shape(layer: Any, folder: Path | None) -> tuple[int, ...]:
    """(1, C, H, W) for the image top of a data layer, from the layer itself (crop_size,
    ImageData's new_height/new_width, DummyData's shape) or, for HDF5Data, from the first
    file its source lists; InputShapeNeeded where neither tells. `folder` is the prototxt's
    folder (None for text), where relative sources are also looked for."""
    if layer.type == "DummyData":
        p = layer.dummy_data_param
        if p.shape:
            return (1,) + tuple(int(d) for d in p.shape[0].dim[1:])
        if p.channels and p.height and p.width:
            return 1, int(p.channels[0]), int(p.height[0]), int(p.width[0])
        raise _shape_needed(layer, "its dummy_data_param gives no shape")
    if layer.type == "HDF5Data":
        return _hdf5_shape(layer, folder)
    crop = layer.transform_param.crop_size if layer.HasField("transform_param") else 0
    if not crop and layer.type == "Data":
        crop = layer.data_param.crop_size
    if not crop and layer.type == "ImageData":
        crop = layer.image_data_param.crop_size
        p = layer.image_data_param
        if not crop and p.new_height and p.new_width:
            channels = 3 if p.is_color else 1
            return 1, channels, int(p.new_height), int(p.new_width)
    if not crop:
        if layer.type == "ImageData":
            raise _shape_needed(layer, "no crop_size or new_height/new_width: each image "
                                "keeps its own size")
        where = "database" if layer.type == "Data" else "data"
        raise _shape_needed(layer, f"no crop_size: the image size is in the {where}")
    channels = 1 if layer.type == "ImageData" and not layer.image_data_param.is_color else 3
    return 1, channels, int(crop), int(crop)


def _shape_needed(layer: Any, why: str, alternative: bool = False) -> InputShapeNeeded:
    return InputShapeNeeded(f"layer {layer.name!r} ({layer.type}): cannot tell the input size "
                            f"from this data layer ({why})", alternative)


def _find(name: str, *folders: Path | None) -> Path | None:
    """`name` as Caffe opens it (from the working folder, or absolute), else beside the
    prototxt or the list that names it: other projects' files name paths relative to the
    folder Caffe ran in, which is seldom the one netgen runs in."""
    candidates = [Path(name)]
    if not Path(name).is_absolute():
        candidates += [folder / name for folder in folders if folder is not None]
    for candidate in candidates:
        try:
            if candidate.is_file():
                return candidate
        except (OSError, ValueError):  # a NUL byte, a name too long for the system
            pass
    return None


def _short(text: str, limit: int = 120) -> str:
    """A path from a file, quoted, cut where it would make the one-line message a page."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _hdf5_shape(layer: Any, folder: Path | None) -> tuple[int, ...]:
    """The shape of the image dataset (named like the layer's first top) in the first .h5
    file of the source list, with the batch dimension set to 1."""
    source = layer.hdf5_data_param.source
    if not source:
        raise _shape_needed(layer, "hdf5_data_param has no source")
    listing = _find(source, folder)
    if listing is None:
        raise _shape_needed(layer, f"its source list {_short(source)} is not found")
    try:
        with open(listing, "rb") as handle:
            names = handle.read(1 << 20).decode("utf-8", "replace").split()
    except OSError as exc:
        raise _shape_needed(layer, f"{listing}: {exc.strerror or exc}") from None
    if not names:
        raise _shape_needed(layer, f"its source list {str(listing)!r} names no file")
    h5 = _find(names[0], listing.parent, folder)
    if h5 is None:
        raise _shape_needed(layer, f"{_short(names[0])}, the first file of {str(listing)!r}, "
                            "is not found")
    try:
        import h5py
    except ImportError:
        raise InputShapeNeeded(f"layer {layer.name!r} ({layer.type}): reading the input size "
                               f"from {str(h5)!r} needs h5py (pip install 'netgen[hdf5]')",
                               alternative=True) from None
    top = layer.top[0]
    try:
        with h5py.File(h5, "r") as data:
            dataset = data.get(top)
            shape = tuple(int(d) for d in dataset.shape) if isinstance(dataset, h5py.Dataset) \
                else None
    except OSError as exc:
        raise _shape_needed(layer, f"{str(h5)!r} is not a readable HDF5 file: "
                            f"{first_line(exc)}") from None
    if shape is None:
        raise _shape_needed(layer, f"{str(h5)!r} has no dataset {top!r}")
    if len(shape) < 2 or min(shape[1:]) < 1:
        raise _shape_needed(layer, f"dataset {top!r} of {str(h5)!r} has shape {list(shape)}, "
                            "not N,C,H,W")
    return (1,) + shape[1:]


# --------------------------------------------------------------------------- the net


def _floor_crop(layer: Any, layers: list[ir.Layer], uses: dict[str, int]) -> tuple[int, ir.Pair]:
    """netgen's stock-layer form of a floor-rounded pooling (prototxt.realize_floor_pools):
    Pooling P rounding up, a stride-1 Pooling R of P's top with kernel 1 or 2 per axis as the
    reference, Crop(P, R) at axis 2, offset 0. Folds P and R (already read) into one round_mode
    FLOOR pooling writing the Crop's top; returns P's index and R's kernel, whose sizes are
    checked once shapes are known. Any other Crop has no equivalent in the IR."""
    p = layer.crop_param
    what = ("Crop is read only as the second half of a floor-rounded pooling (a Pooling, a "
            "kernel-2 stride-1 Pooling of its top as the reference, Crop at axis 2 offset 0)")
    if len(layer.bottom) != 2 or len(layer.top) != 1:
        raise _fail(layer, f"{what}; this one has {len(layer.bottom)} bottoms")
    if p.axis != 2 or any(p.offset):
        raise _fail(layer, f"{what}; this one crops from axis {p.axis} at offsets "
                    f"{list(p.offset)}")
    rounded, reference = layer.bottom

    def producer(blob: str) -> int:
        return max((i for i, known in enumerate(layers) if blob in known.tops), default=-1)

    ref_index, pool_index = producer(reference), producer(rounded)
    ref = layers[ref_index] if ref_index >= 0 else None
    pool = layers[pool_index] if pool_index >= 0 else None
    if (ref is None or pool is None or ref.type != "Pooling" or pool.type != "Pooling"
            or ref.bottoms != (rounded,) or ref.param.global_pooling
            or ref.param.stride != (1, 1) or ref.param.pad != (0, 0)
            or not set(ref.param.kernel) <= {1, 2} or pool.param.global_pooling
            or pool.param.round_mode != "CEIL" or uses.get(rounded) != 2
            or uses.get(reference) != 1):
        raise _fail(layer, f"{what}; its bottoms are not such a pair of Pooling layers")
    layers[pool_index] = replace(pool, tops=(layer.top[0],),
                                 param=replace(pool.param, round_mode="FLOOR"))
    del layers[ref_index]
    return pool_index, ref.param.kernel


def _canonical_rounding(graph: ir.Graph, crops: dict[str, ir.Pair]) -> ir.Graph:
    """round_mode FLOOR where it changes the output size, else CEIL (one IR per computation,
    however the file spells it); a crop form whose reference does not give the floor size
    is refused."""
    shapes: dict[str, tuple[int, ...]] = {b.name: b.shape for b in graph.inputs}
    layers = []
    for layer in graph.layers:
        if layer.type == "Pooling" and layer.param.round_mode == "FLOOR":
            p: ir.PoolingParam = layer.param
            size = shapes[layer.bottoms[0]][2:]
            if layer.name in crops:
                for n, k, s, pad, ref in zip(size, p.kernel, p.stride, p.pad, crops[layer.name]):
                    cropped = pool_out(n, k, s, pad) - (ref - 1)
                    if cropped != pool_out(n, k, s, pad, "FLOOR"):
                        raise NetgenError(
                            f"layer {layer.name!r} (Pooling): the Crop after it keeps {cropped} "
                            f"of its {pool_out(n, k, s, pad)} outputs on an input of {n}, not "
                            f"the {pool_out(n, k, s, pad, 'FLOOR')} of rounding down; not the "
                            "floor-pooling form netgen reads")
            if not rounding_matters(p, size):
                layer = replace(layer, param=replace(p, round_mode="CEIL"))
        for top, shape in zip(layer.tops, layer.top_shapes):
            shapes[top] = shape
        layers.append(layer)
    return graph.with_layers(layers)


PAIR_SOFTMAX = ("Slice", "Power", "Eltwise", "Power", "Sigmoid", "Sigmoid", "Concat")


def _fold_pair_softmax(graph: ir.Graph) -> ir.Graph:
    """caffe.targets' mnn form of a Softmax over an axis of two (the sigmoids of the two
    differences: Slice, Power -1, Eltwise SUM, Power -1, Sigmoid, Sigmoid, Concat, each blob
    read only within) as the IR's one Softmax, so that a file has one IR whatever its target."""
    layers = list(graph.layers)
    uses = ir.bottom_uses(layers)
    out: list[ir.Layer] = []
    i = 0
    while i < len(layers):
        run = layers[i:i + len(PAIR_SOFTMAX)]
        if _is_pair_softmax(run, uses):
            out.append(ir.Layer(run[-1].name, "Softmax", run[0].bottoms, run[-1].tops,
                                ir.SoftmaxParam(axis=run[0].param.axis), stage=run[-1].stage))
            i += len(run)
            continue
        out.append(layers[i])
        i += 1
    if len(out) == len(layers):
        return graph
    return infer(graph.name, graph.inputs, out)


def _is_pair_softmax(run: list[ir.Layer], uses: dict[str, int]) -> bool:
    if tuple(layer.type for layer in run) != PAIR_SOFTMAX:
        return False
    cut, negate, diff, flip, first, second, join = run
    if len(cut.tops) != 2 or cut.param.slice_point != (1,) or not cut.top_shapes \
            or len(cut.top_shapes[0]) != 4 or join.param.axis != cut.param.axis:
        return False
    a, b = cut.tops
    minus = ir.PowerParam(scale=-1.0)
    wired = (negate.bottoms == (b,) and negate.param == minus
             and diff.bottoms == (a, negate.tops[0]) and diff.param == ir.EltwiseParam("SUM")
             and flip.bottoms == diff.tops and flip.param == minus
             and first.bottoms == diff.tops and second.bottoms == flip.tops
             and join.bottoms == (first.tops[0], second.tops[0]))
    counts = {a: 1, b: 1, negate.tops[0]: 1, diff.tops[0]: 2, flip.tops[0]: 1,
              first.tops[0]: 1, second.tops[0]: 1}
    return wired and all(uses.get(blob) == n for blob, n in counts.items())


def _fold_se(graph: ir.Graph) -> tuple[ir.Graph, tuple[str, ...]]:
    """netgen's two stock spellings of an SE product and sum as the IR's one Axpy, so that a
    file has one IR however it spells SE; anything else stays the stock layers it is. Each is
    three layers, each read only by the next:

    - prototxt.realize_axpy's: Flatten of the N x C x 1 x 1 gate, a two-bottom Scale with axis
      0 multiplying x, Eltwise SUM with the shortcut;
    - caffe.targets' mnn form: a Deconvolution of ones broadcasting the gate to x's shape,
      Eltwise PROD with x, Eltwise SUM with the shortcut.

    A product with no sum after it (the first of a selective-kernel unit's weighted paths or of
    split attention's radix parts) is the stock product (Flatten, two-bottom Scale), whichever
    form it is written in; the products after it, each summed onto the one before, Axpys.

    Returns the graph and the names of the Deconvolutions folded away, whose weights must be
    ones (weights_for checks them)."""
    layers = list(graph.layers)
    uses = ir.bottom_uses(layers)
    out: list[ir.Layer] = []
    constants: list[str] = []
    folded = False
    i = 0
    while i < len(layers):
        first, product, total = (layers[i:i + 3] + [None, None])[:3]
        stock = first.type == "Flatten" and product is not None and total is not None \
            and _is_se_form(first, product, total, uses)
        broadcast = first.type == "Deconvolution" and product is not None \
            and total is not None and _is_broadcast_form(first, product, total, uses)
        if stock or broadcast:
            x = product.bottoms[0] if stock else \
                next(b for b in product.bottoms if b != first.tops[0])
            shortcut = next(b for b in total.bottoms if b != product.tops[0])
            out.append(ir.Layer(total.name, "Axpy", (first.bottoms[0], x, shortcut), total.tops,
                                ir.NoParam(), stage=total.stage))
            if broadcast:
                constants.append(first.name)
            folded = True
            i += 3
            continue
        if first.type == "Deconvolution" and product is not None \
                and _is_broadcast_product(first, product, uses):
            # a gate product on its own (targets' mnn form of a selective-kernel unit's first
            # weighted path): the IR's Flatten and two-bottom Scale
            x = next(b for b in product.bottoms if b != first.tops[0])
            out.append(ir.Layer(first.name, "Flatten", first.bottoms, first.tops,
                                ir.FlattenParam(), stage=first.stage))
            out.append(ir.Layer(product.name, "Scale", (x, first.tops[0]), product.tops,
                                ir.ScaleParam(axis=0), stage=product.stage))
            constants.append(first.name)
            folded = True
            i += 2
            continue
        out.append(first)
        i += 1
    if not folded:
        return graph, ()
    return infer(graph.name, graph.inputs, out), tuple(constants)


def _is_se_form(flat: ir.Layer, scale: ir.Layer, total: ir.Layer, uses: dict[str, int]) -> bool:
    gate_shape = flat.top_shapes and flat.top_shapes[0]
    x_shape = scale.top_shapes[0] if scale.top_shapes else ()
    return (flat.param == ir.FlattenParam() and len(x_shape) == 4
            and scale.type == "Scale" and len(scale.bottoms) == 2
            and scale.bottoms[1] == flat.tops[0] and scale.param.axis % 4 == 0
            and scale.tops[0] not in scale.bottoms
            and gate_shape == (x_shape[0], x_shape[1])
            and total.type == "Eltwise" and total.param.operation == "SUM"
            and all(c == 1 for c in total.param.coeff) and len(total.bottoms) == 2
            and scale.tops[0] in total.bottoms and total.bottoms[0] != total.bottoms[1]
            and uses.get(flat.tops[0]) == 1 and uses.get(scale.tops[0]) == 1)


def _is_broadcast_product(wide: ir.Layer, product: ir.Layer, uses: dict[str, int]) -> bool:
    """A Deconvolution that broadcasts an N x C x 1 x 1 gate over H x W (group C, kernel
    H x W; its weights are checked to be ones) read by one Eltwise PROD with x alone."""
    p: ir.ConvolutionParam = wide.param
    gate_shape = wide.bottoms and wide.top_shapes and wide.top_shapes[0]
    if not gate_shape or len(gate_shape) != 4:
        return False
    n, c, h, w = gate_shape
    return (p.group == c == p.num_output and not p.bias_term and p.kernel == (h, w)
            and p.stride == (1, 1) and p.pad == (0, 0) and p.dilation == (1, 1)
            and product.type == "Eltwise" and product.param.operation == "PROD"
            and not product.param.coeff and len(product.bottoms) == 2
            and wide.tops[0] in product.bottoms and product.bottoms[0] != product.bottoms[1]
            and product.tops[0] not in product.bottoms and uses.get(wide.tops[0]) == 1)


def _is_broadcast_form(wide: ir.Layer, product: ir.Layer, total: ir.Layer,
                       uses: dict[str, int]) -> bool:
    return (_is_broadcast_product(wide, product, uses)
            and total.type == "Eltwise" and total.param.operation == "SUM"
            and all(v == 1 for v in total.param.coeff) and len(total.bottoms) == 2
            and product.tops[0] in total.bottoms and total.bottoms[0] != total.bottoms[1]
            and uses.get(product.tops[0]) == 1)


def _v1_format(first: Any, source: str) -> NetgenError:
    """The error for a prototxt in the V1 `layers` format, naming its first layer."""
    kind = caffe_proto.V1LayerParameter.LayerType.Name(first.type) if first.type in \
        caffe_proto.V1LayerParameter.LayerType.values() else str(first.type)
    return NetgenError(
        f"layer {first.name!r} ({kind}): {source} uses the V1 `layers` format; netgen reads "
        "the current `layer` format only (Caffe's tools/upgrade_net_proto_text converts it)")


def read_net(path_or_text: str | os.PathLike, phase: str = "TEST",
             input_shape: tuple[int, ...] | None = None) -> Reading:
    """Read a deploy or train_val prototxt for `phase` into the IR, reporting the decisions.

    input_shape overrides the shape of the input, or supplies it where nothing in the file
    tells it (an LMDB Data layer without crop_size): InputShapeNeeded then, without it.
    """
    phase = phase.upper()
    if phase not in PHASES:
        raise NetgenError(f"unknown phase {phase!r}; allowed: TRAIN, TEST")
    text, source = load_text(path_or_text)
    net = parse_text(text, source)
    folder = None if source == "<prototxt>" else Path(source).parent
    if net.layers:
        raise _v1_format(net.layers[0], source)
    phase_value = caffe_proto.Phase.Value(phase)
    level = int(net.state.level) if net.HasField("state") else 0
    stages = set(net.state.stage) if net.HasField("state") else set()

    inputs = _legacy_inputs(net)
    input_source = "the net's input/input_dim fields" if inputs else ""
    if net.input_shape and inputs:
        input_source = "the net's input/input_shape fields"
    shape_given = False  # input_shape already applied to the data layer that is the input
    dropped: list[str] = []
    dead_blobs: set[str] = set()  # labels and what only they feed
    layers: list[ir.Layer] = []
    frozen: set[str] = set()
    crops: dict[str, ir.Pair] = {}  # floor poolings read from the crop form: reference kernel
    uses: dict[str, int] = {}
    for layer in net.layer:
        for bottom in layer.bottom:
            uses[bottom] = uses.get(bottom, 0) + 1
    for layer in net.layer:
        if not _included(layer, phase_value, level, stages):
            dropped.append(layer.name)
            continue
        if layer.type == "Input":
            inputs.extend(_input_layer_blobs(layer))
            input_source = input_source or f"the Input layer {layer.name!r}"
            continue
        if layer.type in DATA_TYPES:
            if not layer.top:
                raise _fail(layer, "has no top")
            shape = input_shape or _data_layer_shape(layer, folder)
            inputs.append(ir.Blob(layer.top[0], tuple(shape)))
            dead_blobs.update(layer.top[1:])
            dropped.append(layer.name)
            if not input_source:
                how = "given shape" if input_shape else "batch 1"
                input_source = f"the {layer.type} layer {layer.name!r} of phase {phase} ({how})"
                shape_given = input_shape is not None
            continue
        if layer.type in LOSS_TYPES or any(b in dead_blobs for b in layer.bottom):
            dead_blobs.update(t for t in layer.top if t not in layer.bottom)
            dropped.append(layer.name)
            continue
        if layer.type == "Crop":
            index, kernel = _floor_crop(layer, layers, uses)
            crops[layers[index].name] = kernel
            continue
        if layer.type not in ir.PARAM_TYPES:
            raise _unsupported(layer.name, layer.type)
        param = _param(layer)
        if layer.param and all(spec.lr_mult == 0 for spec in layer.param):
            frozen.add(layer.name)
        layers.append(ir.Layer(layer.name, layer.type, tuple(layer.bottom), tuple(layer.top),
                               param))
    if input_shape is not None and inputs and not shape_given:
        if len(inputs) != 1:
            raise NetgenError(f"an input shape was given but the net has {len(inputs)} inputs")
        inputs = [ir.Blob(inputs[0].name, tuple(input_shape))]
        input_source += " (shape given explicitly)"
    if not inputs:
        raise NetgenError(f"{source}: declares no input (no input/input_dim fields, Input "
                          "layer or data layer)")
    if not layers:
        raise NetgenError(f"{source}: has no layers to read for phase {phase}")
    name = net.name or Path(source).stem
    graph, constants = _fold_se(_fold_pair_softmax(
        _canonical_rounding(infer(name, inputs, assign_stages(layers)), crops)))
    fixed = [replace(layer, fixed=True) if is_subsample_pattern(layer) and (
        layer.name.endswith(FIXED_SUBSAMPLE_SUFFIX) or layer.name in frozen) else layer
        for layer in graph.layers]
    input_text = ", ".join(f"{b.name!r} {list(b.shape)}" for b in graph.inputs)
    return Reading(graph=graph.with_layers(fixed), source=source,
                   input_source=f"input {input_text} from {input_source}",
                   dropped=tuple(dropped), frozen=frozenset(frozen), constants=constants)


def read_prototxt(path_or_text: str | os.PathLike, phase: str = "TEST") -> ir.Graph:
    """The IR of a deploy or train_val prototxt (path or text) for `phase`."""
    return read_net(path_or_text, phase).graph


# --------------------------------------------------------------------------- weights


def caffemodel_blobs(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """Layer name -> blobs of a binary .caffemodel, from `layer` and the V1 `layers` field."""
    net = caffe_proto.read_caffemodel(path)
    found: dict[str, list[np.ndarray]] = {}
    for record in list(net.layers) + list(net.layer):
        if not record.blobs:
            continue
        try:
            found[record.name] = [caffe_proto.array_from_blob(b) for b in record.blobs]
        except NetgenError as exc:
            raise NetgenError(f"{os.fspath(path)}: layer {record.name!r}: {exc}") from None
    return found


def _strip_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    i = 0
    while i < len(shape) and shape[i] == 1:
        i += 1
    return tuple(shape[i:])


_BLOB_ROLES = {
    "Convolution": ("weights", "bias"),
    "InnerProduct": ("weights", "bias"),
    "BatchNorm": ("mean", "variance", "moving-average factor"),
    "Scale": ("scale", "bias"),
    "Bias": ("bias",),
    "PReLU": ("slopes",),
}


def _count_reason(layer: ir.Layer) -> str:
    if layer.type in ("Convolution", "InnerProduct", "Scale"):
        return f"bias_term: {'true' if layer.param.bias_term else 'false'}"
    return ", ".join(_BLOB_ROLES.get(layer.type, ("blobs",)))


def map_blobs(graph: ir.Graph, blobs: dict[str, list[np.ndarray]],
              source: str = "caffemodel") -> Weights:
    """The caffemodel's blobs on the IR's layers, checked and reshaped to the IR's shapes."""
    weights: Weights = {}
    for layer in graph.layers:
        if not layer.blob_shapes:
            continue
        found = blobs.get(layer.name)
        if not found:
            raise NetgenError(f"layer {layer.name!r} ({layer.type}): {source} has no blobs for "
                              f"it; the prototxt implies {len(layer.blob_shapes)}")
        if len(found) != len(layer.blob_shapes):
            raise NetgenError(f"layer {layer.name!r}: caffemodel has {len(found)} blobs, the "
                              f"prototxt implies {len(layer.blob_shapes)} ({_count_reason(layer)})")
        roles = _BLOB_ROLES.get(layer.type, ())
        mapped = []
        for i, (array, shape) in enumerate(zip(found, layer.blob_shapes)):
            role = f" ({roles[i]})" if i < len(roles) else ""
            if tuple(array.shape) != tuple(shape):
                if array.size != int(np.prod(shape)) or _strip_ones(array.shape) != _strip_ones(shape):
                    raise NetgenError(
                        f"layer {layer.name!r}: blob {i}{role} has shape {list(array.shape)} in "
                        f"the caffemodel, the prototxt implies {list(shape)}")
                array = array.reshape(shape)
            mapped.append(np.ascontiguousarray(array, dtype=np.float32))
        weights[layer.name] = mapped
    return weights


def read_caffe(prototxt_path: str | os.PathLike, caffemodel_path: str | os.PathLike | None = None,
               seed: int = 0, phase: str = "TEST") -> tuple[ir.Graph, Weights]:
    """The IR and weights of a prototxt and its caffemodel (or netgen's init without one)."""
    reading = read_net(prototxt_path, phase)
    return weights_for(reading.graph, caffemodel_path, seed, reading.constants)


def weights_for(graph: ir.Graph, caffemodel_path: str | os.PathLike | None = None,
                seed: int = 0, constants: tuple[str, ...] = ()) -> tuple[ir.Graph, Weights]:
    """Weights of an already read graph: from the caffemodel, or netgen's deterministic init.
    `constants` (Reading.constants) are layers the reader folded away as constants of a
    form; their blobs in the caffemodel must be all ones, or the form was not that."""
    if caffemodel_path is None:
        return graph, initial_weights(graph, seed)
    blobs = caffemodel_blobs(caffemodel_path)
    for name in constants:
        if name in blobs and not all(np.all(blob == 1) for blob in blobs[name]):
            raise NetgenError(
                f"layer {name!r} (Deconvolution): read as the broadcast of an SE gate "
                f"(netgen's mnn form), but its weights in {os.fspath(caffemodel_path)} are "
                "not all ones")
    weights = map_blobs(graph, blobs, os.fspath(caffemodel_path))
    return mark_fixed_by_weights(graph, weights), weights

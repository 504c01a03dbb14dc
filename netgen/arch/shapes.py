"""Shape inference with Caffe's own arithmetic, and the parameter-blob shapes it implies.

Builders and readers state only layer parameters; every top shape and blob shape comes from
here, so a file can never claim a shape its parameters contradict. Caffe's rules matter:
convolution rounds down, pooling rounds up (and drops a last window that starts in the
padding) unless its round_mode is FLOOR, Eltwise demands equal shapes.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

from netgen.arch import ir
from netgen.arch.ir import Shape
from netgen.errors import NetgenError

# Activations above this many float32 elements (summed over every distinct top) are refused
# before anything is allocated: 2**31 elements is 8 GiB.
MAX_ACTIVATION_ELEMENTS = 2**31
# Parameter blobs (weights and statistics) above this many float32 elements are refused too:
# 2**30 elements is 4 GiB, the largest .caffemodel netgen reads back
# (caffe_proto.DEFAULT_MAX_CAFFEMODEL_BYTES).
MAX_PARAMETER_ELEMENTS = 2**30


def conv_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    """Caffe's ConvolutionLayer::compute_output_shape: rounds down."""
    extent = dilation * (kernel - 1) + 1
    return (size + 2 * pad - extent) // stride + 1


ROUND_MODES = ("CEIL", "FLOOR")


def pool_out(size: int, kernel: int, stride: int, pad: int, round_mode: str = "CEIL") -> int:
    """Caffe's PoolingLayer::Reshape: round_mode CEIL (every Caffe's default) rounds up,
    FLOOR (BVLC master, and ONNX's ceil_mode=0) rounds down as a convolution does."""
    if round_mode == "FLOOR":
        return (size + 2 * pad - kernel) // stride + 1  # never starts in the padding (pad < k)
    out = -((size + 2 * pad - kernel) // -stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1  # the last window would start inside the padding: Caffe clips it
    return out


def rounding_matters(p: ir.PoolingParam, size: tuple[int, int]) -> bool:
    """Whether FLOOR and CEIL give different output sizes for this pooling on `size` (H, W)."""
    if p.global_pooling:
        return False
    return any(pool_out(n, k, s, pad, "FLOOR") != pool_out(n, k, s, pad, "CEIL")
               for n, k, s, pad in zip(size, p.kernel, p.stride, p.pad))


def _fail(layer: ir.Layer, message: str) -> NetgenError:
    return NetgenError(f"layer {layer.name!r} ({layer.type}): {message}")


def _spatial(layer: ir.Layer, shape: Shape) -> tuple[int, int, int, int]:
    if len(shape) != 4:
        raise _fail(layer, f"needs a 4-D NCHW input, got shape {list(shape)}")
    return shape  # type: ignore[return-value]


def _checked_conv(layer, shape: Shape) -> tuple[int, int, int, int]:
    """The input's N, C, H, W once a convolution_param (Convolution's or Deconvolution's)
    is one Caffe accepts on it."""
    p: ir.ConvolutionParam = layer.param
    n, c, h, w = _spatial(layer, shape)
    if p.num_output <= 0 or p.group <= 0:
        raise _fail(layer, f"num_output and group must be positive, got {p.num_output}, {p.group}")
    if c % p.group or p.num_output % p.group:
        raise _fail(layer, f"group {p.group} must divide input channels {c} and "
                    f"num_output {p.num_output}")
    for what, pair, low in (("kernel", p.kernel, 1), ("stride", p.stride, 1),
                            ("pad", p.pad, 0), ("dilation", p.dilation, 1)):
        if min(pair) < low:
            raise _fail(layer, f"{what} must be >= {low}, got {list(pair)}")
    return n, c, h, w


def _convolution(layer, shapes):
    p: ir.ConvolutionParam = layer.param
    n, c, h, w = _checked_conv(layer, shapes[0])
    oh = conv_out(h, p.kernel[0], p.stride[0], p.pad[0], p.dilation[0])
    ow = conv_out(w, p.kernel[1], p.stride[1], p.pad[1], p.dilation[1])
    blobs = [(p.num_output, c // p.group, p.kernel[0], p.kernel[1])]
    if p.bias_term:
        blobs.append((p.num_output,))
    return [(n, p.num_output, oh, ow)], blobs


def _deconvolution(layer, shapes):
    """Caffe's DeconvolutionLayer::compute_output_shape: stride * (in - 1) + extent - 2 pad;
    its weight is (input channels, num_output / group, kh, kw), a convolution's transposed."""
    p: ir.ConvolutionParam = layer.param
    n, c, h, w = _checked_conv(layer, shapes[0])
    oh, ow = (s * (size - 1) + d * (k - 1) + 1 - 2 * pad for size, k, s, pad, d in
              zip((h, w), p.kernel, p.stride, p.pad, p.dilation))
    blobs = [(c, p.num_output // p.group, p.kernel[0], p.kernel[1])]
    if p.bias_term:
        blobs.append((p.num_output,))
    return [(n, p.num_output, oh, ow)], blobs


def _pooling(layer, shapes):
    p: ir.PoolingParam = layer.param
    n, c, h, w = _spatial(layer, shapes[0])
    if p.pool not in ("MAX", "AVE"):
        raise _fail(layer, f"pool must be MAX or AVE, got {p.pool}")
    if p.round_mode not in ROUND_MODES:
        raise _fail(layer, f"round_mode must be CEIL or FLOOR, got {p.round_mode}")
    if p.global_pooling:
        return [(n, c, 1, 1)], []
    for what, pair, low in (("kernel", p.kernel, 1), ("stride", p.stride, 1), ("pad", p.pad, 0)):
        if min(pair) < low:
            raise _fail(layer, f"{what} must be >= {low}, got {list(pair)}")
    if p.pad[0] >= p.kernel[0] or p.pad[1] >= p.kernel[1]:
        raise _fail(layer, f"pad {list(p.pad)} must be smaller than kernel {list(p.kernel)}")
    oh = pool_out(h, p.kernel[0], p.stride[0], p.pad[0], p.round_mode)
    ow = pool_out(w, p.kernel[1], p.stride[1], p.pad[1], p.round_mode)
    return [(n, c, oh, ow)], []


def _channels(layer, shape: Shape, axis: int = 1) -> int:
    if len(shape) <= axis:
        raise _fail(layer, f"needs a channel axis {axis}, got shape {list(shape)}")
    return shape[axis]


def _batch_norm(layer, shapes):
    c = _channels(layer, shapes[0])
    return [shapes[0]], [(c,), (c,), (1,)]


def _learned_shape(layer, shapes, form: str, axis: int, num_axes: int) -> Shape:
    """Scale's and Bias's one-bottom form: a parameter over axes [axis, axis + num_axes)."""
    if len(shapes) != 1:
        raise _fail(layer, f"only the one-bottom form (learned {form}) is supported")
    shape = shapes[0]
    start = axis % len(shape) if shape else 0
    end = len(shape) if num_axes == -1 else start + num_axes
    return tuple(shape[start:end])


def _scale(layer, shapes):
    p: ir.ScaleParam = layer.param
    if len(shapes) == 2:
        return _scale_by_blob(layer, shapes)
    param_shape = _learned_shape(layer, shapes, "scale", p.axis, p.num_axes)
    return [shapes[0]], [param_shape] + ([param_shape] if p.bias_term else [])


def _scale_by_blob(layer, shapes):
    """Caffe's two-bottom Scale: bottom[1] multiplies bottom[0] over the axes from `axis`
    its shape covers, which must equal them (an SE gate flattened to N x C, axis 0)."""
    p: ir.ScaleParam = layer.param
    shape, factor = shapes
    if p.bias_term:
        raise _fail(layer, "the two-bottom form is read without a bias (bias_term: false)")
    axis = p.axis % len(shape) if shape else 0
    if tuple(shape[axis:axis + len(factor)]) != tuple(factor) or axis + len(factor) > len(shape):
        raise _fail(layer, f"bottom[1] of shape {list(factor)} must equal bottom[0]'s shape "
                    f"from axis {p.axis} on ({list(shape[axis:axis + len(factor)])} of "
                    f"{list(shape)})")
    return [shape], []


def _axpy(layer, shapes):
    """SENet's Axpy(a, x, y) = a * x + y, a of N x C x 1 x 1, x and y of equal shapes."""
    if len(shapes) != 3:
        raise _fail(layer, f"needs three bottoms (a, x, y), got {len(shapes)}")
    a, x, y = shapes
    if len(x) != 4 or x != y:
        raise _fail(layer, f"x and y must be equal 4-D shapes, got {list(x)} and {list(y)}")
    if tuple(a) != (x[0], x[1], 1, 1):
        raise _fail(layer, f"a must have shape {[x[0], x[1], 1, 1]} (one factor per channel), "
                    f"got {list(a)}")
    return [x], []


def _bias(layer, shapes):
    p: ir.BiasParam = layer.param
    return [shapes[0]], [_learned_shape(layer, shapes, "bias", p.axis, p.num_axes)]


def _same(layer, shapes):
    return [shapes[0]], []


def _prelu(layer, shapes):
    p: ir.PReLUParam = layer.param
    return [shapes[0]], [(1,) if p.channel_shared else (_channels(layer, shapes[0]),)]


def _eltwise(layer, shapes):
    p: ir.EltwiseParam = layer.param
    if len(shapes) < 2:
        raise _fail(layer, "needs at least two bottoms")
    if any(s != shapes[0] for s in shapes):
        raise _fail(layer, "bottoms must have equal shapes, got "
                    + ", ".join(str(list(s)) for s in shapes))
    if p.coeff and (len(p.coeff) != len(shapes) or p.operation != "SUM"):
        raise _fail(layer, "coeff needs operation SUM and one value per bottom")
    return [shapes[0]], []


def _inner_product(layer, shapes):
    p: ir.InnerProductParam = layer.param
    shape = shapes[0]
    axis = p.axis % len(shape)
    if p.num_output <= 0:
        raise _fail(layer, f"num_output must be positive, got {p.num_output}")
    k = math.prod(shape[axis:])
    weight = (k, p.num_output) if p.transpose else (p.num_output, k)
    blobs = [weight] + ([(p.num_output,)] if p.bias_term else [])
    return [tuple(shape[:axis]) + (p.num_output,)], blobs


def _concat(layer, shapes):
    p: ir.ConcatParam = layer.param
    axis = p.axis % len(shapes[0])
    for s in shapes:
        if len(s) != len(shapes[0]) or s[:axis] + s[axis + 1:] != shapes[0][:axis] + shapes[0][axis + 1:]:
            raise _fail(layer, "bottoms must agree on every axis but the concat axis, got "
                        + ", ".join(str(list(s)) for s in shapes))
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return [tuple(out)], []


def _flatten(layer, shapes):
    p: ir.FlattenParam = layer.param
    shape = shapes[0]
    start, end = p.axis % len(shape), p.end_axis % len(shape)
    if end < start:
        raise _fail(layer, f"end_axis {p.end_axis} is before axis {p.axis}")
    return [shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]], []


def _reshape(layer, shapes):
    p: ir.ReshapeParam = layer.param
    shape = shapes[0]
    start = p.axis % (len(shape) + 1) if p.axis < 0 else p.axis
    end = len(shape) if p.num_axes == -1 else start + p.num_axes
    if end > len(shape):
        raise _fail(layer, f"axis/num_axes reach past the input's {len(shape)} axes")
    middle: list[int] = []
    infer_at = None
    for i, dim in enumerate(p.shape):
        if dim == 0:
            if start + i >= len(shape):
                raise _fail(layer, f"dim 0 at position {i} copies an axis the input lacks")
            middle.append(shape[start + i])
        elif dim == -1:
            if infer_at is not None:
                raise _fail(layer, "at most one -1 in the shape")
            infer_at = i
            middle.append(1)
        elif dim < -1:
            raise _fail(layer, f"shape dims must be >= -1, got {dim}")
        else:
            middle.append(dim)
    total = math.prod(shape[start:end])
    if infer_at is not None:
        known = math.prod(middle)
        if known == 0 or total % known:
            raise _fail(layer, f"cannot infer -1: {total} elements into {list(p.shape)}")
        middle[infer_at] = total // known
    if math.prod(middle) != total:
        raise _fail(layer, f"shape {list(p.shape)} does not hold {total} elements")
    return [tuple(shape[:start]) + tuple(middle) + tuple(shape[end:])], []


def _slice(layer, shapes):
    p: ir.SliceParam = layer.param
    shape = shapes[0]
    axis = p.axis % len(shape)
    size = shape[axis]
    count = len(layer.tops)
    if p.slice_point:
        if len(p.slice_point) != count - 1:
            raise _fail(layer, f"{len(p.slice_point)} slice points need {len(p.slice_point) + 1}"
                        f" tops, got {count}")
        points = [0, *p.slice_point, size]
        if any(b <= a for a, b in zip(points, points[1:])):
            raise _fail(layer, f"slice points {list(p.slice_point)} must increase within (0, {size})")
    else:
        if size % count:
            raise _fail(layer, f"axis size {size} does not split evenly into {count} tops")
        points = [i * size // count for i in range(count + 1)]
    outs = []
    for a, b in zip(points, points[1:]):
        out = list(shape)
        out[axis] = b - a
        outs.append(tuple(out))
    return outs, []


def _mvn(layer, shapes):
    """BVLC's MVN reads num(), channels(), height(), width(): a legacy blob of at most 4 axes
    (its top is reshaped to 4 axes), so netgen gives it exactly 4."""
    if len(shapes[0]) != 4:
        raise _fail(layer, f"input of shape {list(shapes[0])}: Caffe's MVN takes a 4-D blob")
    return [shapes[0]], []


def _split(layer, shapes):
    return [shapes[0]] * len(layer.tops), []


RULES: dict[str, Callable] = {
    "Convolution": _convolution,
    "Deconvolution": _deconvolution,
    "Pooling": _pooling,
    "BatchNorm": _batch_norm,
    "Scale": _scale,
    "Bias": _bias,
    "ReLU": _same,
    "Dropout": _same,
    "Power": _same,
    "MVN": _mvn,
    "Softmax": _same,
    "PReLU": _prelu,
    "Eltwise": _eltwise,
    "InnerProduct": _inner_product,
    "Concat": _concat,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Slice": _slice,
    "Split": _split,
    "Sigmoid": _same,
    "Axpy": _axpy,
}


def infer(name: str, inputs: list[ir.Blob] | tuple[ir.Blob, ...], layers: list[ir.Layer],
          max_activation_elements: int | None = None,
          max_parameter_elements: int | None = None) -> ir.Graph:
    """Fill top_shapes and blob_shapes of every layer, checking Caffe's wiring rules.

    The limits default to the module's MAX_ACTIVATION_ELEMENTS and MAX_PARAMETER_ELEMENTS,
    read at call time.
    """
    if max_activation_elements is None:
        max_activation_elements = MAX_ACTIVATION_ELEMENTS
    if max_parameter_elements is None:
        max_parameter_elements = MAX_PARAMETER_ELEMENTS
    parameters = 0
    current: dict[str, Shape] = {}
    for blob in inputs:
        if any(d <= 0 for d in blob.shape):
            raise NetgenError(f"input {blob.name!r} has a non-positive dimension: {list(blob.shape)}")
        current[blob.name] = tuple(blob.shape)
    seen_names: set[str] = set()
    activations = sum(math.prod(s) for s in current.values())
    out: list[ir.Layer] = []
    for layer in layers:
        if layer.name in seen_names:
            raise _fail(layer, "a layer of this name already exists")
        seen_names.add(layer.name)
        rule = RULES.get(layer.type)
        if rule is None:
            raise _fail(layer, f"unsupported layer type; supported: {', '.join(sorted(RULES))}")
        if not layer.bottoms:
            raise _fail(layer, "has no bottom")
        if not layer.tops:
            raise _fail(layer, "has no top")
        missing = [b for b in layer.bottoms if b not in current]
        if missing:
            raise _fail(layer, f"bottom {missing[0]!r} is produced by no earlier layer or input")
        for top in layer.tops:
            if top in current and top not in layer.bottoms:
                raise _fail(layer, f"top {top!r} is already produced by an earlier layer "
                            "(only in-place reuse of a bottom is allowed)")
        if len(set(layer.tops)) != len(layer.tops):
            raise _fail(layer, "lists the same top twice")
        tops, blobs = rule(layer, [current[b] for b in layer.bottoms])
        if len(tops) != len(layer.tops):
            raise _fail(layer, f"produces {len(tops)} top(s), the file names {len(layer.tops)}")
        for shape in tops:
            if any(d <= 0 for d in shape):
                raise _fail(layer, f"output shape {list(shape)} has an empty dimension "
                            "(the input is too small for this kernel/stride)")
        for top, shape in zip(layer.tops, tops):
            if top not in layer.bottoms:
                activations += math.prod(shape)
            current[top] = tuple(shape)
        if activations > max_activation_elements:
            raise NetgenError(
                f"the activations would need more than {max_activation_elements:,} float32 "
                f"elements ({activations * 4 / 2**30:.1f} GiB) by layer {layer.name!r}; "
                "use a smaller input, batch or network")
        parameters += sum(math.prod(b) for b in blobs)
        if parameters > max_parameter_elements:
            raise NetgenError(
                f"the weights would need more than {max_parameter_elements:,} float32 "
                f"elements ({parameters * 4 / 2**30:.1f} GiB) by layer {layer.name!r}; "
                "use fewer or narrower layers")
        out.append(replace(layer, top_shapes=tuple(tuple(s) for s in tops),
                           blob_shapes=tuple(tuple(b) for b in blobs)))
    return ir.Graph(name=name, inputs=tuple(inputs), layers=tuple(out))

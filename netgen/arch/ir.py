"""The graph IR every emitter and reader shares.

The IR speaks Caffe's layer semantics (in-place tops, BatchNorm followed by Scale, Caffe's
pooling rounding) because those are the semantics of the files our users already hold; the
ONNX emitter translates them. A graph is a plain ordered list of layers, like a deploy
prototxt, so that walks over it are loops, never recursion.

Layer parameters are small frozen dataclasses, one per Caffe layer type, holding Caffe's own
field names and defaults. Spatial fields are (h, w) pairs so that non-square spellings
(kernel_h/kernel_w, pad_h/pad_w, stride_h/stride_w) survive a round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Union

Pair = tuple[int, int]
Shape = tuple[int, ...]


@dataclass(frozen=True)
class ConvolutionParam:
    num_output: int
    kernel: Pair
    stride: Pair = (1, 1)
    pad: Pair = (0, 0)
    dilation: Pair = (1, 1)
    group: int = 1
    bias_term: bool = True  # Caffe's default; the paper's nets set it false explicitly


@dataclass(frozen=True)
class PoolingParam:
    pool: str  # "MAX" or "AVE"
    kernel: Pair = (1, 1)
    stride: Pair = (1, 1)
    pad: Pair = (0, 0)
    global_pooling: bool = False
    # Caffe's PoolingParameter.round_mode: "CEIL" (every Caffe, and the paper's nets) or
    # "FLOOR" (PyTorch's and ONNX's ceil_mode=0). Readers set FLOOR only where it changes the
    # output size, so one computation has one IR whichever way a file spells it.
    round_mode: str = "CEIL"


@dataclass(frozen=True)
class BatchNormParam:
    use_global_stats: bool | None = None  # None: Caffe decides by phase (TEST -> True)
    eps: float = 1e-5
    moving_average_fraction: float = 0.999


@dataclass(frozen=True)
class ScaleParam:
    bias_term: bool = False  # Caffe's default; the paper's nets set it true explicitly
    axis: int = 1
    num_axes: int = 1


@dataclass(frozen=True)
class BiasParam:
    axis: int = 1
    num_axes: int = 1


@dataclass(frozen=True)
class ReLUParam:
    negative_slope: float = 0.0


@dataclass(frozen=True)
class PReLUParam:
    channel_shared: bool = False


@dataclass(frozen=True)
class EltwiseParam:
    operation: str = "SUM"  # "PROD", "SUM" or "MAX"
    coeff: tuple[float, ...] = ()


@dataclass(frozen=True)
class InnerProductParam:
    num_output: int
    bias_term: bool = True
    axis: int = 1
    transpose: bool = False


@dataclass(frozen=True)
class SoftmaxParam:
    axis: int = 1


@dataclass(frozen=True)
class ConcatParam:
    axis: int = 1


@dataclass(frozen=True)
class PowerParam:
    power: float = 1.0
    scale: float = 1.0
    shift: float = 0.0


@dataclass(frozen=True)
class MVNParam:
    """Caffe's MVN: x - mean over each (n, c) (over each n with across_channels); with
    normalize_variance, divided by sqrt(var) + eps, which is not sqrt(var + eps): netgen
    writes a GroupNorm's variance with Pooling and Power instead (netgen.onnx.normalize.
    groupnorm) and uses MVN for the mean only."""

    normalize_variance: bool = True
    across_channels: bool = False
    eps: float = 1e-9


@dataclass(frozen=True)
class DropoutParam:
    dropout_ratio: float = 0.5


@dataclass(frozen=True)
class FlattenParam:
    axis: int = 1
    end_axis: int = -1


@dataclass(frozen=True)
class ReshapeParam:
    shape: tuple[int, ...]
    axis: int = 0
    num_axes: int = -1


@dataclass(frozen=True)
class SliceParam:
    axis: int = 1
    slice_point: tuple[int, ...] = ()


@dataclass(frozen=True)
class NoParam:
    """For layer types without parameters (Split, Sigmoid, Axpy).

    Axpy is the layer of SENet's Caffe fork: bottoms (a, x, y), a of shape N x C x 1 x 1,
    x and y N x C x H x W; top = a * x + y, the channel gate of a squeeze-and-excitation
    unit applied to the branch x and added to the shortcut y. It is the IR's one form of
    that product and sum, however a file spells it; netgen writes it in stock Caffe layers
    (netgen.caffe.prototxt) or as Axpy where asked."""


LayerParam = Union[
    ConvolutionParam, PoolingParam, BatchNormParam, ScaleParam, BiasParam, ReLUParam,
    PReLUParam, EltwiseParam, InnerProductParam, SoftmaxParam, ConcatParam, PowerParam,
    MVNParam, DropoutParam, FlattenParam, ReshapeParam, SliceParam, NoParam,
]

# Caffe layer type -> its parameter dataclass. Readers and emitters dispatch on this table.
PARAM_TYPES: dict[str, type] = {
    "Convolution": ConvolutionParam,
    # Caffe's Deconvolution (a transposed convolution) reads convolution_param too. netgen
    # writes it only as a fixed broadcast (netgen.caffe.targets: MNN's SE form).
    "Deconvolution": ConvolutionParam,
    "Pooling": PoolingParam,
    "BatchNorm": BatchNormParam,
    "Scale": ScaleParam,
    "Bias": BiasParam,
    "ReLU": ReLUParam,
    "PReLU": PReLUParam,
    "Eltwise": EltwiseParam,
    "InnerProduct": InnerProductParam,
    "Softmax": SoftmaxParam,
    "Concat": ConcatParam,
    "Power": PowerParam,
    "MVN": MVNParam,
    "Dropout": DropoutParam,
    "Flatten": FlattenParam,
    "Reshape": ReshapeParam,
    "Slice": SliceParam,
    "Split": NoParam,
    "Sigmoid": NoParam,
    "Axpy": NoParam,
}


@dataclass(frozen=True)
class Layer:
    """One Caffe layer.

    `top_shapes` and `blob_shapes` are filled by shape inference (netgen.arch.shapes), never by
    hand, so a builder or reader cannot state a shape that contradicts the parameters.
    `fixed` marks layers whose blobs are constants of a realization (option A's stride-2
    subsample), not learned parameters: they count toward neither parameters nor
    multiply-adds, and train_val freezes them.
    `stage` groups layers for per-stage summaries ("conv1", "conv2_x", ..., "head").
    """

    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    param: LayerParam = field(default_factory=NoParam)
    stage: str = ""
    fixed: bool = False
    top_shapes: tuple[Shape, ...] = ()
    blob_shapes: tuple[Shape, ...] = ()

    @property
    def in_place(self) -> bool:
        return len(self.bottoms) == 1 and self.tops == self.bottoms


@dataclass(frozen=True)
class Blob:
    name: str
    shape: Shape


@dataclass(frozen=True)
class Graph:
    """A deploy network: named inputs (NCHW, batch first) and layers in execution order."""

    name: str
    inputs: tuple[Blob, ...]
    layers: tuple[Layer, ...]

    def layer(self, name: str) -> Layer:
        for candidate in self.layers:
            if candidate.name == name:
                return candidate
        raise KeyError(name)

    @property
    def outputs(self) -> tuple[str, ...]:
        """Blobs that no later layer consumes, in order of production (Caffe's net outputs)."""
        pending: dict[str, None] = {}
        for layer in self.layers:
            for bottom in layer.bottoms:
                pending.pop(bottom, None)
            for top in layer.tops:
                pending[top] = None
        return tuple(pending)

    def with_layers(self, layers: list[Layer] | tuple[Layer, ...]) -> "Graph":
        return replace(self, layers=tuple(layers))


def bottom_uses(layers: Iterable[Layer]) -> dict[str, int]:
    """How many times each blob is read as a bottom: a fold may swallow a blob only where
    nothing outside the folded layers reads it."""
    uses: dict[str, int] = {}
    for layer in layers:
        for bottom in layer.bottoms:
            uses[bottom] = uses.get(bottom, 0) + 1
    return uses

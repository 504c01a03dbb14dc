"""Prototxt emitter: the graph IR through jinja2 templates, then parsed back with protobuf.

Templates keep the text in Caffe's own field names and layout; the parse-back against
netgen's caffe.proto makes a template slip a loud bug instead of a file Caffe rejects later.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
from dataclasses import dataclass, field, replace

import jinja2

from netgen.arch import ir
from netgen.arch.shapes import pool_out
from netgen.arch.spec import ArchSpec
from netgen.caffe import proto as caffe_proto
from netgen.errors import NetgenError

FAMILIES = {
    "Convolution": "conv", "Deconvolution": "conv",
    "BatchNorm": "norm", "Scale": "norm", "Bias": "norm", "MVN": "norm",
    "Pooling": "pool",
    "InnerProduct": "fc",
    "ReLU": "activation", "PReLU": "activation", "Power": "activation", "Sigmoid": "activation",
    "Dropout": "activation", "Softmax": "activation",
    "Eltwise": "merge", "Concat": "merge", "Slice": "merge", "Split": "merge",
    "Flatten": "merge", "Reshape": "merge", "Axpy": "merge",
    "Crop": "crop",
}
DATA_KINDS = ("lmdb", "imagedata", "hdf5", "dummy")


def quote(text: str) -> str:
    """A protobuf text-format string literal."""
    escaped = []
    for ch in text:
        if ch in ('"', "\\"):
            escaped.append("\\" + ch)
        elif ch == "\n":
            escaped.append("\\n")
        elif ord(ch) < 32 or ord(ch) == 127:
            escaped.append(f"\\{ord(ch):03o}")
        else:
            escaped.append(ch)
    return '"' + "".join(escaped) + '"'


def value(item: object) -> str:
    """Scalars as Caffe users write them: true/false, 0.1, 1e-05, 0 (not 0.0)."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, float):
        if not math.isfinite(item):
            raise NetgenError(f"cannot write the non-finite number {item} to a prototxt")
        return format(item, ".9g")
    return str(item)


def family(layer_type: str) -> str:
    try:
        return FAMILIES[layer_type]
    except KeyError:
        raise NetgenError(f"no prototxt template for layer type {layer_type!r}") from None


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    """Built once per process: jinja2 compiles each template on first use and keeps it."""
    folder = importlib.resources.files("netgen.templates")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(q=quote, v=value, family=family)
    return env


def _render(template: str, **context: object) -> str:
    return _environment().get_template(template).render(**context)


def _checked(text: str, source: str) -> str:
    caffe_proto.parse_net(text, source)
    return text


# How a floor-rounded pooling (PyTorch's, ONNX's ceil_mode=0) is written. Caffe's Pooling
# rounds up; BVLC master added `round_mode: FLOOR` (PoolingParameter field 13), but OpenCV's
# Caffe importer spends field 13 on a bool `ceil_mode` and refuses `round_mode`. "crop" (the
# default) uses only layers both know: the Pooling rounding up, then a Crop of its top to the
# floor size. The windows start at -pad + i * stride either way, so the floor outputs are
# exactly the first ones of the rounded-up pooling and the Crop (offset 0) keeps those. Its
# reference blob of the floor size is a kernel-2 (or 1, on an axis that needs no crop)
# stride-1 Pooling of the rounded-up top: one less on each cropped axis, no parameters.
# "round-mode" writes the single BVLC-master layer.
FLOOR_POOL_FORMS = ("crop", "round-mode")


@dataclass(frozen=True)
class CropParam:
    """Caffe's CropParameter, for the crop form of a floor pooling only (not an IR layer)."""

    axis: int = 2
    offset: tuple[int, ...] = (0,)


def check_floor_pool_form(form: str) -> None:
    if form not in FLOOR_POOL_FORMS:
        raise NetgenError(f"unknown floor-pooling form {form!r}; allowed: "
                          + ", ".join(FLOOR_POOL_FORMS))


def _fresh(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def realize_floor_pools(graph: ir.Graph, layers: list[ir.Layer] | tuple[ir.Layer, ...],
                        form: str = "crop") -> list[ir.Layer]:
    """`layers` with each round_mode FLOOR Pooling written in `form` (see FLOOR_POOL_FORMS)."""
    check_floor_pool_form(form)
    if form == "round-mode" or not any(
            layer.type == "Pooling" and layer.param.round_mode == "FLOOR" for layer in layers):
        return list(layers)
    shapes = {blob.name: blob.shape for blob in graph.inputs}
    taken = {blob.name for blob in graph.inputs}
    for layer in graph.layers:
        taken.add(layer.name)
        taken.update(layer.tops)
    wanted = {layer.name for layer in layers}
    out: list[ir.Layer] = []
    for layer in graph.layers:
        bottom_shapes = [shapes[b] for b in layer.bottoms]
        for top, shape in zip(layer.tops, layer.top_shapes):
            shapes[top] = shape
        if layer.name not in wanted:
            continue
        p = layer.param
        if layer.type != "Pooling" or p.round_mode != "FLOOR":
            out.append(layer)
            continue
        ceil = replace(p, round_mode="CEIL")
        size = bottom_shapes[0][2:]
        ref_kernel = tuple(1 + pool_out(n, k, s_, pad) - pool_out(n, k, s_, pad, "FLOOR")
                           for n, k, s_, pad in zip(size, p.kernel, p.stride, p.pad))
        rounded = _fresh(f"{layer.tops[0]}_ceil", taken)
        ref = _fresh(f"{layer.name}_floor_ref", taken)
        out.append(replace(layer, tops=(rounded,), param=ceil))
        out.append(ir.Layer(ref, "Pooling", (rounded,), (ref,),
                            ir.PoolingParam(p.pool, kernel=ref_kernel), stage=layer.stage))
        out.append(ir.Layer(_fresh(f"{layer.name}_floor_crop", taken), "Crop", (rounded, ref),
                            layer.tops, CropParam(), stage=layer.stage))  # type: ignore[arg-type]
    return out


# How an SE unit's product and sum (the IR's Axpy: a * x + y, a of N x C x 1 x 1) is written.
# "stock" (the default) uses layers every Caffe and OpenCV know: Flatten makes the gate N x C,
# a two-bottom Scale with axis 0 multiplies x by it (stock Scale needs bottom[1]'s shape to
# equal bottom[0]'s from `axis` on, so the N x C x 1 x 1 gate cannot be used as it is), and
# Eltwise SUM adds the shortcut. "axpy" writes the single Axpy layer of SENet's Caffe fork.
SE_FORMS = ("stock", "axpy")


def check_se_form(form: str) -> None:
    if form not in SE_FORMS:
        raise NetgenError(f"unknown SE form {form!r}; allowed: " + ", ".join(SE_FORMS)
                          + " (stock Caffe layers, or SENet's Axpy layer)")


def realize_axpy(graph: ir.Graph, layers: list[ir.Layer], form: str = "stock") -> list[ir.Layer]:
    """`layers` with each Axpy written in `form` (see SE_FORMS): in the stock form,
    Flatten `<name>_se_flat`, Scale `<name>_se_scale` (axis 0) and Eltwise `<name>` SUM of
    (y, the product), writing the Axpy's top."""
    check_se_form(form)
    if form == "axpy" or not any(layer.type == "Axpy" for layer in layers):
        return list(layers)
    taken = {blob.name for blob in graph.inputs}
    for layer in (*graph.layers, *layers):
        taken.add(layer.name)
        taken.update(layer.tops)
    out: list[ir.Layer] = []
    for layer in layers:
        if layer.type != "Axpy":
            out.append(layer)
            continue
        gate, x, y = layer.bottoms
        flat = _fresh(f"{layer.name}_se_flat", taken)
        scaled = _fresh(f"{layer.name}_se_scale", taken)
        out.append(ir.Layer(flat, "Flatten", (gate,), (flat,), ir.FlattenParam(),
                            stage=layer.stage))
        out.append(ir.Layer(scaled, "Scale", (x, flat), (scaled,), ir.ScaleParam(axis=0),
                            stage=layer.stage))
        out.append(ir.Layer(layer.name, "Eltwise", (y, scaled), layer.tops,
                            ir.EltwiseParam("SUM"), stage=layer.stage))
    return out


def render_deploy(graph: ir.Graph, legacy_input: bool = True, floor_pool: str = "crop",
                  se_form: str = "stock") -> str:
    """The deploy net. legacy_input writes `input:`/`input_dim:` as the MSRA files do;
    floor_pool is how a floor-rounded pooling is written (FLOOR_POOL_FORMS), se_form an SE
    unit's product and sum (SE_FORMS)."""
    shown = graph.with_layers(realize_axpy(
        graph, realize_floor_pools(graph, graph.layers, floor_pool), se_form))
    text = _render("deploy.prototxt.j2", graph=shown, legacy_input=legacy_input, phase=None,
                   train=False)
    return _checked(text, f"{graph.name}/deploy.prototxt")


@dataclass(frozen=True)
class DataOptions:
    """The data layer of train_val.prototxt; defaults are Caffe's example paths."""

    kind: str
    source: dict[str, str]
    batch_size: dict[str, int]
    crop_size: int
    channels: int = 3
    mean_file: str | None = None
    mean_value: tuple[float, ...] = ()
    resize: int | None = None
    # An embedding net (IResNet) trains through a classifier the deploy net does not have:
    # InnerProduct over this many identities, then SoftmaxWithLoss. None: the deploy's logits.
    classifier: int | None = None
    scale: float | None = None  # transform_param scale (insightface's (x - 127.5) / 127.5)


def data_options(spec: ArchSpec, kind: str = "lmdb", train_source: str | None = None,
                 val_source: str | None = None, batch_size: int | None = None,
                 mean_file: str | None = None,
                 mean_value: tuple[float, ...] = ()) -> DataOptions:
    if kind not in DATA_KINDS:
        raise NetgenError(f"unknown data layer {kind!r}; allowed: {', '.join(DATA_KINDS)}")
    if mean_file and mean_value:
        raise NetgenError("give either --mean-file or --mean-value, not both")
    if batch_size is not None and batch_size <= 0:
        raise NetgenError(f"batch size must be a positive integer, got {batch_size}")
    if spec.iresnet:
        return face_data_options(spec, kind, train_source, val_source, batch_size, mean_file,
                                 mean_value)
    imagenet = spec.dataset == "imagenet"
    folder = "examples/imagenet/ilsvrc12" if imagenet else "examples/cifar10/cifar10"
    suffix = {"lmdb": "_lmdb", "imagedata": ".txt", "hdf5": "_h5.txt", "dummy": ""}[kind]
    defaults = {"TRAIN": f"{folder}_train{suffix}",
                "TEST": f"{folder}_{'val' if imagenet else 'test'}{suffix}"}
    if kind == "imagedata" and imagenet:
        defaults = {"TRAIN": "data/ilsvrc12/train.txt", "TEST": "data/ilsvrc12/val.txt"}
    source = {"TRAIN": train_source or defaults["TRAIN"], "TEST": val_source or defaults["TEST"]}
    train_batch = batch_size or (256 if imagenet else 128)
    if not mean_file and not mean_value and kind != "hdf5":
        # The paper subtracts the per-pixel mean; these are the files Caffe's tools write.
        mean_file = ("data/ilsvrc12/imagenet_mean.binaryproto" if imagenet
                     else "examples/cifar10/mean.binaryproto")
    return DataOptions(kind=kind, source=source,
                       batch_size={"TRAIN": train_batch, "TEST": 50 if imagenet else 100},
                       crop_size=spec.input_size, mean_file=mean_file,
                       mean_value=tuple(float(v) for v in mean_value),
                       resize=256 if (imagenet and kind == "imagedata") else None)


def render_train_val(graph: ir.Graph, data: DataOptions, se_form: str = "stock") -> str:
    """Deploy layers minus the final Softmax, with data, loss and top-1/top-5 accuracy; an
    embedding net (data.classifier) keeps its layers and gains the identity classifier."""
    layers = list(graph.layers)
    frozen: set[str] = set()
    if data.classifier is not None and layers:
        body, frozen = face_classifier(graph, data.classifier)
        logits = body[-1].tops[0]
    elif not layers or layers[-1].type != "Softmax":
        raise NetgenError("a train_val net needs a deploy net that ends in Softmax")
    else:
        body, logits = layers[:-1], layers[-1].bottoms[0]
    layers = realize_axpy(graph, realize_floor_pools(graph, body), se_form)
    text = _render("train_val.prototxt.j2", graph=graph, layers=layers, logits=logits,
                   data=data, train=True, frozen_gamma=frozen)
    return _checked(text, f"{graph.name}/train_val.prototxt")


def face_data_options(spec: ArchSpec, kind: str, train_source: str | None,
                      val_source: str | None, batch_size: int | None, mean_file: str | None,
                      mean_value: tuple[float, ...]) -> DataOptions:
    """An IResNet's data layers: 112x112 aligned faces (MS1MV3 as insightface trains on),
    normalised as insightface does, (x - 127.5) / 127.5, with flips; the identity classifier
    over spec.num_classes."""
    folder = "examples/faces/ms1mv3"
    suffix = {"lmdb": "_lmdb", "imagedata": ".txt", "hdf5": "_h5.txt", "dummy": ""}[kind]
    source = {"TRAIN": train_source or f"{folder}_train{suffix}",
              "TEST": val_source or f"{folder}_val{suffix}"}
    if not mean_file and not mean_value and kind != "hdf5":
        mean_value = (127.5, 127.5, 127.5)
    return DataOptions(kind=kind, source=source,
                       batch_size={"TRAIN": batch_size or FACE_BATCH, "TEST": 50},
                       crop_size=spec.input_size, mean_file=mean_file,
                       mean_value=tuple(float(v) for v in mean_value),
                       classifier=spec.num_classes,
                       scale=None if kind == "hdf5" else 1 / 127.5)


def face_classifier(graph: ir.Graph, identities: int) -> tuple[list[ir.Layer], set[str]]:
    """The deploy layers and the plain classifier stock Caffe trains an embedding with:
    InnerProduct over the identities (`fc_identities`) reading the embedding; ArcFace's
    additive angular margin is no stock layer. Also the Scale whose gamma stays fixed (the
    embedding's BatchNorm1d weight, requires_grad False)."""
    embedding = graph.outputs[0]
    layers = list(graph.layers)
    fc = ir.Layer("fc_identities", "InnerProduct", (embedding,), ("fc_identities",),
                  ir.InnerProductParam(identities), stage="head")
    frozen = {layer.name for layer in layers
              if layer.type == "Scale" and layer.tops[0] == embedding}
    return layers + [fc], frozen


# insightface's arcface_torch: batch 128 per GPU on 8 GPUs, SGD lr 0.1, momentum 0.9, weight
# decay 5e-4, polynomial decay (power 2) over 20 epochs of MS1MV3's 5,179,510 images.
FACE_BATCH = 128
FACE_EFFECTIVE_BATCH = 1024
FACE_IMAGES = 5_179_510
FACE_EPOCHS = 20


@dataclass(frozen=True)
class SolverOptions:
    net: str
    test_iter: int
    test_interval: int
    base_lr: float
    lr_policy: str
    max_iter: int
    snapshot: int
    snapshot_prefix: str
    stepsize: int = 0
    stepvalue: tuple[int, ...] = field(default_factory=tuple)
    display: int = 20
    iter_size: int = 1
    random_seed: int = 0
    weight_decay: float = 1e-4
    power: float = 0.0  # lr_policy "poly"


def face_solver(spec: ArchSpec, batch_size: int, seed: int = 0) -> SolverOptions:
    """arcface_torch's schedule in Caffe's words (FACE_*): poly decay of power 2 to zero."""
    iters = -(-FACE_IMAGES * FACE_EPOCHS // FACE_EFFECTIVE_BATCH)
    return SolverOptions(
        net="train_val.prototxt", test_iter=100, test_interval=10_000, base_lr=0.1,
        lr_policy="poly", power=2.0, max_iter=iters, snapshot=10_000,
        snapshot_prefix=spec.name, iter_size=max(1, FACE_EFFECTIVE_BATCH // batch_size),
        random_seed=seed, weight_decay=5e-4)


# Warm-up of Section 4.2 for ResNet-110 and deeper: lr 0.01 until training error < 80%
# (about 400 iterations), then the normal schedule resumed from the warm-up's snapshot.
# It is for Section 4.2's thin nets (and the pre-activation paper's); the CIFAR-10 nets with
# ImageNet stages start at 0.1 as the PyTorch CIFAR code trains its ResNet101/152.
CIFAR_WARMUP_DEPTH = 110
CIFAR_WARMUP_ITERS = 400


def solver_options(spec: ArchSpec, batch_size: int, seed: int = 0) -> list[tuple[str, SolverOptions]]:
    """(file name, options) for solver.prototxt and, for deep CIFAR nets, solver_warmup.prototxt."""
    if spec.iresnet:
        return [("solver.prototxt", face_solver(spec, batch_size, seed))]
    if spec.dataset == "imagenet":
        return [("solver.prototxt", SolverOptions(
            net="train_val.prototxt", test_iter=50_000 // 50, test_interval=10_000,
            base_lr=0.1, lr_policy="step", stepsize=150_000, max_iter=600_000,
            snapshot=10_000, snapshot_prefix=spec.name,
            iter_size=max(1, 256 // batch_size), random_seed=seed))]
    main = SolverOptions(
        net="train_val.prototxt", test_iter=5_000 // 100, test_interval=1_000, base_lr=0.1,
        lr_policy="multistep", stepvalue=(32_000, 48_000), max_iter=64_000, snapshot=8_000,
        snapshot_prefix=spec.name, iter_size=max(1, 128 // batch_size),
        random_seed=seed)
    files = [("solver.prototxt", main)]
    if spec.depth >= CIFAR_WARMUP_DEPTH and not spec.imagenet_stages:
        warmup = SolverOptions(
            net="train_val.prototxt", test_iter=main.test_iter, test_interval=100,
            base_lr=0.01, lr_policy="fixed", max_iter=CIFAR_WARMUP_ITERS,
            snapshot=CIFAR_WARMUP_ITERS, snapshot_prefix=f"{spec.name}-warmup",
            iter_size=main.iter_size, random_seed=seed)
        files.insert(0, ("solver_warmup.prototxt", warmup))
    return files


def render_solver(options: SolverOptions, source: str = "solver.prototxt") -> str:
    text = _render("solver.prototxt.j2", solver=options)
    caffe_proto.parse_solver(text, source)
    return text

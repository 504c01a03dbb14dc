"""Caffe's protobuf messages without protoc: a subset of BVLC caffe.proto built at import time.

Why not ship generated ``caffe_pb2.py``: generated code is tied to the protobuf release
that produced it, and we have no protoc (and will not depend on grpcio-tools). Instead the
schema lives below as a small data table with BVLC Caffe's *upstream* field numbers, types,
labels and defaults (src/caffe/proto/caffe.proto, master). The numbers are what make our
binary ``.caffemodel`` files interchangeable with real Caffe's, so they must never be
renumbered; ``tests/test_caffe_proto.py`` pins the important ones against upstream.

The same table is rendered into ``caffe.proto`` source text (``proto_text()``, shipped as
``netgen/caffe/caffe.proto``) so that users with protoc can compile the exact schema we speak.

Descriptors go into a private ``DescriptorPool``: the default pool is process-global, and a
second ``caffe.proto`` there (pycaffe, onnx tooling, a user's own pb2) would clash.

Messages that are not in the table (for example an ``lrn_param``) survive a binary round
trip as unknown fields; in text format they are a parse error, as in real Caffe builds that
lack them.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message, text_format
from google.protobuf.internal import enum_type_wrapper

from netgen.errors import NetgenError, first_line

PACKAGE = "caffe"
FILE_NAME = "caffe.proto"

DefaultValue = Union[bool, int, float, str, None]


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Field:
    """One field: proto2 label, type (scalar name, message name, or enum name), default."""

    label: str  # "optional" or "repeated"
    type: str
    name: str
    number: int
    default: DefaultValue = None  # enum defaults are the value's name
    packed: bool = False


@dataclass(frozen=True)
class Message:
    name: str
    fields: tuple[Field, ...]
    enums: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()


def _opt(type_: str, name: str, number: int, default: DefaultValue = None) -> Field:
    return Field("optional", type_, name, number, default)


def _rep(type_: str, name: str, number: int, packed: bool = False) -> Field:
    return Field("repeated", type_, name, number, packed=packed)


def _enum(name: str, values: str) -> tuple[str, tuple[tuple[str, int], ...]]:
    """An enum whose values are numbered 0, 1, 2, ... in the order given (Caffe's usual)."""
    return name, tuple((v, i) for i, v in enumerate(values.split()))


_ENGINE = _enum("Engine", "DEFAULT CAFFE CUDNN")

# Top-level enums (only Phase upstream).
ENUMS: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = (_enum("Phase", "TRAIN TEST"),)

# Upstream field order within each message is kept where it matters to a reader of the
# rendered text; the wire format does not care.
MESSAGES: tuple[Message, ...] = (
    Message("BlobShape", (Field("repeated", "int64", "dim", 1, packed=True),)),
    Message("BlobProto", (
        _opt("BlobShape", "shape", 7),
        _rep("float", "data", 5, packed=True),
        _rep("float", "diff", 6, packed=True),
        _rep("double", "double_data", 8, packed=True),
        _rep("double", "double_diff", 9, packed=True),
        # 4-D dimensions, deprecated upstream in favour of `shape`.
        _opt("int32", "num", 1, 0),
        _opt("int32", "channels", 2, 0),
        _opt("int32", "height", 3, 0),
        _opt("int32", "width", 4, 0),
    )),
    Message("BlobProtoVector", (_rep("BlobProto", "blobs", 1),)),
    Message("FillerParameter", (
        _opt("string", "type", 1, "constant"),
        _opt("float", "value", 2, 0.0),
        _opt("float", "min", 3, 0.0),
        _opt("float", "max", 4, 1.0),
        _opt("float", "mean", 5, 0.0),
        _opt("float", "std", 6, 1.0),
        _opt("int32", "sparse", 7, -1),
        _opt("VarianceNorm", "variance_norm", 8, "FAN_IN"),
    ), (_enum("VarianceNorm", "FAN_IN FAN_OUT AVERAGE"),)),
    Message("NetParameter", (
        _opt("string", "name", 1),
        _rep("string", "input", 3),
        _rep("BlobShape", "input_shape", 8),
        _rep("int32", "input_dim", 4),
        _opt("bool", "force_backward", 5, False),
        _opt("NetState", "state", 6),
        _opt("bool", "debug_info", 7, False),
        _rep("LayerParameter", "layer", 100),
        _rep("V1LayerParameter", "layers", 2),
    )),
    Message("SolverParameter", (
        _opt("string", "net", 24),
        _opt("NetParameter", "net_param", 25),
        _opt("string", "train_net", 1),
        _rep("string", "test_net", 2),
        _opt("NetParameter", "train_net_param", 21),
        _rep("NetParameter", "test_net_param", 22),
        _opt("NetState", "train_state", 26),
        _rep("NetState", "test_state", 27),
        _rep("int32", "test_iter", 3),
        _opt("int32", "test_interval", 4, 0),
        _opt("bool", "test_compute_loss", 19, False),
        _opt("bool", "test_initialization", 32, True),
        _opt("float", "base_lr", 5),
        _opt("int32", "display", 6),
        _opt("int32", "average_loss", 33, 1),
        _opt("int32", "max_iter", 7),
        _opt("int32", "iter_size", 36, 1),
        _opt("string", "lr_policy", 8),
        _opt("float", "gamma", 9),
        _opt("float", "power", 10),
        _opt("float", "momentum", 11),
        _opt("float", "weight_decay", 12),
        _opt("string", "regularization_type", 29, "L2"),
        _opt("int32", "stepsize", 13),
        _rep("int32", "stepvalue", 34),
        _opt("float", "clip_gradients", 35, -1.0),
        _opt("int32", "snapshot", 14, 0),
        _opt("string", "snapshot_prefix", 15),
        _opt("bool", "snapshot_diff", 16, False),
        _opt("SnapshotFormat", "snapshot_format", 37, "BINARYPROTO"),
        _opt("SolverMode", "solver_mode", 17, "GPU"),
        _opt("int32", "device_id", 18, 0),
        _opt("int64", "random_seed", 20, -1),
        _opt("string", "type", 40, "SGD"),
        _opt("float", "delta", 31, 1e-8),
        _opt("float", "momentum2", 39, 0.999),
        _opt("float", "rms_decay", 38, 0.99),
        _opt("bool", "debug_info", 23, False),
        _opt("bool", "snapshot_after_train", 28, True),
        _opt("SolverType", "solver_type", 30, "SGD"),  # deprecated upstream: use `type`
        _opt("bool", "layer_wise_reduce", 41, True),
    ), (
        _enum("SnapshotFormat", "HDF5 BINARYPROTO"),
        _enum("SolverMode", "CPU GPU"),
        _enum("SolverType", "SGD NESTEROV ADAGRAD RMSPROP ADADELTA ADAM"),
    )),
    Message("SolverState", (
        _opt("int32", "iter", 1),
        _opt("string", "learned_net", 2),
        _rep("BlobProto", "history", 3),
        _opt("int32", "current_step", 4, 0),
    )),
    Message("NetState", (
        _opt("Phase", "phase", 1, "TEST"),
        _opt("int32", "level", 2, 0),
        _rep("string", "stage", 3),
    )),
    Message("NetStateRule", (
        _opt("Phase", "phase", 1),
        _opt("int32", "min_level", 2),
        _opt("int32", "max_level", 3),
        _rep("string", "stage", 4),
        _rep("string", "not_stage", 5),
    )),
    Message("ParamSpec", (
        _opt("string", "name", 1),
        _opt("DimCheckMode", "share_mode", 2),
        _opt("float", "lr_mult", 3, 1.0),
        _opt("float", "decay_mult", 4, 1.0),
    ), (_enum("DimCheckMode", "STRICT PERMISSIVE"),)),
    Message("LayerParameter", (
        _opt("string", "name", 1),
        _opt("string", "type", 2),
        _rep("string", "bottom", 3),
        _rep("string", "top", 4),
        _opt("Phase", "phase", 10),
        _rep("float", "loss_weight", 5),
        _rep("ParamSpec", "param", 6),
        _rep("BlobProto", "blobs", 7),
        _rep("bool", "propagate_down", 11),
        _rep("NetStateRule", "include", 8),
        _rep("NetStateRule", "exclude", 9),
        _opt("TransformationParameter", "transform_param", 100),
        _opt("LossParameter", "loss_param", 101),
        _opt("AccuracyParameter", "accuracy_param", 102),
        _opt("BatchNormParameter", "batch_norm_param", 139),
        _opt("BiasParameter", "bias_param", 141),
        _opt("ConcatParameter", "concat_param", 104),
        _opt("ConvolutionParameter", "convolution_param", 106),
        _opt("CropParameter", "crop_param", 144),
        _opt("DataParameter", "data_param", 107),
        _opt("DropoutParameter", "dropout_param", 108),
        _opt("DummyDataParameter", "dummy_data_param", 109),
        _opt("EltwiseParameter", "eltwise_param", 110),
        _opt("FlattenParameter", "flatten_param", 135),
        _opt("HDF5DataParameter", "hdf5_data_param", 112),
        _opt("ImageDataParameter", "image_data_param", 115),
        _opt("InnerProductParameter", "inner_product_param", 117),
        _opt("InputParameter", "input_param", 143),
        _opt("PoolingParameter", "pooling_param", 121),
        _opt("MVNParameter", "mvn_param", 120),
        _opt("PowerParameter", "power_param", 122),
        _opt("PReLUParameter", "prelu_param", 131),
        _opt("ReLUParameter", "relu_param", 123),
        _opt("ReshapeParameter", "reshape_param", 133),
        _opt("ScaleParameter", "scale_param", 142),
        _opt("SoftmaxParameter", "softmax_param", 125),
        _opt("SliceParameter", "slice_param", 126),
    )),
    Message("TransformationParameter", (
        _opt("float", "scale", 1, 1.0),
        _opt("bool", "mirror", 2, False),
        _opt("uint32", "crop_size", 3, 0),
        _opt("string", "mean_file", 4),
        _rep("float", "mean_value", 5),
        _opt("bool", "force_color", 6, False),
        _opt("bool", "force_gray", 7, False),
    )),
    Message("LossParameter", (
        _opt("int32", "ignore_label", 1),
        _opt("NormalizationMode", "normalization", 3, "VALID"),
        _opt("bool", "normalize", 2),  # deprecated upstream: use `normalization`
    ), (_enum("NormalizationMode", "FULL VALID BATCH_SIZE NONE"),)),
    Message("AccuracyParameter", (
        _opt("uint32", "top_k", 1, 1),
        _opt("int32", "axis", 2, 1),
        _opt("int32", "ignore_label", 3),
    )),
    Message("ConcatParameter", (
        _opt("int32", "axis", 2, 1),
        _opt("uint32", "concat_dim", 1, 1),  # deprecated alias of `axis`
    )),
    Message("CropParameter", (  # netgen's exact floor-rounded pooling (prototxt.py)
        _opt("int32", "axis", 1, 2),
        _rep("uint32", "offset", 2),
    )),
    Message("BatchNormParameter", (
        _opt("bool", "use_global_stats", 1),  # no default: Caffe uses (phase == TEST)
        _opt("float", "moving_average_fraction", 2, 0.999),
        _opt("float", "eps", 3, 1e-5),
    )),
    Message("BiasParameter", (
        _opt("int32", "axis", 1, 1),
        _opt("int32", "num_axes", 2, 1),
        _opt("FillerParameter", "filler", 3),
    )),
    Message("ConvolutionParameter", (
        _opt("uint32", "num_output", 1),
        _opt("bool", "bias_term", 2, True),
        _rep("uint32", "pad", 3),
        _rep("uint32", "kernel_size", 4),
        _rep("uint32", "stride", 6),
        _rep("uint32", "dilation", 18),
        _opt("uint32", "pad_h", 9, 0),
        _opt("uint32", "pad_w", 10, 0),
        _opt("uint32", "kernel_h", 11),
        _opt("uint32", "kernel_w", 12),
        _opt("uint32", "stride_h", 13),
        _opt("uint32", "stride_w", 14),
        _opt("uint32", "group", 5, 1),
        _opt("FillerParameter", "weight_filler", 7),
        _opt("FillerParameter", "bias_filler", 8),
        _opt("Engine", "engine", 15, "DEFAULT"),
        _opt("int32", "axis", 16, 1),
        _opt("bool", "force_nd_im2col", 17, False),
    ), (_ENGINE,)),
    Message("DataParameter", (
        _opt("string", "source", 1),
        _opt("uint32", "batch_size", 4),
        _opt("uint32", "rand_skip", 7, 0),
        _opt("DB", "backend", 8, "LEVELDB"),
        _opt("float", "scale", 2, 1.0),
        _opt("string", "mean_file", 3),
        _opt("uint32", "crop_size", 5, 0),
        _opt("bool", "mirror", 6, False),
        _opt("bool", "force_encoded_color", 9, False),
        _opt("uint32", "prefetch", 10, 4),
    ), (_enum("DB", "LEVELDB LMDB"),)),
    Message("DropoutParameter", (_opt("float", "dropout_ratio", 1, 0.5),)),
    Message("DummyDataParameter", (
        _rep("FillerParameter", "data_filler", 1),
        _rep("BlobShape", "shape", 6),
        _rep("uint32", "num", 2),
        _rep("uint32", "channels", 3),
        _rep("uint32", "height", 4),
        _rep("uint32", "width", 5),
    )),
    Message("EltwiseParameter", (
        _opt("EltwiseOp", "operation", 1, "SUM"),
        _rep("float", "coeff", 2),
        _opt("bool", "stable_prod_grad", 3, True),
    ), (_enum("EltwiseOp", "PROD SUM MAX"),)),
    Message("FlattenParameter", (
        _opt("int32", "axis", 1, 1),
        _opt("int32", "end_axis", 2, -1),
    )),
    Message("HDF5DataParameter", (
        _opt("string", "source", 1),
        _opt("uint32", "batch_size", 2),
        _opt("bool", "shuffle", 3, False),
    )),
    Message("ImageDataParameter", (
        _opt("string", "source", 1),
        _opt("uint32", "batch_size", 4, 1),
        _opt("uint32", "rand_skip", 7, 0),
        _opt("bool", "shuffle", 8, False),
        _opt("uint32", "new_height", 9, 0),
        _opt("uint32", "new_width", 10, 0),
        _opt("bool", "is_color", 11, True),
        _opt("float", "scale", 2, 1.0),
        _opt("string", "mean_file", 3),
        _opt("uint32", "crop_size", 5, 0),
        _opt("bool", "mirror", 6, False),
        _opt("string", "root_folder", 12, ""),
    )),
    Message("InnerProductParameter", (
        _opt("uint32", "num_output", 1),
        _opt("bool", "bias_term", 2, True),
        _opt("FillerParameter", "weight_filler", 3),
        _opt("FillerParameter", "bias_filler", 4),
        _opt("int32", "axis", 5, 1),
        _opt("bool", "transpose", 6, False),
    )),
    Message("InputParameter", (_rep("BlobShape", "shape", 1),)),
    Message("PoolingParameter", (
        _opt("PoolMethod", "pool", 1, "MAX"),
        _opt("uint32", "pad", 4, 0),
        _opt("uint32", "pad_h", 9, 0),
        _opt("uint32", "pad_w", 10, 0),
        _opt("uint32", "kernel_size", 2),
        _opt("uint32", "kernel_h", 5),
        _opt("uint32", "kernel_w", 6),
        _opt("uint32", "stride", 3, 1),
        _opt("uint32", "stride_h", 7),
        _opt("uint32", "stride_w", 8),
        _opt("Engine", "engine", 11, "DEFAULT"),
        _opt("bool", "global_pooling", 12, False),
        _opt("RoundMode", "round_mode", 13, "CEIL"),  # newer Caffe only (2018)
    ), (_enum("PoolMethod", "MAX AVE STOCHASTIC"), _ENGINE, _enum("RoundMode", "CEIL FLOOR"))),
    Message("MVNParameter", (
        _opt("bool", "normalize_variance", 1, True),
        _opt("bool", "across_channels", 2, False),
        _opt("float", "eps", 3, 1e-9),
    )),
    Message("PowerParameter", (
        _opt("float", "power", 1, 1.0),
        _opt("float", "scale", 2, 1.0),
        _opt("float", "shift", 3, 0.0),
    )),
    Message("PReLUParameter", (
        _opt("FillerParameter", "filler", 1),
        _opt("bool", "channel_shared", 2, False),
    )),
    Message("ReLUParameter", (
        _opt("float", "negative_slope", 1, 0.0),
        _opt("Engine", "engine", 2, "DEFAULT"),
    ), (_ENGINE,)),
    Message("ReshapeParameter", (
        _opt("BlobShape", "shape", 1),
        _opt("int32", "axis", 2, 0),
        _opt("int32", "num_axes", 3, -1),
    )),
    Message("ScaleParameter", (
        _opt("int32", "axis", 1, 1),
        _opt("int32", "num_axes", 2, 1),
        _opt("FillerParameter", "filler", 3),
        _opt("bool", "bias_term", 4, False),
        _opt("FillerParameter", "bias_filler", 5),
    )),
    Message("SliceParameter", (
        _opt("int32", "axis", 3, 1),
        _rep("uint32", "slice_point", 2),
        _opt("uint32", "slice_dim", 1, 1),  # deprecated alias of `axis`
    )),
    Message("SoftmaxParameter", (
        _opt("Engine", "engine", 1, "DEFAULT"),
        _opt("int32", "axis", 2, 1),
    ), (_ENGINE,)),
    # The pre-2015 layer message, still found in old .caffemodel files (NetParameter.layers).
    Message("V1LayerParameter", (
        _rep("string", "bottom", 2),
        _rep("string", "top", 3),
        _opt("string", "name", 4),
        _rep("NetStateRule", "include", 32),
        _rep("NetStateRule", "exclude", 33),
        _opt("LayerType", "type", 5),
        _rep("BlobProto", "blobs", 6),
        _rep("string", "param", 1001),
        _rep("DimCheckMode", "blob_share_mode", 1002),
        _rep("float", "blobs_lr", 7),
        _rep("float", "weight_decay", 8),
        _rep("float", "loss_weight", 35),
        _opt("AccuracyParameter", "accuracy_param", 27),
        _opt("ConcatParameter", "concat_param", 9),
        _opt("ConvolutionParameter", "convolution_param", 10),
        _opt("DataParameter", "data_param", 11),
        _opt("DropoutParameter", "dropout_param", 12),
        _opt("DummyDataParameter", "dummy_data_param", 26),
        _opt("EltwiseParameter", "eltwise_param", 24),
        _opt("HDF5DataParameter", "hdf5_data_param", 13),
        _opt("ImageDataParameter", "image_data_param", 15),
        _opt("InnerProductParameter", "inner_product_param", 17),
        _opt("PoolingParameter", "pooling_param", 19),
        _opt("PowerParameter", "power_param", 21),
        _opt("ReLUParameter", "relu_param", 30),
        _opt("SoftmaxParameter", "softmax_param", 39),
        _opt("SliceParameter", "slice_param", 31),
        _opt("TransformationParameter", "transform_param", 36),
        _opt("LossParameter", "loss_param", 42),
    ), (
        ("LayerType", (
            ("NONE", 0), ("ABSVAL", 35), ("ACCURACY", 1), ("ARGMAX", 30), ("BNLL", 2),
            ("CONCAT", 3), ("CONTRASTIVE_LOSS", 37), ("CONVOLUTION", 4), ("DATA", 5),
            ("DECONVOLUTION", 39), ("DROPOUT", 6), ("DUMMY_DATA", 32), ("EUCLIDEAN_LOSS", 7),
            ("ELTWISE", 25), ("EXP", 38), ("FLATTEN", 8), ("HDF5_DATA", 9), ("HDF5_OUTPUT", 10),
            ("HINGE_LOSS", 28), ("IM2COL", 11), ("IMAGE_DATA", 12), ("INFOGAIN_LOSS", 13),
            ("INNER_PRODUCT", 14), ("LRN", 15), ("MEMORY_DATA", 29),
            ("MULTINOMIAL_LOGISTIC_LOSS", 16), ("MVN", 34), ("POOLING", 17), ("POWER", 26),
            ("RELU", 18), ("SIGMOID", 19), ("SIGMOID_CROSS_ENTROPY_LOSS", 27), ("SILENCE", 36),
            ("SOFTMAX", 20), ("SOFTMAX_LOSS", 21), ("SPLIT", 22), ("SLICE", 33), ("TANH", 23),
            ("WINDOW_DATA", 24), ("THRESHOLD", 31),
        )),
        _enum("DimCheckMode", "STRICT PERMISSIVE"),
    )),
)


# --------------------------------------------------------------------------- descriptors

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALAR_TYPES: dict[str, int] = {
    "double": _FDP.TYPE_DOUBLE,
    "float": _FDP.TYPE_FLOAT,
    "int64": _FDP.TYPE_INT64,
    "uint64": _FDP.TYPE_UINT64,
    "int32": _FDP.TYPE_INT32,
    "uint32": _FDP.TYPE_UINT32,
    "bool": _FDP.TYPE_BOOL,
    "string": _FDP.TYPE_STRING,
    "bytes": _FDP.TYPE_BYTES,
}
_LABELS = {"optional": _FDP.LABEL_OPTIONAL, "repeated": _FDP.LABEL_REPEATED}


def _float_literal(value: float) -> str:
    """Shortest text that reads back as the same double: 1 not 1.0, 1e-05, 0.999."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _default_text(value: DefaultValue) -> str:
    """A default as FieldDescriptorProto.default_value spells it (strings unescaped)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _float_literal(value)
    return str(value)


def _resolve(msg: Message, type_name: str) -> tuple[int, str]:
    """(descriptor type, fully qualified type name) for a non-scalar field type.

    Lookup order follows protobuf scoping: the message's own nested enums, then top-level
    enums, then top-level messages.
    """
    if any(name == type_name for name, _ in msg.enums):
        return _FDP.TYPE_ENUM, f".{PACKAGE}.{msg.name}.{type_name}"
    if any(name == type_name for name, _ in ENUMS):
        return _FDP.TYPE_ENUM, f".{PACKAGE}.{type_name}"
    if any(m.name == type_name for m in MESSAGES):
        return _FDP.TYPE_MESSAGE, f".{PACKAGE}.{type_name}"
    raise AssertionError(f"caffe_proto table: {msg.name} refers to unknown type {type_name}")


def _fill_enum(proto: descriptor_pb2.EnumDescriptorProto, name: str,
               values: tuple[tuple[str, int], ...]) -> None:
    proto.name = name
    for value_name, number in values:
        proto.value.add(name=value_name, number=number)


def _field_proto(msg: Message, field: Field) -> descriptor_pb2.FieldDescriptorProto:
    proto = _FDP(name=field.name, number=field.number, label=_LABELS[field.label])
    if field.type in _SCALAR_TYPES:
        proto.type = _SCALAR_TYPES[field.type]  # type: ignore[assignment]
    else:
        kind, qualified = _resolve(msg, field.type)
        proto.type = kind  # type: ignore[assignment]
        proto.type_name = qualified
    if field.default is not None:
        proto.default_value = _default_text(field.default)
    if field.packed:
        proto.options.packed = True
    return proto


def build_file_descriptor_proto() -> descriptor_pb2.FileDescriptorProto:
    """The table as a FileDescriptorProto: what protoc would produce from ``proto_text()``."""
    fdp = descriptor_pb2.FileDescriptorProto(name=FILE_NAME, package=PACKAGE, syntax="proto2")
    for name, values in ENUMS:
        _fill_enum(fdp.enum_type.add(), name, values)
    for msg in MESSAGES:
        mproto = fdp.message_type.add(name=msg.name)
        for name, values in msg.enums:
            _fill_enum(mproto.enum_type.add(), name, values)
        for field in msg.fields:
            mproto.field.append(_field_proto(msg, field))
    return fdp


def _message_class(pool: descriptor_pool.DescriptorPool, name: str) -> Any:
    """A concrete message class for ``caffe.<name>`` from our private pool.

    ``GetMessageClass`` is the API from protobuf 4.22 on; ``MessageFactory.GetPrototype``
    is its predecessor (removed in protobuf 5), kept for older installations.
    """
    desc = pool.FindMessageTypeByName(f"{PACKAGE}.{name}")
    try:
        from google.protobuf.message_factory import GetMessageClass
    except ImportError:  # pragma: no cover - protobuf < 4.22
        from google.protobuf.message_factory import MessageFactory

        return MessageFactory(pool).GetPrototype(desc)
    return GetMessageClass(desc)


POOL = descriptor_pool.DescriptorPool()
POOL.AddSerializedFile(build_file_descriptor_proto().SerializeToString())
DESCRIPTOR = POOL.FindFileByName(FILE_NAME)

_CLASSES: dict[str, Any] = {m.name: _message_class(POOL, m.name) for m in MESSAGES}

BlobShape = _CLASSES["BlobShape"]
BlobProto = _CLASSES["BlobProto"]
BlobProtoVector = _CLASSES["BlobProtoVector"]
FillerParameter = _CLASSES["FillerParameter"]
NetParameter = _CLASSES["NetParameter"]
SolverParameter = _CLASSES["SolverParameter"]
SolverState = _CLASSES["SolverState"]
NetState = _CLASSES["NetState"]
NetStateRule = _CLASSES["NetStateRule"]
ParamSpec = _CLASSES["ParamSpec"]
LayerParameter = _CLASSES["LayerParameter"]
V1LayerParameter = _CLASSES["V1LayerParameter"]
TransformationParameter = _CLASSES["TransformationParameter"]
LossParameter = _CLASSES["LossParameter"]
AccuracyParameter = _CLASSES["AccuracyParameter"]
ConcatParameter = _CLASSES["ConcatParameter"]
BatchNormParameter = _CLASSES["BatchNormParameter"]
BiasParameter = _CLASSES["BiasParameter"]
ConvolutionParameter = _CLASSES["ConvolutionParameter"]
CropParameter = _CLASSES["CropParameter"]
DataParameter = _CLASSES["DataParameter"]
DropoutParameter = _CLASSES["DropoutParameter"]
DummyDataParameter = _CLASSES["DummyDataParameter"]
EltwiseParameter = _CLASSES["EltwiseParameter"]
FlattenParameter = _CLASSES["FlattenParameter"]
HDF5DataParameter = _CLASSES["HDF5DataParameter"]
ImageDataParameter = _CLASSES["ImageDataParameter"]
InnerProductParameter = _CLASSES["InnerProductParameter"]
InputParameter = _CLASSES["InputParameter"]
PoolingParameter = _CLASSES["PoolingParameter"]
MVNParameter = _CLASSES["MVNParameter"]
PowerParameter = _CLASSES["PowerParameter"]
PReLUParameter = _CLASSES["PReLUParameter"]
ReLUParameter = _CLASSES["ReLUParameter"]
ReshapeParameter = _CLASSES["ReshapeParameter"]
ScaleParameter = _CLASSES["ScaleParameter"]
SliceParameter = _CLASSES["SliceParameter"]
SoftmaxParameter = _CLASSES["SoftmaxParameter"]

# The top-level enum, usable as Phase.Value("TEST") / Phase.Name(0), plus its values.
Phase = enum_type_wrapper.EnumTypeWrapper(POOL.FindEnumTypeByName(f"{PACKAGE}.Phase"))
TRAIN = 0
TEST = 1


# --------------------------------------------------------------------------- .proto text


def _quote(text: str) -> str:
    """A proto string literal (C-style escapes), for string defaults."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _field_line(field: Field) -> str:
    options = []
    if field.default is not None:
        value = _quote(field.default) if field.type == "string" else _default_text(field.default)
        options.append(f"default = {value}")
    if field.packed:
        options.append("packed = true")
    suffix = f" [{', '.join(options)}]" if options else ""
    return f"  {field.label} {field.type} {field.name} = {field.number}{suffix};"


def _enum_lines(name: str, values: tuple[tuple[str, int], ...], indent: str) -> list[str]:
    body = [f"{indent}  {value} = {number};" for value, number in values]
    return [f"{indent}enum {name} {{", *body, f"{indent}}}"]


def proto_text() -> str:
    """The table rendered as ``caffe.proto`` source: a protoc-compilable subset of upstream."""
    lines = [
        "// Generated by netgen.caffe.proto (python -m netgen.caffe.proto); do not edit.",
        "// A subset of BVLC Caffe's src/caffe/proto/caffe.proto with the upstream field",
        "// numbers, types, labels and defaults, so binary files interoperate with Caffe.",
        "",
        'syntax = "proto2";',
        "",
        f"package {PACKAGE};",
    ]
    for name, values in ENUMS:
        lines += ["", *_enum_lines(name, values, "")]
    for msg in MESSAGES:
        lines += ["", f"message {msg.name} {{"]
        for name, values in msg.enums:
            lines += _enum_lines(name, values, "  ")
        lines += [_field_line(field) for field in msg.fields]
        lines.append("}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- text and binary I/O


def _text_error(source: str, exc: Exception) -> NetgenError:
    """A one-line ``source:line:col: detail`` error from a text_format failure."""
    detail = first_line(exc)
    line = getattr(exc, "GetLine", lambda: None)()
    column = getattr(exc, "GetColumn", lambda: None)()
    if line is not None:
        # ParseError's text already starts with "line:col : "; do not say it twice.
        prefix = f"{line}:{column} : " if column is not None else f"{line} : "
        if detail.startswith(prefix):
            detail = detail[len(prefix):]
        # Some messages quote the whole offending line first; a one-line net could make
        # that megabytes long, and line:col already say where.
        quoted, sep, rest = detail.partition("': ")
        if sep and quoted.startswith("'") and len(quoted) > 80:
            detail = rest
        where = f"{source}:{line}:{column}" if column is not None else f"{source}:{line}"
        return NetgenError(f"{where}: {detail}")
    return NetgenError(f"{source}: {detail}")


def _parse_text(text: str, msg: message.Message, source: str) -> Any:
    try:
        text_format.Parse(text, msg)
    except (text_format.ParseError, ValueError, TypeError) as exc:
        raise _text_error(source, exc) from exc
    return msg


def parse_net(text: str, source: str = "<prototxt>") -> Any:
    """Parse a net prototxt (deploy or train_val) into a NetParameter.

    ``source`` is only used in error messages, so name the file the text came from.
    """
    return _parse_text(text, NetParameter(), source)


def parse_solver(text: str, source: str = "<solver>") -> Any:
    """Parse a solver prototxt into a SolverParameter."""
    return _parse_text(text, SolverParameter(), source)


def format_message(msg: message.Message) -> str:
    """Caffe-style text format: fields in field-number order, so the same message always
    gives the same text (NetParameter.layer is field 100 so layers come last, as in Caffe).
    """
    return text_format.MessageToString(msg)


def serialize_net(net: message.Message) -> bytes:
    """Binary ``.caffemodel`` bytes; deterministic so that equal nets give equal files."""
    try:
        return net.SerializeToString(deterministic=True)
    except (message.EncodeError, ValueError) as exc:
        raise NetgenError(f"cannot serialise net {getattr(net, 'name', '')!r}: {exc}") from exc


DEFAULT_MAX_CAFFEMODEL_BYTES = 4 << 30


def read_caffemodel(path: str | os.PathLike[str],
                    max_bytes: int = DEFAULT_MAX_CAFFEMODEL_BYTES) -> Any:
    """Read a binary ``.caffemodel`` (a serialised NetParameter).

    The size check comes first so that a mistaken path to a huge file fails fast instead of
    exhausting memory. Protobuf cannot detect a file cut exactly between two layers, but a
    file cut anywhere else, or one that is not a protobuf at all, fails to decode; one that
    decodes to a net without layers is rejected too (an empty file decodes that way).
    """
    name = os.fspath(path)
    try:
        size = os.path.getsize(name)
        if size > max_bytes:
            gib = f" ({size / 2**30:.1f} GiB)" if size >= 2**30 else ""
            raise NetgenError(f"{name}: {size} bytes{gib} is more than the {max_bytes}-byte "
                              "limit for a .caffemodel")
        with open(name, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise NetgenError(f"{name}: cannot read: {exc.strerror or exc}") from exc
    net = NetParameter()
    try:
        net.ParseFromString(data)
    except (message.DecodeError, ValueError, RuntimeError) as exc:
        raise NetgenError(
            f"{name}: not a Caffe model (truncated or corrupt protobuf, {size} bytes): "
            f"{first_line(exc)}") from exc
    if not net.layer and not net.layers:
        raise NetgenError(f"{name}: contains no layers ({size} bytes); not a Caffe model?")
    return net


# --------------------------------------------------------------------------- blobs <-> numpy
#
# A ResNet-152 has sixty million weights; going value by value through a protobuf repeated
# field costs seconds per ten million. Packed floats on the wire are exactly a
# little-endian float32 array, so blobs are built from wire bytes. Reading uses the
# repeated field's own ``__array__`` (a C-level copy, protobuf >= 5) and falls back to
# walking the serialised blob where that is missing (protobuf 4.x, pure-Python backend).

_WIRE_VARINT, _WIRE_FIXED64, _WIRE_LEN, _WIRE_FIXED32 = 0, 1, 2, 5
_BLOB_DATA, _BLOB_SHAPE, _BLOB_DOUBLE_DATA = 5, 7, 8


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise NetgenError("blob: truncated varint in serialised BlobProto")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _packed_payloads(buf: bytes, number: int) -> list[memoryview] | None:
    """The length-delimited payloads of field ``number`` in a serialised message, in order.

    None if the field also occurs unpacked (one value per tag), which the caller then
    reads the slow way; our protobuf never writes that, other producers might.
    """
    view = memoryview(buf)
    payloads: list[memoryview] = []
    pos = 0
    while pos < len(view):
        key, pos = _read_varint(view, pos)
        field_number, wire = key >> 3, key & 7
        if wire == _WIRE_VARINT:
            _, pos = _read_varint(view, pos)
        elif wire == _WIRE_FIXED64:
            pos += 8
        elif wire == _WIRE_FIXED32:
            pos += 4
        elif wire == _WIRE_LEN:
            length, pos = _read_varint(view, pos)
            if field_number == number:
                payloads.append(view[pos:pos + length])
            pos += length
        else:
            return None
        if field_number == number and wire != _WIRE_LEN:
            return None
    return payloads


def _array_from_wire(blob: Any, number: int, wire_dtype: str) -> np.ndarray:
    """Packed field ``number`` of ``blob`` read from its serialised bytes, as a new array."""
    payloads = _packed_payloads(blob.SerializeToString(), number)
    if payloads is None:  # pragma: no cover - only for foreign, unpacked encodings
        name = {_BLOB_DATA: "data", _BLOB_DOUBLE_DATA: "double_data"}[number]
        return np.fromiter(getattr(blob, name), dtype=wire_dtype).astype(wire_dtype[1:])
    parts = [np.frombuffer(payload, dtype=wire_dtype) for payload in payloads]
    if not parts:
        return np.empty(0, dtype=wire_dtype[1:])
    return np.concatenate(parts).astype(wire_dtype[1:])  # a copy: writable, native order


def _repeated_to_array(blob: Any, name: str, number: int, wire_dtype: str) -> np.ndarray:
    """A packed repeated float (``<f4``) or double (``<f8``) field of ``blob`` as an array."""
    values = getattr(blob, name)
    if hasattr(values, "__array__"):
        return np.array(values, dtype=wire_dtype[1:])
    return _array_from_wire(blob, number, wire_dtype)


def blob_from_array(array: np.ndarray) -> Any:
    """A BlobProto holding ``array`` as float32 ``data`` with its shape in ``shape.dim``.

    Built as wire bytes and parsed once, which copies the buffer instead of boxing every
    value into a Python float.
    """
    values = np.asarray(array, dtype="<f4", order="C")  # (ascontiguousarray makes 0-d 1-d)
    shape_bytes = BlobShape(dim=[int(d) for d in values.shape]).SerializeToString()
    raw = values.tobytes()
    parts = [_varint(_BLOB_SHAPE << 3 | _WIRE_LEN), _varint(len(shape_bytes)), shape_bytes]
    if raw:
        parts += [_varint(_BLOB_DATA << 3 | _WIRE_LEN), _varint(len(raw)), raw]
    return BlobProto.FromString(b"".join(parts))


def _blob_shape(blob: Any) -> tuple[int, ...]:
    """The blob's shape with Caffe's own precedence (Blob::FromProto): if any legacy 4-D
    field (num, channels, height, width) is present, those four; else ``shape.dim``.
    """
    legacy = ("num", "channels", "height", "width")
    if any(blob.HasField(name) for name in legacy):
        return tuple(int(getattr(blob, name)) for name in legacy)
    return tuple(int(d) for d in blob.shape.dim)


def array_from_blob(blob: Any) -> np.ndarray:
    """The blob's values as a float32 array of the blob's shape.

    Uses ``double_data`` when ``data`` is empty (blobs saved from Blob<double>). A value
    count that does not match the shape is an error, as it is when Caffe loads the file.
    """
    shape = _blob_shape(blob)
    if any(d < 0 for d in shape):
        raise NetgenError(f"blob has a negative dimension in its shape {list(shape)}")
    if len(blob.data) == 0 and len(blob.double_data) > 0:
        values = _repeated_to_array(blob, "double_data", _BLOB_DOUBLE_DATA, "<f8")
        values = values.astype(np.float32)
    else:
        values = _repeated_to_array(blob, "data", _BLOB_DATA, "<f4")
    expected = math.prod(shape)
    if values.size != expected:
        raise NetgenError(
            f"blob has {values.size} values but its shape {list(shape)} needs {expected}")
    return values.reshape(shape)


def main() -> None:
    """``python -m netgen.caffe.proto`` prints the schema (how netgen/caffe.proto is made)."""
    sys.stdout.write(proto_text())


if __name__ == "__main__":
    main()

"""netgen.caffe.proto: the schema must be upstream Caffe's, byte for byte on the wire."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import descriptor

from netgen.caffe import proto as cp
from netgen.errors import NetgenError

# (message, field) -> number, copied by hand from BVLC Caffe's src/caffe/proto/caffe.proto.
# Deliberately NOT derived from the module's table: this is the independent check.
UPSTREAM_NUMBERS = {
    ("NetParameter", "name"): 1, ("NetParameter", "layers"): 2, ("NetParameter", "input"): 3,
    ("NetParameter", "input_dim"): 4, ("NetParameter", "force_backward"): 5,
    ("NetParameter", "state"): 6, ("NetParameter", "debug_info"): 7,
    ("NetParameter", "input_shape"): 8, ("NetParameter", "layer"): 100,
    ("LayerParameter", "name"): 1, ("LayerParameter", "type"): 2,
    ("LayerParameter", "bottom"): 3, ("LayerParameter", "top"): 4,
    ("LayerParameter", "loss_weight"): 5, ("LayerParameter", "param"): 6,
    ("LayerParameter", "blobs"): 7, ("LayerParameter", "include"): 8,
    ("LayerParameter", "exclude"): 9, ("LayerParameter", "phase"): 10,
    ("LayerParameter", "propagate_down"): 11,
    ("LayerParameter", "transform_param"): 100, ("LayerParameter", "loss_param"): 101,
    ("LayerParameter", "accuracy_param"): 102, ("LayerParameter", "concat_param"): 104,
    ("LayerParameter", "convolution_param"): 106, ("LayerParameter", "data_param"): 107,
    ("LayerParameter", "dropout_param"): 108, ("LayerParameter", "dummy_data_param"): 109,
    ("LayerParameter", "eltwise_param"): 110, ("LayerParameter", "hdf5_data_param"): 112,
    ("LayerParameter", "image_data_param"): 115,
    ("LayerParameter", "inner_product_param"): 117, ("LayerParameter", "pooling_param"): 121,
    ("LayerParameter", "power_param"): 122, ("LayerParameter", "relu_param"): 123,
    ("LayerParameter", "softmax_param"): 125, ("LayerParameter", "slice_param"): 126,
    ("LayerParameter", "prelu_param"): 131, ("LayerParameter", "reshape_param"): 133,
    ("LayerParameter", "flatten_param"): 135, ("LayerParameter", "batch_norm_param"): 139,
    ("LayerParameter", "bias_param"): 141, ("LayerParameter", "scale_param"): 142,
    ("LayerParameter", "input_param"): 143,
    ("V1LayerParameter", "bottom"): 2, ("V1LayerParameter", "top"): 3,
    ("V1LayerParameter", "name"): 4, ("V1LayerParameter", "type"): 5,
    ("V1LayerParameter", "blobs"): 6, ("V1LayerParameter", "blobs_lr"): 7,
    ("V1LayerParameter", "weight_decay"): 8, ("V1LayerParameter", "concat_param"): 9,
    ("V1LayerParameter", "convolution_param"): 10, ("V1LayerParameter", "data_param"): 11,
    ("V1LayerParameter", "dropout_param"): 12, ("V1LayerParameter", "hdf5_data_param"): 13,
    ("V1LayerParameter", "image_data_param"): 15,
    ("V1LayerParameter", "inner_product_param"): 17, ("V1LayerParameter", "pooling_param"): 19,
    ("V1LayerParameter", "power_param"): 21, ("V1LayerParameter", "eltwise_param"): 24,
    ("V1LayerParameter", "dummy_data_param"): 26, ("V1LayerParameter", "accuracy_param"): 27,
    ("V1LayerParameter", "relu_param"): 30, ("V1LayerParameter", "slice_param"): 31,
    ("V1LayerParameter", "include"): 32, ("V1LayerParameter", "exclude"): 33,
    ("V1LayerParameter", "loss_weight"): 35, ("V1LayerParameter", "transform_param"): 36,
    ("V1LayerParameter", "softmax_param"): 39, ("V1LayerParameter", "loss_param"): 42,
    ("V1LayerParameter", "param"): 1001, ("V1LayerParameter", "blob_share_mode"): 1002,
    ("BlobShape", "dim"): 1,
    ("BlobProto", "num"): 1, ("BlobProto", "channels"): 2, ("BlobProto", "height"): 3,
    ("BlobProto", "width"): 4, ("BlobProto", "data"): 5, ("BlobProto", "diff"): 6,
    ("BlobProto", "shape"): 7, ("BlobProto", "double_data"): 8, ("BlobProto", "double_diff"): 9,
    ("BlobProtoVector", "blobs"): 1,
    ("ConvolutionParameter", "num_output"): 1, ("ConvolutionParameter", "bias_term"): 2,
    ("ConvolutionParameter", "pad"): 3, ("ConvolutionParameter", "kernel_size"): 4,
    ("ConvolutionParameter", "group"): 5, ("ConvolutionParameter", "stride"): 6,
    ("ConvolutionParameter", "weight_filler"): 7, ("ConvolutionParameter", "bias_filler"): 8,
    ("ConvolutionParameter", "pad_h"): 9, ("ConvolutionParameter", "pad_w"): 10,
    ("ConvolutionParameter", "kernel_h"): 11, ("ConvolutionParameter", "kernel_w"): 12,
    ("ConvolutionParameter", "stride_h"): 13, ("ConvolutionParameter", "stride_w"): 14,
    ("ConvolutionParameter", "engine"): 15, ("ConvolutionParameter", "axis"): 16,
    ("ConvolutionParameter", "force_nd_im2col"): 17, ("ConvolutionParameter", "dilation"): 18,
    ("PoolingParameter", "pool"): 1, ("PoolingParameter", "kernel_size"): 2,
    ("PoolingParameter", "stride"): 3, ("PoolingParameter", "pad"): 4,
    ("PoolingParameter", "kernel_h"): 5, ("PoolingParameter", "kernel_w"): 6,
    ("PoolingParameter", "stride_h"): 7, ("PoolingParameter", "stride_w"): 8,
    ("PoolingParameter", "pad_h"): 9, ("PoolingParameter", "pad_w"): 10,
    ("PoolingParameter", "engine"): 11, ("PoolingParameter", "global_pooling"): 12,
    ("PoolingParameter", "round_mode"): 13,
    ("BatchNormParameter", "use_global_stats"): 1,
    ("BatchNormParameter", "moving_average_fraction"): 2, ("BatchNormParameter", "eps"): 3,
    ("ScaleParameter", "axis"): 1, ("ScaleParameter", "num_axes"): 2,
    ("ScaleParameter", "filler"): 3, ("ScaleParameter", "bias_term"): 4,
    ("ScaleParameter", "bias_filler"): 5,
    ("BiasParameter", "axis"): 1, ("BiasParameter", "num_axes"): 2,
    ("BiasParameter", "filler"): 3,
    ("InnerProductParameter", "num_output"): 1, ("InnerProductParameter", "bias_term"): 2,
    ("InnerProductParameter", "weight_filler"): 3, ("InnerProductParameter", "bias_filler"): 4,
    ("InnerProductParameter", "axis"): 5, ("InnerProductParameter", "transpose"): 6,
    ("EltwiseParameter", "operation"): 1, ("EltwiseParameter", "coeff"): 2,
    ("EltwiseParameter", "stable_prod_grad"): 3,
    ("InputParameter", "shape"): 1,
    ("ConcatParameter", "concat_dim"): 1, ("ConcatParameter", "axis"): 2,
    ("PowerParameter", "power"): 1, ("PowerParameter", "scale"): 2,
    ("PowerParameter", "shift"): 3,
    ("LayerParameter", "mvn_param"): 120, ("MVNParameter", "normalize_variance"): 1,
    ("MVNParameter", "across_channels"): 2, ("MVNParameter", "eps"): 3,
    ("ReLUParameter", "negative_slope"): 1, ("ReLUParameter", "engine"): 2,
    ("PReLUParameter", "filler"): 1, ("PReLUParameter", "channel_shared"): 2,
    ("SoftmaxParameter", "engine"): 1, ("SoftmaxParameter", "axis"): 2,
    ("SliceParameter", "slice_dim"): 1, ("SliceParameter", "slice_point"): 2,
    ("SliceParameter", "axis"): 3,
    ("ReshapeParameter", "shape"): 1, ("ReshapeParameter", "axis"): 2,
    ("ReshapeParameter", "num_axes"): 3,
    ("FlattenParameter", "axis"): 1, ("FlattenParameter", "end_axis"): 2,
    ("DropoutParameter", "dropout_ratio"): 1,
    ("FillerParameter", "type"): 1, ("FillerParameter", "value"): 2,
    ("FillerParameter", "min"): 3, ("FillerParameter", "max"): 4,
    ("FillerParameter", "mean"): 5, ("FillerParameter", "std"): 6,
    ("FillerParameter", "sparse"): 7, ("FillerParameter", "variance_norm"): 8,
    ("ParamSpec", "name"): 1, ("ParamSpec", "share_mode"): 2, ("ParamSpec", "lr_mult"): 3,
    ("ParamSpec", "decay_mult"): 4,
    ("NetState", "phase"): 1, ("NetState", "level"): 2, ("NetState", "stage"): 3,
    ("NetStateRule", "phase"): 1, ("NetStateRule", "min_level"): 2,
    ("NetStateRule", "max_level"): 3, ("NetStateRule", "stage"): 4,
    ("NetStateRule", "not_stage"): 5,
    ("DataParameter", "source"): 1, ("DataParameter", "scale"): 2,
    ("DataParameter", "mean_file"): 3, ("DataParameter", "batch_size"): 4,
    ("DataParameter", "crop_size"): 5, ("DataParameter", "mirror"): 6,
    ("DataParameter", "rand_skip"): 7, ("DataParameter", "backend"): 8,
    ("ImageDataParameter", "source"): 1, ("ImageDataParameter", "batch_size"): 4,
    ("ImageDataParameter", "shuffle"): 8, ("ImageDataParameter", "new_height"): 9,
    ("ImageDataParameter", "new_width"): 10, ("ImageDataParameter", "is_color"): 11,
    ("ImageDataParameter", "root_folder"): 12,
    ("HDF5DataParameter", "source"): 1, ("HDF5DataParameter", "batch_size"): 2,
    ("HDF5DataParameter", "shuffle"): 3,
    ("DummyDataParameter", "data_filler"): 1, ("DummyDataParameter", "shape"): 6,
    ("TransformationParameter", "scale"): 1, ("TransformationParameter", "mirror"): 2,
    ("TransformationParameter", "crop_size"): 3, ("TransformationParameter", "mean_file"): 4,
    ("TransformationParameter", "mean_value"): 5,
    ("TransformationParameter", "force_color"): 6,
    ("TransformationParameter", "force_gray"): 7,
    ("AccuracyParameter", "top_k"): 1, ("AccuracyParameter", "axis"): 2,
    ("AccuracyParameter", "ignore_label"): 3,
    ("LossParameter", "ignore_label"): 1, ("LossParameter", "normalize"): 2,
    ("LossParameter", "normalization"): 3,
    ("SolverParameter", "train_net"): 1, ("SolverParameter", "test_net"): 2,
    ("SolverParameter", "test_iter"): 3, ("SolverParameter", "test_interval"): 4,
    ("SolverParameter", "base_lr"): 5, ("SolverParameter", "display"): 6,
    ("SolverParameter", "max_iter"): 7, ("SolverParameter", "lr_policy"): 8,
    ("SolverParameter", "gamma"): 9, ("SolverParameter", "power"): 10,
    ("SolverParameter", "momentum"): 11, ("SolverParameter", "weight_decay"): 12,
    ("SolverParameter", "stepsize"): 13, ("SolverParameter", "snapshot"): 14,
    ("SolverParameter", "snapshot_prefix"): 15, ("SolverParameter", "snapshot_diff"): 16,
    ("SolverParameter", "solver_mode"): 17, ("SolverParameter", "device_id"): 18,
    ("SolverParameter", "test_compute_loss"): 19, ("SolverParameter", "random_seed"): 20,
    ("SolverParameter", "train_net_param"): 21, ("SolverParameter", "test_net_param"): 22,
    ("SolverParameter", "debug_info"): 23, ("SolverParameter", "net"): 24,
    ("SolverParameter", "net_param"): 25, ("SolverParameter", "train_state"): 26,
    ("SolverParameter", "test_state"): 27, ("SolverParameter", "snapshot_after_train"): 28,
    ("SolverParameter", "regularization_type"): 29, ("SolverParameter", "solver_type"): 30,
    ("SolverParameter", "delta"): 31, ("SolverParameter", "test_initialization"): 32,
    ("SolverParameter", "average_loss"): 33, ("SolverParameter", "stepvalue"): 34,
    ("SolverParameter", "clip_gradients"): 35, ("SolverParameter", "iter_size"): 36,
    ("SolverParameter", "snapshot_format"): 37, ("SolverParameter", "rms_decay"): 38,
    ("SolverParameter", "momentum2"): 39, ("SolverParameter", "type"): 40,
    ("SolverParameter", "layer_wise_reduce"): 41,
}

# Upstream enum values that appear in files (binary files store the numbers).
UPSTREAM_ENUMS = {
    ("Phase", "TRAIN"): 0, ("Phase", "TEST"): 1,
    ("PoolingParameter.PoolMethod", "MAX"): 0, ("PoolingParameter.PoolMethod", "AVE"): 1,
    ("PoolingParameter.PoolMethod", "STOCHASTIC"): 2,
    ("PoolingParameter.RoundMode", "CEIL"): 0, ("PoolingParameter.RoundMode", "FLOOR"): 1,
    ("EltwiseParameter.EltwiseOp", "PROD"): 0, ("EltwiseParameter.EltwiseOp", "SUM"): 1,
    ("EltwiseParameter.EltwiseOp", "MAX"): 2,
    ("SolverParameter.SolverMode", "CPU"): 0, ("SolverParameter.SolverMode", "GPU"): 1,
    ("SolverParameter.SolverType", "ADAM"): 5,
    ("FillerParameter.VarianceNorm", "FAN_OUT"): 1,
    ("DataParameter.DB", "LMDB"): 1,
    ("LossParameter.NormalizationMode", "VALID"): 1,
    ("V1LayerParameter.LayerType", "CONVOLUTION"): 4,
    ("V1LayerParameter.LayerType", "DATA"): 5,
    ("V1LayerParameter.LayerType", "INNER_PRODUCT"): 14,
    ("V1LayerParameter.LayerType", "POOLING"): 17,
    ("V1LayerParameter.LayerType", "RELU"): 18,
    ("V1LayerParameter.LayerType", "SOFTMAX"): 20,
    ("V1LayerParameter.LayerType", "SOFTMAX_LOSS"): 21,
    ("V1LayerParameter.LayerType", "ELTWISE"): 25,
    ("V1LayerParameter.LayerType", "CONCAT"): 3,
    ("V1LayerParameter.LayerType", "ABSVAL"): 35,
}

CAFFE_PROTO = Path(cp.__file__).with_name("caffe.proto")

RESNET_HEAD = """\
name: "ResNet-50"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 224
input_dim: 224
layer {
  bottom: "data"
  top: "conv1"
  name: "conv1"
  type: "Convolution"
  convolution_param {
    num_output: 64
    kernel_size: 7
    pad: 3
    stride: 2
  }
}
layer {
  bottom: "conv1"
  top: "conv1"
  name: "bn_conv1"
  type: "BatchNorm"
  batch_norm_param {
    use_global_stats: true
  }
}
layer {
  bottom: "conv1"
  top: "conv1"
  name: "scale_conv1"
  type: "Scale"
  scale_param {
    bias_term: true
  }
}
layer {
  bottom: "conv1"
  top: "conv1"
  name: "conv1_relu"
  type: "ReLU"
}
layer {
  bottom: "conv1"
  top: "pool1"
  name: "pool1"
  type: "Pooling"
  pooling_param {
    kernel_size: 3
    stride: 2
    pool: MAX
  }
}
"""


def _field(message: str, name: str) -> descriptor.FieldDescriptor:
    return cp.POOL.FindMessageTypeByName(f"caffe.{message}").fields_by_name[name]


def _is_repeated(field: descriptor.FieldDescriptor) -> bool:
    """protobuf 7 dropped FieldDescriptor.label for is_repeated; 4.x has only label."""
    if hasattr(field, "is_repeated"):
        return bool(field.is_repeated)
    return field.label == field.LABEL_REPEATED


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize(("key", "number"), sorted(UPSTREAM_NUMBERS.items()))
def test_field_numbers_match_upstream(key: tuple[str, str], number: int) -> None:
    assert _field(*key).number == number


@pytest.mark.parametrize(("key", "number"), sorted(UPSTREAM_ENUMS.items()))
def test_enum_values_match_upstream(key: tuple[str, str], number: int) -> None:
    enum = cp.POOL.FindEnumTypeByName(f"caffe.{key[0]}")
    assert enum.values_by_name[key[1]].number == number


def test_types_and_labels_match_upstream() -> None:
    fd = descriptor.FieldDescriptor
    assert _field("BlobShape", "dim").type == fd.TYPE_INT64
    assert _field("BlobProto", "data").type == fd.TYPE_FLOAT
    assert _field("BlobProto", "double_data").type == fd.TYPE_DOUBLE
    assert _field("BlobProto", "num").type == fd.TYPE_INT32
    assert _field("NetParameter", "input_dim").type == fd.TYPE_INT32
    assert _field("ConvolutionParameter", "kernel_size").type == fd.TYPE_UINT32
    assert _field("ConvolutionParameter", "bias_term").type == fd.TYPE_BOOL
    assert _field("SolverParameter", "random_seed").type == fd.TYPE_INT64
    assert _field("SolverParameter", "device_id").type == fd.TYPE_INT32
    assert _field("V1LayerParameter", "type").enum_type.full_name == (
        "caffe.V1LayerParameter.LayerType")
    assert _field("NetState", "phase").enum_type.full_name == "caffe.Phase"
    # `repeated` where upstream repeats, single where it does not.
    for key in [("ConvolutionParameter", "pad"), ("ConvolutionParameter", "kernel_size"),
                ("ConvolutionParameter", "stride"), ("NetParameter", "layer"),
                ("LayerParameter", "top"), ("SolverParameter", "stepvalue")]:
        assert _is_repeated(_field(*key)), key
    for key in [("PoolingParameter", "kernel_size"), ("PoolingParameter", "stride"),
                ("SolverParameter", "device_id"), ("ConvolutionParameter", "group")]:
        assert not _is_repeated(_field(*key)), key


def test_only_upstreams_packed_fields_are_packed() -> None:
    """Caffe writes conv pads etc. unpacked and blob data packed; we must do the same."""
    packed = {(m.name, f.name) for m in cp.DESCRIPTOR.message_types_by_name.values()
              for f in m.fields if f.GetOptions().packed}
    assert packed == {("BlobShape", "dim"), ("BlobProto", "data"), ("BlobProto", "diff"),
                      ("BlobProto", "double_data"), ("BlobProto", "double_diff")}


def test_upstream_defaults() -> None:
    conv = cp.ConvolutionParameter()
    assert conv.bias_term is True and conv.group == 1 and conv.axis == 1
    assert list(conv.stride) == [] and conv.pad_h == 0
    pool = cp.PoolingParameter()
    assert pool.stride == 1 and pool.pad == 0 and pool.pool == cp.PoolingParameter.MAX
    assert pool.round_mode == cp.PoolingParameter.CEIL and not pool.global_pooling
    bn = cp.BatchNormParameter()
    assert bn.moving_average_fraction == pytest.approx(0.999)
    assert bn.eps == pytest.approx(1e-5)
    assert not bn.HasField("use_global_stats")
    assert cp.ScaleParameter().bias_term is False and cp.ScaleParameter().axis == 1
    ip = cp.InnerProductParameter()
    assert ip.bias_term is True and ip.axis == 1 and ip.transpose is False
    filler = cp.FillerParameter()
    assert (filler.type, filler.std, filler.max, filler.min, filler.sparse) == (
        "constant", 1.0, 1.0, 0.0, -1)
    assert cp.EltwiseParameter().operation == cp.EltwiseParameter.SUM
    assert cp.EltwiseParameter().stable_prod_grad is True
    assert (cp.ParamSpec().lr_mult, cp.ParamSpec().decay_mult) == (1.0, 1.0)
    assert cp.NetState().phase == cp.TEST
    assert cp.DropoutParameter().dropout_ratio == pytest.approx(0.5)
    assert cp.ConcatParameter().axis == 1 and cp.SoftmaxParameter().axis == 1
    assert (cp.FlattenParameter().axis, cp.FlattenParameter().end_axis) == (1, -1)
    assert (cp.ReshapeParameter().axis, cp.ReshapeParameter().num_axes) == (0, -1)
    assert cp.PowerParameter().power == 1.0 and cp.PowerParameter().scale == 1.0
    assert cp.LossParameter().normalization == cp.LossParameter.VALID
    solver = cp.SolverParameter()
    assert solver.type == "SGD" and solver.solver_mode == cp.SolverParameter.GPU
    assert solver.random_seed == -1 and solver.iter_size == 1 and solver.average_loss == 1
    assert solver.test_initialization is True and solver.snapshot_after_train is True
    assert solver.regularization_type == "L2" and solver.clip_gradients == -1.0
    assert solver.momentum2 == pytest.approx(0.999) and solver.delta == pytest.approx(1e-8)
    assert solver.snapshot_format == cp.SolverParameter.BINARYPROTO
    assert solver.solver_type == cp.SolverParameter.SGD


def test_private_pool_leaves_default_pool_alone() -> None:
    from google.protobuf import descriptor_pool

    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName("caffe.NetParameter")
    assert cp.NetParameter.DESCRIPTOR.file.pool is cp.POOL


def test_phase_enum_wrapper() -> None:
    assert cp.Phase.Value("TEST") == cp.TEST == 1
    assert cp.Phase.Name(cp.TRAIN) == "TRAIN"


# --------------------------------------------------------------------------- wire format


def _varint(value: int) -> bytes:
    out = b""
    while value > 0x7F:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _len_field(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def test_blob_wire_format_by_hand() -> None:
    blob = cp.BlobProto()
    blob.shape.dim.extend([2, 3])
    blob.data.extend([1, 2, 3, 4, 5, 6])
    # Field 5 (data): key 0x2a, 24 bytes of little-endian float32; then field 7 (shape):
    # key 0x3a, length 4, holding field 1 (dim, packed): key 0x0a, length 2, varints 2, 3.
    expected = (b"\x2a\x18" + struct.pack("<6f", 1, 2, 3, 4, 5, 6)
                + b"\x3a\x04" + b"\x0a\x02\x02\x03")
    assert cp.serialize_net(blob) == expected
    assert cp.BlobProto.FromString(expected) == blob
    assert cp.blob_from_array(np.arange(1, 7, dtype=np.float32).reshape(2, 3)) == blob


def test_legacy_v1_layers_with_blobs_parse_from_binary(tmp_path: Path) -> None:
    """An old-style .caffemodel: NetParameter.layers (field 2) of V1LayerParameter."""
    weights = struct.pack("<8f", *range(8))
    blob = (_key(1, 0) + _varint(2) + _key(2, 0) + _varint(1)  # num 2, channels 1
            + _key(3, 0) + _varint(2) + _key(4, 0) + _varint(2)  # height 2, width 2
            + _len_field(5, weights))
    bias = _len_field(5, struct.pack("<2f", 0.5, -0.5))
    layer = (_len_field(4, b"conv1") + _key(5, 0) + _varint(4)  # name, type CONVOLUTION
             + _len_field(2, b"data") + _len_field(3, b"conv1")  # bottom, top
             + _len_field(6, blob) + _len_field(6, bias)
             + _key(7, 5) + struct.pack("<f", 1.0) + _key(7, 5) + struct.pack("<f", 2.0))
    raw = _len_field(1, b"lenet") + _len_field(2, layer)
    path = tmp_path / "old.caffemodel"
    path.write_bytes(raw)

    net = cp.read_caffemodel(path)
    assert net.name == "lenet" and len(net.layer) == 0 and len(net.layers) == 1
    v1 = net.layers[0]
    assert v1.name == "conv1" and v1.type == cp.V1LayerParameter.CONVOLUTION
    assert list(v1.bottom) == ["data"] and list(v1.top) == ["conv1"]
    assert list(v1.blobs_lr) == [1.0, 2.0]
    kernel = cp.array_from_blob(v1.blobs[0])
    assert kernel.shape == (2, 1, 2, 2) and kernel.dtype == np.float32
    np.testing.assert_array_equal(kernel.ravel(), np.arange(8, dtype=np.float32))
    with pytest.raises(NetgenError, match=r"2 values but its shape \[\] needs 1"):
        # The bias has no shape at all: Caffe reads that as a scalar, which 2 values are not.
        cp.array_from_blob(v1.blobs[1])


def test_caffemodel_round_trip_is_deterministic(tmp_path: Path) -> None:
    net = cp.parse_net(RESNET_HEAD)
    net.layer[0].blobs.append(cp.blob_from_array(np.ones((64, 3, 7, 7), np.float32)))
    data = cp.serialize_net(net)
    assert data == cp.serialize_net(cp.NetParameter.FromString(data))
    path = tmp_path / "m.caffemodel"
    path.write_bytes(data)
    back = cp.read_caffemodel(path)
    assert back == net
    assert cp.array_from_blob(back.layer[0].blobs[0]).shape == (64, 3, 7, 7)


def test_truncated_caffemodel_is_a_netgen_error(tmp_path: Path) -> None:
    net = cp.parse_net(RESNET_HEAD)
    net.layer[0].blobs.append(cp.blob_from_array(np.ones(1000, np.float32)))
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(cp.serialize_net(net)[:-100])
    with pytest.raises(NetgenError, match="cut.caffemodel"):
        cp.read_caffemodel(path)


@pytest.mark.parametrize("payload", [b"", b"name: \"not binary\"\n", b"\xff" * 64])
def test_garbage_caffemodel_is_a_netgen_error(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "junk.caffemodel"
    path.write_bytes(payload)
    with pytest.raises(NetgenError, match="junk.caffemodel"):
        cp.read_caffemodel(path)


def test_caffemodel_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.caffemodel"
    path.write_bytes(cp.serialize_net(cp.parse_net(RESNET_HEAD)))
    size = path.stat().st_size
    with pytest.raises(NetgenError, match=f"big.caffemodel: {size} bytes"):
        cp.read_caffemodel(path, max_bytes=size - 1)
    assert cp.read_caffemodel(path, max_bytes=size).name == "ResNet-50"


def test_missing_caffemodel_is_a_netgen_error(tmp_path: Path) -> None:
    with pytest.raises(NetgenError, match="nope.caffemodel"):
        cp.read_caffemodel(tmp_path / "nope.caffemodel")


# --------------------------------------------------------------------------- text format


def test_prototxt_round_trip_with_legacy_input_header() -> None:
    net = cp.parse_net(RESNET_HEAD, "deploy.prototxt")
    assert list(net.input) == ["data"] and list(net.input_dim) == [1, 3, 224, 224]
    conv, bn, scale, relu, pool = net.layer
    assert conv.convolution_param.num_output == 64
    assert list(conv.convolution_param.kernel_size) == [7]
    assert conv.convolution_param.bias_term is True  # not written, so Caffe's default
    assert bn.batch_norm_param.use_global_stats is True
    assert scale.scale_param.bias_term is True
    assert relu.type == "ReLU" and not relu.HasField("relu_param")
    assert pool.pooling_param.pool == cp.PoolingParameter.MAX
    assert pool.pooling_param.stride == 2

    text = cp.format_message(net)
    assert cp.parse_net(text) == net
    assert cp.format_message(cp.parse_net(text)) == text
    # Field-number order: the net header first, layers (field 100) last.
    assert text.index("input_dim: 224") < text.index("layer {")
    assert 'pool: MAX' in text and "use_global_stats: true" in text


def test_parse_solver() -> None:
    solver = cp.parse_solver(
        'net: "train_val.prototxt"\ntest_iter: 100\ntest_interval: 1000\nbase_lr: 0.1\n'
        'lr_policy: "multistep"\nstepvalue: 32000\nstepvalue: 48000\nmomentum: 0.9\n'
        'weight_decay: 0.0001\nmax_iter: 64000\nsolver_mode: GPU\ntype: "SGD"\n')
    assert list(solver.stepvalue) == [32000, 48000]
    assert solver.base_lr == pytest.approx(0.1) and solver.max_iter == 64000
    assert cp.parse_solver(cp.format_message(solver)) == solver


@pytest.mark.parametrize(("text", "where"), [
    ('name: "x"\nlayer {\n  nonsense: 1\n}\n', "deploy.prototxt:3:"),
    ('layer { convolution_param { num_output: -3 } }', "deploy.prototxt:1:"),
    ('layer { name: "unterminated }', "deploy.prototxt:1:"),
    ('layer { pooling_param { pool: MEDIAN } }', "deploy.prototxt:1:"),
])
def test_parse_errors_name_the_source(text: str, where: str) -> None:
    with pytest.raises(NetgenError) as info:
        cp.parse_net(text, "deploy.prototxt")
    message = str(info.value)
    assert message.startswith(where) and "\n" not in message


def test_solver_parse_error() -> None:
    with pytest.raises(NetgenError, match=r"^solver.prototxt:1:\d+: "):
        cp.parse_solver("layer {}", "solver.prototxt")


# --------------------------------------------------------------------------- blobs


def test_blob_array_round_trip_and_shape() -> None:
    rng = np.random.default_rng(0)
    array = rng.standard_normal((4, 3, 2, 5)).astype(np.float32)
    blob = cp.blob_from_array(array)
    assert list(blob.shape.dim) == [4, 3, 2, 5] and len(blob.data) == array.size
    back = cp.array_from_blob(blob)
    assert back.dtype == np.float32 and back.flags.writeable
    np.testing.assert_array_equal(back, array)


def test_blob_from_float64_and_non_contiguous_arrays() -> None:
    array = np.arange(12, dtype=np.float64).reshape(3, 4).T  # Fortran-ordered view
    np.testing.assert_array_equal(cp.array_from_blob(cp.blob_from_array(array)), array)


def test_blob_empty_and_scalar() -> None:
    empty = cp.blob_from_array(np.zeros((0, 3), np.float32))
    assert cp.array_from_blob(empty).shape == (0, 3)
    scalar = cp.blob_from_array(np.float32(2.5))
    assert cp.array_from_blob(scalar).shape == () and float(cp.array_from_blob(scalar)) == 2.5


def test_blob_double_data_and_legacy_shape() -> None:
    blob = cp.BlobProto(num=1, channels=2, height=1, width=2)
    blob.double_data.extend([1.0, 2.0, 3.0, 4.0])
    back = cp.array_from_blob(blob)
    assert back.dtype == np.float32 and back.shape == (1, 2, 1, 2)
    np.testing.assert_array_equal(back.ravel(), [1, 2, 3, 4])


def test_blob_count_mismatch_is_a_netgen_error() -> None:
    blob = cp.BlobProto()
    blob.shape.dim.extend([2, 3])
    blob.data.extend([1.0] * 5)
    with pytest.raises(NetgenError, match="5 values .* needs 6"):
        cp.array_from_blob(blob)


def test_wire_fallback_reader_matches() -> None:
    """The reader used where protobuf lacks RepeatedScalarContainer.__array__ (4.x)."""
    array = np.linspace(-1, 1, 1001, dtype=np.float32)
    blob = cp.blob_from_array(array)
    blob.diff.extend([9.0] * 3)  # other packed fields must be skipped, not mixed in
    np.testing.assert_array_equal(cp._array_from_wire(blob, 5, "<f4"), array)
    double = cp.BlobProto()
    double.double_data.extend([0.25, -8.0])
    np.testing.assert_array_equal(cp._array_from_wire(double, 8, "<f8"), [0.25, -8.0])
    assert cp._array_from_wire(cp.BlobProto(), 5, "<f4").shape == (0,)


# --------------------------------------------------------------------------- shipped .proto


def test_shipped_caffe_proto_is_current() -> None:
    assert CAFFE_PROTO.read_text(encoding="utf-8") == cp.proto_text(), (
        "netgen/caffe/caffe.proto is stale: python -m netgen.caffe.proto > netgen/caffe/caffe.proto")


def test_module_main_prints_proto_text() -> None:
    out = subprocess.run([sys.executable, "-m", "netgen.caffe.proto"], check=True,
                         capture_output=True, text=True, cwd=Path(cp.__file__).parents[1])
    assert out.stdout == cp.proto_text()


_SCALARS = {
    descriptor.FieldDescriptor.TYPE_DOUBLE: "double", descriptor.FieldDescriptor.TYPE_FLOAT: "float",
    descriptor.FieldDescriptor.TYPE_INT64: "int64", descriptor.FieldDescriptor.TYPE_UINT64: "uint64",
    descriptor.FieldDescriptor.TYPE_INT32: "int32", descriptor.FieldDescriptor.TYPE_UINT32: "uint32",
    descriptor.FieldDescriptor.TYPE_BOOL: "bool", descriptor.FieldDescriptor.TYPE_STRING: "string",
}


def _parse_proto_text(text: str) -> tuple[dict, dict]:
    """A tiny reader for the flat proto2 subset proto_text() writes (no nested messages)."""
    fields: dict[tuple[str, str], tuple[str, str, int, str | None, bool]] = {}
    enums: dict[tuple[str, str], int] = {}
    message = enum = None
    for line in text.splitlines():
        line = line.split("//")[0].strip()
        if m := re.fullmatch(r"message (\w+) \{", line):
            message = m.group(1)
        elif m := re.fullmatch(r"enum (\w+) \{", line):
            enum = f"{message}.{m.group(1)}" if message else m.group(1)
        elif line == "}":
            if enum:
                enum = None
            else:
                message = None
        elif m := re.fullmatch(r"(\w+) = (-?\d+);", line):
            assert enum, line
            enums[(enum, m.group(1))] = int(m.group(2))
        elif m := re.fullmatch(r"(optional|repeated) (\w+) (\w+) = (\d+)(?: \[(.*)\])?;", line):
            assert message and not enum, line
            options = dict(o.split(" = ") for o in m.group(5).split(", ")) if m.group(5) else {}
            fields[(message, m.group(3))] = (m.group(1), m.group(2), int(m.group(4)),
                                             options.get("default"),
                                             options.get("packed") == "true")
        else:
            assert line in ("", 'syntax = "proto2";', "package caffe;"), line
    return fields, enums


def test_proto_text_describes_the_same_schema_as_the_descriptors() -> None:
    fields, enums = _parse_proto_text(cp.proto_text())
    seen = set()
    for mdesc in cp.DESCRIPTOR.message_types_by_name.values():
        for f in mdesc.fields:
            label, type_name, number, default, packed = fields[(mdesc.name, f.name)]
            seen.add((mdesc.name, f.name))
            assert number == f.number
            assert label == ("repeated" if _is_repeated(f) else "optional")
            expected_type = (_SCALARS.get(f.type) or (f.message_type or f.enum_type).name)
            assert type_name == expected_type, (mdesc.name, f.name)
            assert packed == f.GetOptions().packed
            assert (default is not None) == f.has_default_value, (mdesc.name, f.name)
            if default is not None:
                if f.type == f.TYPE_STRING:
                    assert default == f'"{f.default_value}"'
                elif f.type == f.TYPE_ENUM:
                    assert f.enum_type.values_by_name[default].number == f.default_value
                elif f.type == f.TYPE_BOOL:
                    assert default == str(f.default_value).lower()
                else:
                    assert float(default) == pytest.approx(f.default_value, rel=1e-6)
        for edesc in mdesc.enum_types:
            for v in edesc.values:
                assert enums[(f"{mdesc.name}.{edesc.name}", v.name)] == v.number
    assert seen == set(fields)
    assert enums[("Phase", "TEST")] == 1


def test_proto_text_agrees_with_upstream_table() -> None:
    fields, _ = _parse_proto_text(CAFFE_PROTO.read_text(encoding="utf-8"))
    for key, number in UPSTREAM_NUMBERS.items():
        assert fields[key][2] == number, key

"""train_val files in the shape other Caffe projects write them, not netgen's.

The CIFAR-10 ResNet-20 here follows the widely used Caffe CIFAR repositories: LMDB `Data`
layers per phase with a mean_file and mirroring but no crop (so the file never says the
images are 32x32), `msra` fillers, BatchNorm + Scale after every convolution, option B
projections (1x1 convolution + BatchNorm where the shape changes), a global average pool,
an fc layer and SoftmaxWithLoss / Accuracy heads. Layer names are the repository's kind
(conv1, bn1, scale1, relu1, res2_1_conv1, ...), none of netgen's or MSRA's, so no stage can
be told by name. The data layers can be swapped for ImageData or HDF5Data ones.
"""

from __future__ import annotations

from collections.abc import Callable

WIDTHS = (16, 32, 64)


def lmdb_data(phase: str) -> str:
    source = "train" if phase == "TRAIN" else "test"
    batch = 128 if phase == "TRAIN" else 100
    mirror = "\n    mirror: true" if phase == "TRAIN" else ""
    return f'''layer {{
  name: "cifar"
  type: "Data"
  top: "data"
  top: "label"
  include {{
    phase: {phase}
  }}
  transform_param {{{mirror}
    mean_file: "examples/cifar10/mean.binaryproto"
  }}
  data_param {{
    source: "examples/cifar10/cifar10_{source}_lmdb"
    batch_size: {batch}
    backend: LMDB
  }}
}}
'''


def image_data(phase: str, size: int = 32) -> str:
    source = "train" if phase == "TRAIN" else "val"
    return f'''layer {{
  name: "images"
  type: "ImageData"
  top: "data"
  top: "label"
  include {{
    phase: {phase}
  }}
  transform_param {{
    mean_value: 125
    mean_value: 123
    mean_value: 114
  }}
  image_data_param {{
    source: "data/cifar10/{source}.txt"
    root_folder: "data/cifar10/images/"
    batch_size: 64
    new_height: {size}
    new_width: {size}
    shuffle: {"true" if phase == "TRAIN" else "false"}
  }}
}}
'''


def hdf5_data(source: str) -> Callable[[str], str]:
    def layer(phase: str) -> str:
        return f'''layer {{
  name: "h5"
  type: "HDF5Data"
  top: "data"
  top: "label"
  include {{
    phase: {phase}
  }}
  hdf5_data_param {{
    source: "{source}"
    batch_size: 50
  }}
}}
'''
    return layer


def _conv(name: str, bottom: str, out: int, kernel: int, stride: int) -> str:
    return f'''layer {{
  name: "{name}"
  type: "Convolution"
  bottom: "{bottom}"
  top: "{name}"
  param {{
    lr_mult: 1
    decay_mult: 1
  }}
  convolution_param {{
    num_output: {out}
    pad: {kernel // 2}
    kernel_size: {kernel}
    stride: {stride}
    bias_term: false
    weight_filler {{
      type: "msra"
    }}
  }}
}}
'''


def _bn_scale(bn: str, scale: str, blob: str) -> str:
    stats = "  param {\n    lr_mult: 0\n    decay_mult: 0\n  }\n" * 3
    return f'''layer {{
  name: "{bn}"
  type: "BatchNorm"
  bottom: "{blob}"
  top: "{blob}"
{stats}}}
layer {{
  name: "{scale}"
  type: "Scale"
  bottom: "{blob}"
  top: "{blob}"
  scale_param {{
    bias_term: true
  }}
}}
'''


def _relu(name: str, blob: str) -> str:
    return f'layer {{\n  name: "{name}"\n  type: "ReLU"\n  bottom: "{blob}"\n  top: "{blob}"\n}}\n'


def cifar_resnet_train_val(n: int = 3, data: Callable[[str], str] = lmdb_data,
                           name: str = "CIFAR10_ResNet20") -> str:
    """ResNet-(6n+2) for CIFAR-10 with option B shortcuts, as such repositories write it."""
    parts = [f'name: "{name}"\n', data("TRAIN"), data("TEST"),
             _conv("conv1", "data", WIDTHS[0], 3, 1), _bn_scale("bn1", "scale1", "conv1"),
             _relu("relu1", "conv1")]
    blob, channels = "conv1", WIDTHS[0]
    for stage, width in enumerate(WIDTHS, start=2):
        for block in range(1, n + 1):
            p = f"res{stage}_{block}"
            stride = 2 if block == 1 and stage > 2 else 1
            parts += [_conv(f"{p}_conv1", blob, width, 3, stride),
                      _bn_scale(f"{p}_bn1", f"{p}_scale1", f"{p}_conv1"),
                      _relu(f"{p}_relu1", f"{p}_conv1"),
                      _conv(f"{p}_conv2", f"{p}_conv1", width, 3, 1),
                      _bn_scale(f"{p}_bn2", f"{p}_scale2", f"{p}_conv2")]
            shortcut = blob
            if stride != 1 or channels != width:
                parts += [_conv(f"{p}_proj", blob, width, 1, stride),
                          _bn_scale(f"{p}_proj_bn", f"{p}_proj_scale", f"{p}_proj")]
                shortcut = f"{p}_proj"
            parts.append(f'''layer {{
  name: "{p}_sum"
  type: "Eltwise"
  bottom: "{shortcut}"
  bottom: "{p}_conv2"
  top: "{p}_sum"
  eltwise_param {{
    operation: SUM
  }}
}}
''')
            parts.append(_relu(f"{p}_relu", f"{p}_sum"))
            blob, channels = f"{p}_sum", width
    parts.append(f'''layer {{
  name: "pool"
  type: "Pooling"
  bottom: "{blob}"
  top: "pool"
  pooling_param {{
    pool: AVE
    global_pooling: true
  }}
}}
layer {{
  name: "fc"
  type: "InnerProduct"
  bottom: "pool"
  top: "fc"
  param {{
    lr_mult: 1
    decay_mult: 1
  }}
  param {{
    lr_mult: 2
    decay_mult: 0
  }}
  inner_product_param {{
    num_output: 10
    weight_filler {{
      type: "msra"
    }}
    bias_filler {{
      type: "constant"
      value: 0
    }}
  }}
}}
layer {{
  name: "loss"
  type: "SoftmaxWithLoss"
  bottom: "fc"
  bottom: "label"
  top: "loss"
}}
layer {{
  name: "accuracy"
  type: "Accuracy"
  bottom: "fc"
  bottom: "label"
  top: "accuracy"
  include {{
    phase: TEST
  }}
}}
''')
    return "".join(parts)

"""netgen: the residual networks of He et al. (CVPR 2016) as Caffe prototxt and ONNX."""

__version__ = "0.1.0"

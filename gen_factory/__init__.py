"""gen_factory: conditional GANs trained with Ray Train, tracked in MLflow, served from ONNX."""

__version__ = "0.1.0"

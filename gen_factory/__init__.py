"""gen_factory: conditional GANs trained with Ray Train, tracked in MLflow, served from ONNX."""

__version__ = "0.1.0"
__all__ = ["Synthesizer"]


def __getattr__(name: str):
    """`from gen_factory import Synthesizer`, as scikit-learn and SDV users type it, without importing
    the training stack for every `import gen_factory` (serving replicas, bulk actors, the CLI)."""
    if name == "Synthesizer":
        from gen_factory.synthesizer import Synthesizer

        return Synthesizer
    raise AttributeError(f"module 'gen_factory' has no attribute {name!r}")

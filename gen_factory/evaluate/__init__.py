"""Quality measures of generated data against the real data it imitates."""

from gen_factory.evaluate.fidelity import column_moments, label_fidelity

__all__ = ["column_moments", "label_fidelity"]

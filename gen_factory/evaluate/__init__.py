"""Quality measures of generated data against the real data it imitates."""

from gen_factory.evaluate.fidelity import label_fidelity
from gen_factory.evaluate.tables import evaluate_table, headline

__all__ = ["evaluate_table", "headline", "label_fidelity"]

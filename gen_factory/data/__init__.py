"""Datasets: loading (bundled, tables, image arrays), validation and reversible encodings."""

from gen_factory.data.datasets import ImageData, TableData, load_dataset, split, training_split
from gen_factory.data.validate import DataValidationError

__all__ = ["DataValidationError", "ImageData", "TableData", "load_dataset", "split", "training_split"]

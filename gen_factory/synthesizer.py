"""The Python API a data scientist expects: `fit(df, label=...)`, `sample(n or counts, seed=...)`,
save/load through the MLflow registry by `name@alias`.

`fit` takes the same path as `genfactory train` (validation, Ray Train, ONNX export, evaluation,
registration); `sample` runs the registered ONNX generator, so rows are identical to what the
HTTP API and `genfactory pull` return for the same model, counts and seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gen_factory import registry, settings
from gen_factory.data.datasets import table_from_frame
from gen_factory.data.schema import to_pandas
from gen_factory.data.validate import DataValidationError
from gen_factory.runtime.onnx_model import OnnxModel
from gen_factory.runtime.sampling import generate_table, resolve_counts


class Synthesizer:
    """A conditional table GAN registered as `name`; `load` one that is, or `fit` a new version."""

    def __init__(self, name: str, *, epochs: int | None = None, num_workers: int = 1, seed: int = 0,
                 refit: bool = True, warm_refit: bool = True):
        """`refit`: after a fit on 70 % of the rows measures quality on the other 30 % (`metrics`), the
        model that ships trains on every row (False: ship the 70 % model, in less time); `warm_refit`:
        that refit goes on from the 70 % model's networks for a quarter of the epochs (False: from
        scratch for all of them)."""
        self.name, self.epochs, self.num_workers, self.seed = name, epochs, num_workers, seed
        self.refit, self.warm_refit = refit, warm_refit
        self.model: OnnxModel | None = None
        self.ref: registry.ModelRef | None = None
        self.metrics: dict = {}

    def fit(self, df: pd.DataFrame, label: str, alias: str | None = settings.DEFAULT_ALIAS,
            column_types: dict[str, str] | None = None) -> "Synthesizer":
        """Validate `df` (errors name the column), train on Ray, register a new version of `name`.
        `column_types` overrides inferred types: {"zip": "categorical"} models a numeric column as
        categories."""
        from gen_factory.services.pipeline import TrainJob, train_and_register

        path = settings.data_dir() / "datasets" / f"{self.name}.parquet"
        job = TrainJob(str(path), model_name=self.name, label_column=label, epochs=self.epochs,
                       num_workers=self.num_workers, seed=self.seed, alias=alias, column_types=column_types,
                       refit=self.refit, warm_refit=self.warm_refit)
        table_from_frame(
            df, label, categorical=sorted(column_types or {})
        )  # refuse bad input before any write
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(path)
        summary = train_and_register(job, log=lambda *_: None)
        self.metrics = summary["metrics"]
        return self._open(summary["ref"])

    @classmethod
    def load(cls, ref: str) -> "Synthesizer":
        """`name@alias`, `name/version` or `name` (its champion) from the registry."""
        resolved = registry.resolve(ref)
        return cls(resolved.name)._open(resolved)

    def sample(self, n: int | None = None, *, counts: dict[str, int] | None = None, seed: int = 0,
               conditions: dict | list | None = None) -> pd.DataFrame:
        """`n` rows in the training label proportions, or exactly `counts` rows per label; `conditions`
        fixes categorical columns exactly: {"city": {"lima": 30, "oslo": 20}} (that many rows of each,
        placed at random), or one {column: category} per row in label order."""
        if self.model is None:
            raise DataValidationError(
                "synthesizer", "not fitted", "call fit(df, label=...) or Synthesizer.load(ref)"
            )
        if (n is None) == (counts is None):
            raise DataValidationError(
                "sample", "both or neither of n / counts", "give n rows or counts per label"
            )
        if counts is None:
            if self.model.card.label_counts is None:
                raise DataValidationError("n", n, "this model's card has no training label counts (it was "
                                          "trained before they were kept): give counts per label")
            shares = apportion(n, self.model.card.label_counts)
            counts = dict(zip(self.model.label_names, shares, strict=True))
        table = generate_table(
            self.model, resolve_counts(self.model.label_names, counts), seed, conditions=conditions
        )
        return to_pandas(table)  # the frame's own dtypes, `object` strings included

    def augment(self, df: pd.DataFrame, ratio: float = 1.0, classes: list[str] | None = None, *,
                synthetic_only: bool = False, seed: int = 0, spread: float | None = None) -> pd.DataFrame:
        """`df`'s rows as given, then `ratio` synthetic rows per real row of each label (only `classes`
        if given), in `df`'s schema, with a boolean `synthetic` column: what `genfactory augment`
        writes. The label column is the one the model was trained with; `spread` makes each synthetic
        row a variation of a real row of its class (`genfactory augment --spread`)."""
        from gen_factory.services.augmentation import build_augmentation, frame_real

        if self.model is None:
            raise DataValidationError(
                "synthesizer", "not fitted", "call fit(df, label=...) or Synthesizer.load(ref)"
            )
        real, rows = frame_real(self.model, df)
        table = build_augmentation(self.model, real, ratio, classes, synthetic_only, seed, spread=spread,
                                   real_rows=rows)
        return to_pandas(table)

    def _open(self, ref: registry.ModelRef) -> "Synthesizer":
        self.ref, self.model = ref, OnnxModel(registry.download(ref))
        return self


def apportion(n: int, weights: list[int]) -> list[int]:
    """Split `n` in proportion to `weights`, whole numbers summing to n (largest remainders first)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataValidationError("n", repr(n), "ask for a whole number of rows >= 1")
    share = n * np.asarray(weights, dtype=np.float64) / np.sum(weights)
    out = np.floor(share).astype(int)
    out[np.argsort(-(share - out), kind="stable")[: n - out.sum()]] += 1
    return out.tolist()

"""One call for everything measured on a synthetic table: quality, utility (TSTR) and privacy."""

from __future__ import annotations

import pandas as pd

from gen_factory.evaluate.privacy import distance_to_closest_record
from gen_factory.evaluate.quality import column_kinds, quality_report
from gen_factory.evaluate.utility import tstr


def evaluate_table(real: pd.DataFrame, synth: pd.DataFrame, holdout: pd.DataFrame, label: str,
                   categorical: set[str] | None = None, seed: int = 0) -> dict:
    """Real training rows vs synthetic rows (same columns, label included), judged on the real hold-out.

    Returns {"quality": {...}, "tstr": {accuracy, macro_f1}, "trtr": the same for a forest trained
    on the real rows (the ceiling), "privacy": DCR figures}.
    """
    from gen_factory.data.validate import DataValidationError

    missing = [c for c in real.columns if c not in synth.columns]
    if missing:
        raise DataValidationError("synthetic", f"missing column(s) {missing[:5]}",
                                  "generate every column of the real table")
    synth = synth[list(real.columns)]
    kinds = column_kinds(real, (categorical or set()) | {label})
    cats = {c for c, k in kinds.items() if k == "categorical"}
    return {"quality": quality_report(real, synth, cats),
            "tstr": tstr(synth, holdout, label, cats, seed),
            "trtr": tstr(real, holdout, label, cats, seed),
            "privacy": distance_to_closest_record(synth, real, holdout, cats, seed=seed)}


def headline(result: dict) -> dict[str, float]:
    """The flat figures worth a metric each in MLflow."""
    q = result["quality"]
    return {
        "quality": q["quality"],
        "column_shapes": q["column_shapes"],
        "column_pair_trends": q["column_pair_trends"],
        "tstr_accuracy": result["tstr"]["accuracy"],
        "tstr_macro_f1": result["tstr"]["macro_f1"],
        "real_accuracy": result["trtr"]["accuracy"],
        "real_macro_f1": result["trtr"]["macro_f1"],
        **result["privacy"],
    }

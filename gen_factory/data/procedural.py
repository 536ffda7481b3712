"""A procedural mixed-type table (no download): customers of a subscription service and their churn.

It has what real business tables have and the bundled sklearn sets lack: categorical columns
(one with a rare value), integers with bounds, a bimodal skewed amount rounded to cents, missing
values, and a label that depends on several columns at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def customers(n: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    region = rng.choice(["north", "south", "east", "west", "islands"], n, p=[0.35, 0.3, 0.2, 0.12, 0.03])
    age = np.clip(np.round(rng.normal(42, 13, n)), 18, 85).astype(np.int64)
    student = rng.random(n) < 0.25
    income = np.where(student, rng.lognormal(9.6, 0.3, n), rng.lognormal(10.9, 0.35, n))
    plan_score = np.log(income) + rng.normal(0, 0.4, n)
    plan = np.select([plan_score < 10.3, plan_score < 11.1], ["basic", "plus"], "pro")
    tenure = np.clip(rng.exponential(30, n), 0, 120).astype(np.int64)
    base = pd.Series(plan).map({"basic": 9.99, "plus": 19.99, "pro": 39.99}).to_numpy()
    spend = np.round(base + rng.gamma(2.0, 4.0, n) * (plan != "basic"), 2)
    calls = rng.poisson(np.where(plan == "basic", 2.5, 1.0))
    logit = (
        -1.2
        + 0.45 * calls
        - 0.03 * tenure
        + 0.9 * (plan == "basic")
        + 0.8 * (region == "islands")
        - 0.01 * (age - 42)
    )
    churn = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    income = np.round(income, 2)
    income[rng.random(n) < 0.08] = np.nan  # not everybody tells
    return pd.DataFrame(
        {
            "region": region,
            "age": age,
            "income": income,
            "plan": plan,
            "tenure_months": tenure,
            "monthly_spend": spend,
            "support_calls": calls,
            "churn": churn,
        }
    )


def loans(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Loan applications and how they ended: the table that exercises every column shape at once.

    Recipe (issue 16's fourth bench table): a timestamp with a zone (`applied_at`, minutes over two
    years); a category of 300 values with Zipf-like frequencies (`branch`); few-valued integers
    (`dependents` 0-5, `term_months` on 12..60 by 12); a mixed column, 0 for 70 % of rows else a
    count (`past_delinquencies`); long right tails (`amount`, Pareto; `income`, lognormal, missing
    in 0.5 % of rows); a bounded integer with rare missing values (`credit_score`, 1 %); a string
    category (`employment`); and a string label with a rare class (`outcome`: ~5 % `default`) that
    depends on several columns at once.
    """
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-01-01", tz="UTC")
    applied_at = start + pd.to_timedelta(np.sort(rng.integers(0, 2 * 365 * 24 * 60, n)), unit="min")
    weights = 1 / np.arange(1, 301) ** 1.1
    branch = rng.choice([f"B{i:03d}" for i in range(300)], n, p=weights / weights.sum())
    employment = rng.choice(["salaried", "self-employed", "retired", "student"], n, p=[0.6, 0.2, 0.12, 0.08])
    dependents = rng.choice(6, n, p=[0.35, 0.25, 0.2, 0.12, 0.05, 0.03])
    term = rng.choice([12, 24, 36, 48, 60], n, p=[0.1, 0.2, 0.35, 0.15, 0.2])
    income = np.round(rng.lognormal(10.6, 0.6, n) * np.where(employment == "student", 0.3, 1.0), 2)
    amount = np.round(2000 * (1 + rng.pareto(2.5, n)) * (1 + term / 60), 2)
    score = np.clip(np.round(rng.normal(680, 60, n) + 15 * np.log(income / 40_000)), 300, 850)
    delinquencies = np.where(rng.random(n) < 0.7, 0, 1 + rng.poisson(1.5, n))
    logit = -2.0 + 0.9 * delinquencies / 3 - (score - 680) / 50 + 0.4 * np.log(amount / income * 10)
    late = rng.random(n) < 1 / (1 + np.exp(-logit))
    default = late & (rng.random(n) < 0.25 + 0.1 * (employment == "self-employed"))
    outcome = np.where(default, "default", np.where(late, "late", "repaid"))
    income[rng.random(n) < 0.005] = np.nan
    credit_score = pd.array(score.astype(np.int64), dtype="Int64")
    credit_score[rng.random(n) < 0.01] = pd.NA
    return pd.DataFrame(
        {
            "applied_at": applied_at,
            "branch": branch,
            "employment": employment,
            "dependents": dependents.astype(np.int64),
            "term_months": term.astype(np.int64),
            "amount": amount,
            "income": income,
            "credit_score": credit_score,
            "past_delinquencies": delinquencies.astype(np.int64),
            "outcome": outcome,
        }
    )


USER_SHAPED = ("wine_shop", "clinic", "flowers")


def user_shaped(name: str, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """(frame, label column): a bundled sklearn table the way users bring their own CSV, the shape a
    first try breaks on: a string label in the middle of the columns, a string column tied to the
    label, an integer column, a few missing values and one absurd outlier (a value 50x its column's
    largest). `wine_shop` (wine, label `cultivar`), `clinic` (breast_cancer, `diagnosis`), `flowers`
    (iris, `species`)."""
    from sklearn import datasets as skd

    base, label, names, tied, places = {
        "wine_shop": (skd.load_wine, "cultivar", ["barolo", "barbera", "grignolino"], "region",
                      [("piemonte", "lombardia"), ("toscana", "piemonte"), ("lombardia", "veneto")]),
        "clinic": (skd.load_breast_cancer, "diagnosis", ["malignant", "benign"], "clinic",
                   [("north", "central"), ("south", "central")]),
        "flowers": (skd.load_iris, "species", ["setosa", "versicolor", "virginica"], "garden",
                    [("kew", "edinburgh"), ("kew", "wisley"), ("wisley", "edinburgh")]),
    }[name]
    d = base(as_frame=True)
    rng = np.random.default_rng(seed)
    frame = d.data.iloc[:, :13].copy()
    target = d.target.to_numpy()
    frame["vintage" if name == "wine_shop" else "visits"] = (
        rng.integers(2000, 2020, len(frame)) if name == "wine_shop" else rng.poisson(2 + target, len(frame))
    ).astype(np.int64)
    common = rng.random(len(frame)) < 0.8  # each label's usual place 80 % of the time, its second otherwise
    frame[tied] = [places[t][0] if c else places[t][1] for t, c in zip(target, common, strict=True)]
    numeric = frame.columns[:2]
    for col in numeric:  # a few values nobody entered
        frame.loc[rng.random(len(frame)) < 0.03, col] = np.nan
    frame.loc[rng.random(len(frame)) < 0.02, tied] = None
    outlier = frame.columns[min(3, len(numeric))]
    frame.loc[int(rng.integers(len(frame))), outlier] = float(frame[outlier].max()) * 50
    frame.insert(frame.shape[1] // 2, label, np.asarray(names, dtype=object)[target])
    return frame.reset_index(drop=True), label

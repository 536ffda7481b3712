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

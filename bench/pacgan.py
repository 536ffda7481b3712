"""PacGAN (Lin et al. 2018) on tables: does a critic that judges packs of rows beat the default?

The PacGAN critic sees `pac` rows at once (their values, one-hot labels and cond vectors
concatenated), so a generator that collapses onto a few modes is easy to tell from real data.
Trained, sampled and scored exactly as gen_factory in bench/tabular_quality.py (in-process
`train_table`: same generator, steps and selection; 5 synthetic draws). Not the default: a packed critic
cannot score one row, and the critic and f-AnoGAN scores need that (gen_factory/runtime/scoring.py).

Run: `python bench/pacgan.py [--tables breast_cancer customers wine] [--pacs 4 8]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tabular_quality import run_gen_factory  # noqa: E402

from gen_factory.data import load_dataset, split  # noqa: E402
from gen_factory.evaluate.tables import evaluate_table, headline  # noqa: E402
from gen_factory.train.hyper import resolve_hyper  # noqa: E402


class PackedCritic(nn.Module):
    """Critic over packs of `pac` consecutive rows: [B, features] -> [B / pac] scores."""

    def __init__(self, n_labels: int, n_features: int, cond_dim: int, pac: int, hidden: int = 256):
        super().__init__()
        self.n_labels, self.cond_dim, self.pac = n_labels, cond_dim, pac
        width = pac * (n_features + n_labels + cond_dim)
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                 nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(
        self, x: torch.Tensor, labels: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        parts = [x, F.one_hot(labels, self.n_labels).to(x.dtype)]
        if self.cond_dim:
            parts.append(cond if cond is not None else x.new_zeros(len(x), self.cond_dim))
        return self.net(torch.cat(parts, dim=1).reshape(len(x) // self.pac, -1)).squeeze(1)


def scores(train, holdout, epochs: int, pac: int | None) -> dict:
    critic = (lambda spec: PackedCritic(spec.n_labels, spec.shape[0], spec.cond_dim, pac)) if pac else None
    with tempfile.TemporaryDirectory() as tmp:
        draws, timing = run_gen_factory(train, Path(tmp), epochs, critic=critic)
    heads = [
        headline(evaluate_table(train.frame(), synth, holdout.frame(), train.label_column)) for synth in draws
    ]
    return {
        "fit_seconds": timing["fit_seconds"],
        **{k: float(np.mean([h[k] for h in heads])) for k in ("quality", "tstr_accuracy", "tstr_macro_f1")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", nargs="+", default=["breast_cancer", "customers", "wine"])
    parser.add_argument("--pacs", nargs="+", type=int, default=[4, 8])
    args = parser.parse_args()
    print(f"{'table':<14}{'critic':<12}{'quality':>9}{'TSTR acc':>10}{'TSTR F1':>9}{'fit s':>7}", flush=True)
    for name in args.tables:
        train, holdout = split(load_dataset(name), 0.3, 0)
        epochs = resolve_hyper("table", len(train.labels)).epochs
        for pac in [None, *args.pacs]:
            r = scores(train, holdout, epochs, pac)
            print(
                f"{name:<14}{'default' if pac is None else f'pac {pac}':<12}{r['quality']:>9.3f}"
                f"{r['tstr_accuracy']:>10.3f}{r['tstr_macro_f1']:>9.3f}{r['fit_seconds']:>7.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()

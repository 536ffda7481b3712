"""A self-contained HTML report: the headline figures, per-column distributions real vs synthetic,
and the correlation heat maps side by side. Plots are PNGs embedded as base64 (one file to share)."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _column_plot(real: pd.Series, synth: pd.Series, kind: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.2, 2.2))
    if kind == "numerical":
        r, s = real.dropna().to_numpy(float), synth.dropna().to_numpy(float)
        edges = np.histogram_bin_edges(r, bins=30)
        ax.hist(r, bins=edges, density=True, alpha=0.5, label="real")
        ax.hist(np.clip(s, edges[0], edges[-1]), bins=edges, density=True, alpha=0.5, label="synthetic")
    else:
        p = real.astype(str).value_counts(normalize=True)
        q = synth.astype(str).value_counts(normalize=True).reindex(p.index, fill_value=0.0)
        x = np.arange(len(p))
        ax.bar(x - 0.2, p.to_numpy(), 0.4, label="real")
        ax.bar(x + 0.2, q.to_numpy(), 0.4, label="synthetic")
        ax.set_xticks(x, p.index, rotation=45, fontsize=6)
    ax.set_title(str(real.name), fontsize=8)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6)
    return _png(fig)


def _heatmaps(real: pd.DataFrame, synth: pd.DataFrame) -> str:
    import matplotlib.pyplot as plt

    numeric = [c for c in real.columns if pd.api.types.is_numeric_dtype(real[c])]
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, frame, title in ((axes[0], real, "real"), (axes[1], synth, "synthetic")):
        im = ax.imshow(frame[numeric].astype(float).corr().to_numpy(), vmin=-1, vmax=1, cmap="coolwarm")
        ax.set_title(f"Pearson correlation, {title}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8)
    return _png(fig)


MAX_COLUMN_PLOTS = 24  # a wide table's report shows the columns that most need a look (200 plots took 40 s)


def _columns_to_plot(columns: list[str], shapes: dict[str, float]) -> list[str]:
    """Every column in table order, or, past MAX_COLUMN_PLOTS, those with the lowest shape scores."""
    if len(columns) <= MAX_COLUMN_PLOTS:
        return columns
    worst = set(sorted(columns, key=lambda c: shapes.get(c, 0.0))[:MAX_COLUMN_PLOTS])
    return [c for c in columns if c in worst]


def html_report(result: dict, real: pd.DataFrame, synth: pd.DataFrame, title: str) -> str:
    """HTML text for `result` (from `evaluate_table`) with plots of `real` vs `synth`."""
    import matplotlib

    matplotlib.use("Agg")
    q = result["quality"]
    rows = [("quality (SDMetrics definition)", q["quality"]), ("column shapes", q["column_shapes"]),
            ("column pair trends", q["column_pair_trends"])]
    rows += [(f"TSTR {k}", v) for k, v in result.get("tstr", {}).items()]
    rows += [(f"real (TRTR) {k}", v) for k, v in result.get("trtr", {}).items()]
    rows += list(result.get("privacy", {}).items())
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in rows)
    shapes = "".join(f"<tr><td>{html.escape(c)}</td><td>{q['kinds'][c]}</td><td>{v:.4f}</td></tr>"
                     for c, v in q["shapes"].items())
    shown = _columns_to_plot(list(real.columns), q["shapes"])
    plots = "".join(f'<img src="data:image/png;base64,{_column_plot(real[c], synth[c], q["kinds"][c])}">'
                    for c in shown)
    if len(shown) < len(real.columns):
        plots = (f"<p>The {len(shown)} of {len(real.columns)} columns with the lowest shape score; every "
                 f"column's score is in the table below.</p>{plots}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td{padding:2px 10px}img{margin:2px}</style>"
        "</head><body>"
        f"<h1>{html.escape(title)}</h1><h2>Summary</h2><table>{table}</table>"
        f"<h2>Correlations</h2><img src='data:image/png;base64,{_heatmaps(real, synth)}'>"
        f"<h2>Column distributions</h2>{plots}"
        f"<h2>Column shapes</h2><table><tr><th>column</th><th>type</th><th>score</th></tr>{shapes}</table>"
        "</body></html>"
    )

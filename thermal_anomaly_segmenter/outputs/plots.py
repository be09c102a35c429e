"""Plots: training curves and the precision-recall curve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from thermal_anomaly_segmenter.io.atomic import atomic_path


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display anywhere TASeg runs
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, out: Path) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100)
    pyplot().close(fig)


def plot_pr_curve(curve: list[dict[str, float]], best: dict[str, float], out: Path,
                  title: str) -> Path:
    """Pixel and object precision-recall over the sweep, the best-F1 threshold marked."""
    fig, ax = pyplot().subplots(figsize=(6, 5))
    ax.plot([r["recall"] for r in curve], [r["precision"] for r in curve], marker=".",
            label="pixels")
    ax.plot([r["object_recall"] for r in curve], [r["object_precision"] for r in curve],
            marker=".", label="objects")
    ax.scatter([best["recall"]], [best["precision"]], color="red", zorder=3,
               label=f"best pixel F1 {best['f1']:.3f} at {best['threshold']:.2f}")
    for r in curve[::3]:
        ax.annotate(f"{r['threshold']:.2f}", (r["recall"], r["precision"]), fontsize=6)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, out)
    return out


def plot_reliability(table: list[dict[str, float]], ece: float, out: Path, title: str) -> Path:
    """Reliability diagram: observed anomaly frequency against predicted probability per bin
    (the diagonal is perfect calibration), with each bin's share of pixels."""
    fig, (ax, ax_n) = pyplot().subplots(2, 1, figsize=(5, 6), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="calibrated")
    ax.plot([r["predicted"] for r in table], [r["observed"] for r in table], marker="o",
            label=f"model (ECE {ece:.3f})")
    ax.set(ylabel="observed anomaly frequency", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    total = sum(r["pixels"] for r in table) or 1
    ax_n.bar([(r["low"] + r["high"]) / 2 for r in table], [r["pixels"] / total for r in table],
             width=0.09)
    ax_n.set(xlabel="predicted probability", ylabel="share of pixels", yscale="log")
    fig.tight_layout()
    save_figure(fig, out)
    return out

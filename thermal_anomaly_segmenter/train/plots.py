"""Training curves of a run: loss and validation scores over every phase's epochs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from thermal_anomaly_segmenter.outputs.plots import pyplot, save_figure

if TYPE_CHECKING:
    from thermal_anomaly_segmenter.train.recipe import PhaseRecipe


def plot_curves(run_dir: Path, recipes: list[PhaseRecipe], out: Path) -> Path | None:
    """Loss and validation IoU over every phase's epochs, phases separated by lines."""
    from thermal_anomaly_segmenter.train.runs import (
        epoch_rows,  # the run's CSV; training has Lightning loaded
    )

    fig, (ax_loss, ax_iou) = pyplot().subplots(1, 2, figsize=(11, 4))
    offset = 0
    for recipe in recipes:
        rows = epoch_rows(run_dir / recipe.name / "metrics.csv")
        if not rows:
            continue
        x = [offset + int(r["epoch"]) + 1 for r in rows]
        for ax, key in ((ax_loss, "train_loss"), (ax_loss, "val_loss"),
                        (ax_iou, "val_dataset_iou"), (ax_iou, "val_object_recall"),
                        (ax_iou, "val_object_precision")):
            y = [r.get(key, math.nan) for r in rows]
            ax.plot(x, y, marker=".", label=f"{recipe.name}: {key}")
        offset += max(recipe.epochs, int(rows[-1]["epoch"]) + 1)
        for ax in (ax_loss, ax_iou):
            ax.axvline(offset + 0.5, color="grey", lw=0.5, ls="--")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_iou.set(xlabel="epoch", ylabel="score", title="validation", ylim=(0, 1))
    for ax in (ax_loss, ax_iou):
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out)
    return out

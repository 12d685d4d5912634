"""The report's figures, drawn from the saved tables (matplotlib imported when drawing).

- ``fisher_tasks.png``: per model, the Fisher per parameter of each split (classification
  task ``private`` against the MI task ``inverted``), absolute on a log scale, and beside it
  each split's share of its own total trace, F_l / sum_k F_k, so that the shapes compare
  whatever the scale; the legend says the estimator and n of each split.
- ``attacks.png``: attack top-1 (evaluator) against the target's natural accuracy, one point
  per model and attack, chance as a dashed line.
- ``training.png``: private-test (or validation) accuracy per epoch of each model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fisher_mi.io import atomic_path
from fisher_mi.report.runs import AttackRun, FisherRun, ModelRun

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURES = "figures"
FISHER_FIGURE = "fisher_tasks.png"
ATTACK_FIGURE = "attacks.png"
TRAINING_FIGURE = "training.png"
DPI = 110


def _save(fig: object, path: Path) -> Path:
    fig.tight_layout()  # type: ignore[attr-defined]
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})  # type: ignore[attr-defined]
    return path


def task_profiles_figure(runs: Sequence[FisherRun]) -> Figure:
    """Per Fisher table a row of two panels: absolute per parameter (log) and share of trace,
    one line per (split, estimator); the paper's figure (classification task against MI task,
    per model). Also shown inline by ``notebooks/01_fisher_profile.ipynb``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.4 * len(runs)))
    axes = fig.subplots(len(runs), 2, squeeze=False)
    for (absolute, share), run in zip(axes, runs, strict=True):
        table = run.table.sort_values("depth")
        for (split, fisher), rows in table.groupby(["split", "fisher"], sort=True):
            label = f"{split} ({fisher}, n={int(rows['n_samples'].iloc[0])})"
            total = rows["fisher_trace"].sum()
            absolute.plot(rows["depth"], rows["fisher_per_param"], marker="o", label=label)
            share.plot(rows["depth"], rows["fisher_trace"] / total, marker="o", label=label)
        if (table["fisher_per_param"] > 0).any():
            absolute.set_yscale("log", nonpositive="mask")
        absolute.set_ylabel("Fisher per parameter")
        share.set_ylabel("share of the split's trace")
        for ax, what in ((absolute, "absolute"), (share, "normalised per split")):
            ax.set_title(f"{run.name}: {what}", fontsize=9)
            ax.set_xlabel("layer depth (input → output)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    return fig


def plot_task_profiles(runs: Sequence[FisherRun], path: Path) -> Path:
    """Save ``task_profiles_figure(runs)`` as PNG at ``path``, atomically."""
    return _save(task_profiles_figure(runs), path)


def plot_attacks(attacks: Sequence[AttackRun], path: Path) -> Path:
    """Attack top-1 against natural accuracy, one point per (model, attack)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.2))
    ax = fig.subplots()
    for attack in attacks:
        metrics = attack.metrics
        x, y = metrics["natural_accuracy"], metrics["top1"]["mean"]
        ax.scatter([x], [y], label=f"{attack.model} / {attack.method}")
    chances = {a.metrics["baselines"]["chance"]["top1"] for a in attacks}
    for chance in sorted(chances):
        ax.axhline(chance, color="0.4", linestyle="--", linewidth=0.8, label=f"chance {chance:.2f}")
    ax.set_xlabel("natural accuracy (private-test)")
    ax.set_ylabel("attack top-1 (evaluator)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_training(models: Sequence[ModelRun], path: Path) -> Path:
    """Accuracy per epoch: private-test where measured, else validation (public pre-training)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.0))
    ax = fig.subplots()
    for model in models:
        history = model.history
        column = (
            "test_accuracy" if history["test_accuracy"].notna().any() else "validation_accuracy"
        )
        ax.plot(history["epoch"], history[column], marker="o", label=f"{model.name} ({column})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)

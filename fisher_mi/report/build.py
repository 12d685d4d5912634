"""``build_report``: ``report.md`` and its figures, rebuilt from saved runs alone.

Everything shown is read from the files the runs saved (``runs.read_runs``), in a fixed order,
with no clock read here: the same folders give the same ``report.md``, byte for byte, on any
machine (the figures are redrawn too). Rates and distances are printed with 6 decimals, so
the report can be checked against a re-scoring (``fisher-mi evaluate``) to 1e-6.

Comparisons (undefended target against a TL-DMI one, per attack, within one group of models:
a demo, or one seed of a sweep or comparison) need the same attack protocol: two runs whose
protocols differ in anything but what names the target (the model, its prior, its
surrogates) are refused. A comparison is "inconclusive" where the undefended
attack does not beat both chance (its binomial p-value is not below ``VERDICT_ALPHA``) and
its own prior (``baselines.verdict``): then no drop under TL-DMI can be read as a defence.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fisher_mi.errors import ConfigError
from fisher_mi.evaluate.scoring import BEATS_PRIOR, VERDICT_ALPHA
from fisher_mi.experiments.compare import COMPARE_PNG, compare_series
from fisher_mi.experiments.sweep_stats import sweep_series
from fisher_mi.experiments.sweep_table import SWEEP_PNG
from fisher_mi.io import write_text
from fisher_mi.report.compare import plot_compare
from fisher_mi.report.compare_section import compare_markdown
from fisher_mi.report.markdown import number, pipe_table, rate
from fisher_mi.report.run_figures import (
    ATTACK_FIGURE,
    FIGURES,
    FISHER_FIGURE,
    TRAINING_FIGURE,
    plot_attacks,
    plot_task_profiles,
    plot_training,
)
from fisher_mi.report.runs import PER_TARGET, AttackRun, ModelRun, Runs, read_runs
from fisher_mi.report.sweep import plot_sweep
from fisher_mi.report.sweep_section import sweep_markdown

REPORT = "report.md"
INCONCLUSIVE = "inconclusive: the undefended attack does not beat chance and its own prior"
HASH_DIGITS = 12  # protocol hashes shown to this many hex digits


def report_outputs(out: Path) -> tuple[Path, ...]:
    """The files ``build_report`` writes into ``out``."""
    figures = (FISHER_FIGURE, ATTACK_FIGURE, TRAINING_FIGURE)
    return (out / REPORT, *(out / FIGURES / name for name in figures))


def _intro(runs: Runs) -> list[str]:
    demo = runs.demo
    if demo is None:
        return ["Every number below is read from the runs' saved files."]
    lengths, models = demo["lengths"], demo["models"]
    capped = f", at most {lengths['max_steps']} steps" if lengths["max_steps"] else ""
    return [
        f"**Demo scale, not the reference.** Every number below comes from this run of "
        f"`fisher-mi demo` (scale `{demo['scale']}`: {lengths['why']}).",
        "",
        f"Data `{demo['data']}`; target `{models['arch']}`, evaluator `{models['evaluator']}`; "
        f"seed {demo['seed']}; public pre-training {lengths['pretrain_epochs']} epochs; the TL "
        f"target's new head fitted alone {lengths['head_epochs']} epochs before the "
        f"pre-trained model is profiled and planned; targets and evaluator "
        f"{lengths['epochs']} epochs (Adam, lr {demo['lr']}{capped}); GAN priors "
        f"{lengths['gan_steps']} generator steps (`cpu` preset networks); attacks "
        f"{lengths['iterations']} iterations, methods {', '.join(lengths['methods'])}; "
        f"Fisher profiles on at most {lengths['profile_samples']} samples per split.",
    ]


def _models(runs: Runs) -> str:
    rows = [
        [
            f"`{m.name}`",
            m.role,
            m.pretrained_on or "-",
            m.defense or "-",
            len(m.history),
            int(m.kept["epoch"]),
            number(m.kept.get("validation_accuracy")),
            number(m.kept.get("test_accuracy")),
            f"{m.frozen} of {m.layers}",
        ]
        for m in runs.models
    ]
    header = ["model", "role", "pre-trained on", "defense", "epochs", "kept epoch",
              "validation acc.", "private-test acc.", "frozen layers"]  # fmt: skip
    return pipe_table(header, rows)


def _attacks(runs: Runs) -> str:
    rows = []
    for a in runs.attacks:
        m, base = a.metrics, a.metrics["baselines"]
        prior = base.get("prior_only") or {}
        rows.append(
            [
                f"`{a.model}`",
                f"`{a.name}`",
                a.method,
                number(m["natural_accuracy"]),
                rate(m["top1"]),
                rate(m["top5"]),
                number(m["knn_sq_mean"]),
                number(base["chance"]["top1"]),
                rate(prior.get("top1")),
                number(prior.get("knn_sq_mean")),
                base.get("verdict") or "n/a",
            ]
        )
    header = ["model", "run", "attack", "natural acc.", "top-1", "top-5", "KNN dist²",
              "chance top-1", "prior-only top-1", "prior-only KNN dist²", "verdict"]  # fmt: skip
    return pipe_table(header, rows)


def _protocols(runs: Runs) -> str:
    rows = []
    for a in runs.attacks:
        p, evaluator = a.metrics["protocol"], a.metrics["evaluator"] or {}
        rows.append(
            [
                f"`{a.name}`",
                len(p["identities"]),
                p["per_identity"],
                p["seed"],
                p["iterations"],
                p["batch_size"],
                evaluator.get("arch", "n/a"),
                f"{number(evaluator.get('accuracy_private_test'))} / "
                f"{number(evaluator.get('accuracy_private_train'))}",
                a.metrics["protocol_hash"][:HASH_DIGITS],
            ]
        )
    header = ["run", "identities", "draws per identity", "seed", "iterations", "batch size",
              "evaluator", "evaluator acc. (private-test / train)", "protocol hash"]  # fmt: skip
    return pipe_table(header, rows)


def _beats_baselines(attack: AttackRun) -> bool:
    metrics = attack.metrics
    beats_chance = metrics["significance"]["p_value"] < VERDICT_ALPHA
    return beats_chance and metrics["baselines"].get("verdict") == BEATS_PRIOR


def _check_same_protocol(undefended: AttackRun, defended: AttackRun) -> None:
    """Refuse to compare runs whose protocols differ beyond what names the target."""
    if undefended.comparison_hash == defended.comparison_hash:
        return
    ours, theirs = undefended.metrics["protocol"], defended.metrics["protocol"]
    keys = sorted(
        key
        for key in set(ours) | set(theirs)
        if key not in PER_TARGET and ours.get(key) != theirs.get(key)
    )
    raise ConfigError(
        f"{undefended.name} and {defended.name} were run with different protocols (they differ "
        f"in {', '.join(keys)}); rerun one with the other's settings to compare them"
    )


def _comparison_rows(runs: Runs) -> list[list[Any]]:
    """Each undefended model's attack against each TL-DMI model's attack by the same method,
    within one group of models (``ModelRun.group``: a demo, or one seed of a sweep or
    comparison; pairing across seeds would compare training draws, not defenses). Models
    trained under a regularisation defense are not undefended: a comparison folder's own
    section pairs them with ``none`` by seed."""
    models: dict[str | None, ModelRun] = {m.name: m for m in runs.models if m.defense is None}
    attacked = [a for a in runs.attacks if a.model in models]
    plain = [a for a in attacked if not models[a.model].defended]
    tl = [a for a in attacked if models[a.model].defended]
    rows = []
    for undefended in plain:
        group = models[undefended.model].group
        same = (d for d in tl if d.method == undefended.method and models[d.model].group == group)
        for defended in same:
            _check_same_protocol(undefended, defended)
            before, after = undefended.metrics["top1"]["mean"], defended.metrics["top1"]["mean"]
            reading = (
                f"TL-DMI changes top-1 by {after - before:+.6f}"
                if _beats_baselines(undefended)
                else INCONCLUSIVE
            )
            rows.append(
                [undefended.method, f"`{undefended.model}`", number(before),
                 f"`{defended.model}`", number(after), reading]
            )  # fmt: skip
    return rows


def _fisher(runs: Runs) -> str:
    rows = []
    for run in runs.fisher:
        for (split, fisher), table in run.table.groupby(["split", "fisher"], sort=True):
            rows.append(
                [
                    f"`{run.name}`",
                    split,
                    fisher,
                    int(table["n_samples"].iloc[0]),
                    f"{table['fisher_trace'].sum():.6g}",
                ]
            )
    return pipe_table(["table", "split", "estimator", "n", "total trace"], rows)


def _shares(runs: Runs) -> str:
    """Per layer, each split's share of its total trace (the normalised profile)."""
    columns, layers = [], {}
    for run in runs.fisher:
        for (split, fisher), table in run.table.groupby(["split", "fisher"], sort=True):
            columns.append(f"`{run.name}` {split} ({fisher})")
            shares = table["fisher_trace"] / table["fisher_trace"].sum()
            for layer, depth, share in zip(table["layer"], table["depth"], shares, strict=True):
                layers.setdefault((int(depth), layer), {})[columns[-1]] = f"{share:.4f}"
    rows = [
        [depth, f"`{layer}`", *(values.get(c, "-") for c in columns)]
        for (depth, layer), values in sorted(layers.items())
    ]
    return pipe_table(["depth", "layer", *columns], rows)


def _figures(runs: Runs, out: Path) -> list[Path]:
    folder = out / FIGURES
    drawn = []
    if runs.fisher:
        drawn.append(plot_task_profiles(runs.fisher, folder / FISHER_FIGURE))
    if runs.attacks:
        drawn.append(plot_attacks(runs.attacks, folder / ATTACK_FIGURE))
    if runs.models:
        drawn.append(plot_training(runs.models, folder / TRAINING_FIGURE))
    for sweep in runs.sweeps:
        series = sweep_series(sweep.table, sweep.hits)
        drawn.append(plot_sweep(series, folder / _run_figure(SWEEP_PNG, sweep.name)))
    for comparison in runs.comparisons:
        series = compare_series(comparison.table)
        drawn.append(plot_compare(series, folder / _run_figure(COMPARE_PNG, comparison.name)))
    return drawn


def _run_figure(png: str, run: str) -> str:
    """``sweep.png`` for the one run reported, ``sweep-<run>.png`` beside others."""
    return f"{Path(png).stem}-{run.replace('/', '-')}.png" if run else png


def _markdown(runs: Runs, figures: Sequence[Path], out: Path) -> str:
    parts = ["# fisher_mi report", "", *_intro(runs), ""]
    for sweep in runs.sweeps:
        parts += sweep_markdown(sweep)
    for comparison in runs.comparisons:
        parts += compare_markdown(comparison)
    if runs.models:
        parts += ["## Models", "", _models(runs), ""]
    if runs.attacks:
        parts += ["## Attacks", "", "Rates are means over draws of the evaluator's hit rate; "
                  "KNN dist² is the squared feature distance to the nearest private image of "
                  "the identity.", "", _attacks(runs), "", "### Protocol", "",
                  _protocols(runs), ""]  # fmt: skip
        comparisons = _comparison_rows(runs)
        if comparisons:
            header = ["attack", "undefended", "top-1", "TL-DMI", "top-1", "reading"]
            parts += ["## Undefended against TL-DMI", "", pipe_table(header, comparisons), ""]
    if runs.fisher:
        parts += ["## Fisher: classification task against MI task", "", _fisher(runs), "",
                  "Each split's share of its own total trace, per layer (shapes compare "
                  "across splits whatever their scale):", "", _shares(runs), ""]  # fmt: skip
    if runs.steps:
        rows = [[f"`{s['step']}`", f"{s['seconds']:.1f}"] for s in runs.steps]
        timings = pipe_table(["step", "seconds"], rows)
        parts += ["## Step timings", "", "Wall-clock seconds of each step when it ran, as its "
                  "manifest recorded them.", "", timings, ""]  # fmt: skip
    if figures:
        parts += ["## Figures", ""]
        parts += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in figures] + [""]
    return "\n".join(parts)


def build_report(run_dirs: Sequence[str | Path], *, out: str | Path | None = None) -> list[Path]:
    """Write ``report.md`` and ``figures/*.png`` from the saved files of ``run_dirs``.

    Args:
        run_dirs: folders written by fisher-mi (a demo folder, attack, training or profile
            runs); every ``history.csv``, ``fisher.csv`` and ``metrics.json`` below them is
            read, each only as its manifest vouches for it.
        out: where to write (default: the one run folder; needed for several).

    Returns:
        The files written: ``report.md`` and the figures.
    """
    folders = [Path(folder) for folder in run_dirs]
    if not folders:
        raise ConfigError("give at least one run folder to report on")
    if out is None and len(folders) > 1:
        raise ConfigError("several run folders make one report: give --out DIR for it")
    target = Path(out) if out is not None else folders[0]
    runs = read_runs(folders)
    if not (runs.models or runs.attacks or runs.fisher or runs.sweeps or runs.comparisons):
        raise ConfigError(
            f"{', '.join(map(str, folders))} hold no history.csv, fisher.csv, metrics.json, "
            "sweep.csv or compare.csv; give folders written by fisher-mi"
        )
    _comparison_rows(runs)  # refuse mixed protocols before anything is written
    figures = _figures(runs, target)
    return [write_text(target / REPORT, _markdown(runs, figures, target)), *figures]

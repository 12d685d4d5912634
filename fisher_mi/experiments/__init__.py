"""Experiments: runs of the stages (training, priors, attacks, profiles) as resumable steps.

``steps`` is the one abstraction (a step is reused when its config, its inputs' manifests and
the version are unchanged); ``stages`` builds the steps every experiment shares (a classifier,
a GAN prior, an attack, a Fisher profile); ``demo`` is the TL-DMI story end to end at demo
scale, ``sweep`` TL-DMI at every cutoff, ``compare`` the defenses on one protocol (their entry
points ``sweep.sweep`` and ``compare.compare`` are not re-exported here: the names would hide
the modules).
"""

from fisher_mi.experiments.compare import COLUMNS as COMPARE_COLUMNS
from fisher_mi.experiments.compare import CompareResult, compare_series, run_compare
from fisher_mi.experiments.compare_config import (
    DEFAULT_DEFENSES,
    DEFAULT_GRIDS,
    CompareConfig,
    DefenseUnit,
)
from fisher_mi.experiments.demo import (
    DATA_SETTINGS,
    SCALE_NOTE,
    SCALES,
    DemoConfig,
    DemoScale,
    demo_steps,
    run_demo,
)
from fisher_mi.experiments.steps import Step, StepRecord, StepRun, run_steps, step_key, step_state
from fisher_mi.experiments.sweep import (
    COLUMNS,
    QUICK,
    SweepConfig,
    paper_cutoff,
    quick_config,
    rank_share,
    run_sweep,
)

__all__ = [
    "COLUMNS",
    "COMPARE_COLUMNS",
    "DATA_SETTINGS",
    "DEFAULT_DEFENSES",
    "DEFAULT_GRIDS",
    "QUICK",
    "SCALES",
    "SCALE_NOTE",
    "CompareConfig",
    "CompareResult",
    "DefenseUnit",
    "DemoConfig",
    "DemoScale",
    "Step",
    "StepRecord",
    "StepRun",
    "SweepConfig",
    "compare_series",
    "demo_steps",
    "paper_cutoff",
    "quick_config",
    "rank_share",
    "run_compare",
    "run_demo",
    "run_steps",
    "run_sweep",
    "step_key",
    "step_state",
]

"""Experiments: runs of the stages (training, priors, attacks, profiles) as resumable steps.

``steps`` is the one abstraction (a step is reused when its config, its inputs' manifests and
the version are unchanged); ``demo`` is the TL-DMI story end to end at demo scale.
"""

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

__all__ = [
    "DATA_SETTINGS",
    "SCALES",
    "SCALE_NOTE",
    "DemoConfig",
    "DemoScale",
    "Step",
    "StepRecord",
    "StepRun",
    "demo_steps",
    "run_demo",
    "run_steps",
    "step_key",
    "step_state",
]

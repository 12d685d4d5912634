"""Training the GAN priors of the model-inversion attacks: ``train_gan`` (gmi, kedmi, plgmi).

Modules, one job each: ``config`` (``GANTrainConfig``, the presets' lengths), ``data`` (the
target's one pass over the public data, PLG-MI's top-n pseudo-labels, the epoch's batches),
``kinds`` (each kind's settings and losses, registered in ``TRAINERS``), ``state`` (what each
epoch writes, the checkpoint and resume checks), ``loop`` (``train_gan``).
"""

from fisher_mi.attacks.gan_training.config import GANTrainConfig
from fisher_mi.attacks.gan_training.data import top_n_selection
from fisher_mi.attacks.gan_training.kinds import TRAINERS, PriorTrainer
from fisher_mi.attacks.gan_training.loop import GANRun, train_gan, train_gan_run
from fisher_mi.attacks.gan_training.state import CHECKPOINT, HISTORY, SAMPLES

__all__ = [
    "CHECKPOINT",
    "HISTORY",
    "SAMPLES",
    "TRAINERS",
    "GANRun",
    "GANTrainConfig",
    "PriorTrainer",
    "top_n_selection",
    "train_gan",
    "train_gan_run",
]

"""Model-inversion attacks with a GAN prior: the ``InversionAttack`` loop and its methods.

Modules, one job each: ``counter_random`` (random numbers keyed by (seed, identity, draw,
step)), ``losses`` (per-image losses), ``augment`` (PLG-MI's augmentations in torch),
``attack`` (the template loop and the ``Inversion`` record), ``methods`` (GMI, KEDMI, PLG-MI
and the LOMMA options), ``invert`` (the entry point).
"""

from fisher_mi.attacks.inversion.attack import AttackSettings, Inversion, InversionAttack
from fisher_mi.attacks.inversion.invert import invert
from fisher_mi.attacks.inversion.methods import ATTACKS, LOMMA

__all__ = ["ATTACKS", "LOMMA", "AttackSettings", "Inversion", "InversionAttack", "invert"]

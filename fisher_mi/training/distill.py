"""Surrogates (LOMMA's "model augmentation"): classifiers distilled from the target on public data.

LOMMA (Nguyen et al., "Re-thinking Model Inversion Attacks Against Deep Neural Networks", CVPR
2023) averages the attack's identity loss over the target and a few surrogates of other
architectures, distilled from the target on the attacker's public images, so that the
reconstructions fit what the target's identities have in common across models rather than one
model's quirks, and generalise to the unseen evaluation model. The attacker has no private data
and their public images carry their own labels, not the target's classes: the student learns
the teacher's soft labels, computed on the same batch in the same step (no pass over the data
beforehand), with the teacher in eval mode and under ``no_grad`` (frozen, never optimised).

``Distillation`` is an ``Objective`` of the one training loop; ``build_surrogate`` builds a
student that can see the teacher's inputs and predict its classes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fisher_mi.errors import ConfigError
from fisher_mi.models.outputs import logits_of
from fisher_mi.models.registry import ARCHITECTURES, build_model, require_arch
from fisher_mi.training.objective import BatchLoss

TEMPERATURE = 1.0  # LOMMA's (config/celeba/training_augmodel/*.json: "temperature": 1.0)


def distillation_loss(
    teacher_logits: Tensor, student_logits: Tensor, *, temperature: float = TEMPERATURE
) -> Tensor:
    """``(1/B) sum_n KL(softmax(t_n / tau) || softmax(s_n / tau)) / tau**2``, in float32.

    The scaling is the LOMMA reference's (``engine.train_augmodel``: ``KLDivLoss(reduction=
    "sum")`` of the student's log-softmax and the teacher's softmax, divided by ``tau**2`` and by
    the batch size), i.e. the batch mean of the per-sample KL. Hinton et al. multiply by
    ``tau**2`` instead; both are the plain KL at LOMMA's tau = 1. The teacher's distribution
    enters as log-probabilities, so a class it gives probability 0 in float32 adds 0, not NaN.
    """
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    student = F.log_softmax(student_logits.float() / temperature, dim=1)
    kl = F.kl_div(student, teacher, reduction="batchmean", log_target=True)
    return kl / temperature**2


def weights_fingerprint(model: nn.Module) -> str:
    """Hex sha256 of a model's state dict (names, dtypes, shapes and bytes, in key order):
    which teacher a run distils from, whatever file or module it came from."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{value.dtype}:{tuple(value.shape)};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class Distillation:
    """Knowledge distillation from a frozen ``teacher`` (LOMMA's surrogate training).

    loss = ``distillation_loss(teacher(x), student(x), temperature=temperature)``; a hit is a
    top-1 prediction equal to the teacher's, so the loop's accuracy columns are the agreement
    with the teacher and its validation loss the KL: the kept epoch agrees best with the
    teacher on the held-out public images (ties to the lower KL). The labels ``y`` are not
    used. The defaults are the reference's (tau = 1); LOMMA trains with SGD, lr 0.01,
    momentum 0.9, weight decay 1e-4, 20 epochs (``TrainConfig`` says which a run uses).

    Attributes:
        teacher: the target distilled from; moved to the training device and put in eval mode
            by ``prepare`` (left so afterwards); its weights are never changed.
        temperature: tau, positive.
    """

    teacher: nn.Module
    temperature: float = TEMPERATURE
    fingerprint: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        tau = self.temperature
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau):
            raise ConfigError(f"the temperature must be a positive number, got {tau!r}")
        if tau <= 0:
            raise ConfigError(f"the temperature must be a positive number, got {tau!r}")
        object.__setattr__(self, "fingerprint", weights_fingerprint(self.teacher))

    def prepare(self, model: nn.Module, device: torch.device) -> None:
        """Refuse a student that is the teacher or cannot take its inputs; move the teacher to
        ``device`` in eval mode."""
        if model is self.teacher:
            raise ConfigError("the student is the teacher itself; distil into a new model")
        check_inputs(self.teacher, model)
        self.teacher.to(device).eval()

    def __call__(self, output: Any, x: Tensor, y: Tensor) -> BatchLoss:
        """The KL to the teacher's soft labels on this batch and the top-1 agreements."""
        student = logits_of(output)
        with torch.no_grad():
            teacher = logits_of(self.teacher(x)).detach()
        if teacher.shape != student.shape:
            raise ConfigError(
                f"the teacher predicts {teacher.shape[1]} classes and the student "
                f"{student.shape[1]}; build the student with num_classes={teacher.shape[1]}"
            )
        hits = (student.detach().argmax(dim=1) == teacher.argmax(dim=1)).sum()
        return BatchLoss(distillation_loss(teacher, student, temperature=self.temperature), hits)

    def record(self) -> dict[str, Any]:
        """The name, the temperature and the teacher's ``weights_fingerprint``."""
        return {
            "name": "distillation",
            "temperature": float(self.temperature),
            "teacher_weights": self.fingerprint,
        }


def check_inputs(teacher: nn.Module, student: nn.Module) -> None:
    """Refuse a student whose ``input_shape`` (channels, height, width) is not the teacher's,
    when both say: the two see the same images in the same batch."""
    wanted, found = getattr(teacher, "input_shape", None), getattr(student, "input_shape", None)
    if wanted is not None and found is not None and tuple(wanted) != tuple(found):
        raise ConfigError(
            f"the student takes {_shape(found)} images but the teacher {_shape(wanted)}; "
            "choose a surrogate architecture of the teacher's input size"
        )


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(side) for side in shape)


def build_surrogate(teacher: nn.Module, arch: str) -> nn.Module:
    """A fresh ``arch`` student for ``teacher``: the teacher's class count and, where ``arch``
    takes ``in_channels``, its input channels.

    Raises:
        ConfigError: the teacher was not built by fisher_mi, or ``arch`` cannot take the
            teacher's input size (``check_inputs``).
    """
    spec = require_arch(teacher, "its class count is unknown")
    classes = ARCHITECTURES.get(spec.name).kwargs_for(teacher.state_dict()).get("num_classes")
    if classes is None:
        raise ConfigError(f"the teacher's architecture {spec.name!r} does not say its class count")
    kwargs = {"num_classes": classes}
    channels = getattr(teacher, "input_shape", (None,))[0]
    if channels is not None and "in_channels" in ARCHITECTURES.get(arch).kwargs_from_state:
        kwargs["in_channels"] = channels
    student = build_model(arch, **kwargs)
    check_inputs(teacher, student)
    return student

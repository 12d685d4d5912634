"""Tests for ``fisher_mi.training.distill`` and the objective plug-in: the KL loss against hand
values and the LOMMA reference's expression, the ``Distillation`` objective's hits and guards,
``build_surrogate``, a surrogate trained by the one loop (frozen teacher, same-batch soft
labels, agreement on held-out public digits), its meta, and resume refusing another teacher.

Teachers and students are ``mcnn``/``scnn`` on slices of the bundled ``digits``; every run is a
few optimiser steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from fisher_mi.data import load_dataset
from fisher_mi.errors import ConfigError
from fisher_mi.io import load_checkpoint
from fisher_mi.models import arch_of, build_model, load_model
from fisher_mi.models.outputs import logits_of
from fisher_mi.training import (
    CrossEntropy,
    Distillation,
    Provenance,
    TrainConfig,
    build_surrogate,
    distillation_loss,
    train,
)
from fisher_mi.training.distill import weights_fingerprint
from tests.error_cases import one_line

LN3 = math.log(3.0)
TINY = TrainConfig(epochs=2, batch_size=16, max_steps=1)
SURROGATE = Provenance(data="digits", public="digits", role="surrogate")


def mcnn(seed: int = 0, num_classes: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("mcnn", num_classes=num_classes)


@pytest.fixture(scope="module")
def public() -> Dataset:
    return load_dataset("digits", "public")


@pytest.fixture(scope="module")
def teacher() -> nn.Module:
    """An mcnn trained for 20 steps on the private digits (it tells them apart well)."""
    model = mcnn()
    config = TrainConfig(epochs=1, batch_size=32, max_steps=20, validation_fraction=0)
    train(model, load_dataset("digits", "private"), config=config)
    return model


# ---------------------------------------------------------------------------- the loss


def kl(p: list[float], q: list[float]) -> float:
    """KL(p || q) = sum_c p_c log(p_c / q_c), by hand."""
    return sum(pc * math.log(pc / qc) for pc, qc in zip(p, q, strict=True))


@dataclass(frozen=True)
class LossCase:
    id: str
    teacher: list[list[float]]
    student: list[list[float]]
    temperature: float
    expected: float


LOSS_CASES = [
    # softmax([0, ln 3]) = [1/4, 3/4]; softmax([0, 0]) = [1/2, 1/2]
    LossCase("one-sample", [[0, LN3]], [[0, 0]], 1.0, kl([0.25, 0.75], [0.5, 0.5])),
    LossCase(
        "batch-mean",
        [[0, LN3], [0, 0]],
        [[0, 0], [0, LN3]],
        1.0,
        (kl([0.25, 0.75], [0.5, 0.5]) + kl([0.5, 0.5], [0.25, 0.75])) / 2,
    ),
    LossCase("same-logits", [[1, 2, 3]], [[1, 2, 3]], 1.0, 0.0),
    LossCase("shift-invariant", [[0, LN3]], [[5, 5 + LN3]], 1.0, 0.0),
    # tau = 2: softmax([0, 2 ln 3] / 2) = [1/4, 3/4]; the KL is divided by tau**2 = 4
    LossCase("temperature-2", [[0, 2 * LN3]], [[0, 0]], 2.0, kl([0.25, 0.75], [0.5, 0.5]) / 4),
]


@pytest.mark.parametrize("case", LOSS_CASES, ids=lambda case: case.id)
def test_distillation_loss_is_the_hand_computed_kl(case: LossCase) -> None:
    loss = distillation_loss(
        torch.tensor(case.teacher), torch.tensor(case.student), temperature=case.temperature
    )
    assert loss.item() == pytest.approx(case.expected, abs=1e-6)  # float32


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_distillation_loss_scales_as_the_lomma_reference(temperature: float) -> None:
    torch.manual_seed(0)
    teacher, student = torch.randn(8, 5) * 3, torch.randn(8, 5) * 3
    # Re-thinking_MI engine.train_augmodel: KLDivLoss(reduction="sum") / T**2 / batch size
    reference = (
        nn.KLDivLoss(reduction="sum")(
            F.log_softmax(student / temperature, dim=-1), F.softmax(teacher / temperature, dim=-1)
        )
        / temperature**2
        / len(student)
    )
    loss = distillation_loss(teacher, student, temperature=temperature)
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)


def test_a_class_the_teacher_rules_out_adds_nothing_not_nan() -> None:
    loss = distillation_loss(torch.tensor([[0.0, -1e4]]), torch.tensor([[0.0, 0.0]]))
    assert loss.item() == pytest.approx(math.log(2.0), abs=1e-6)  # KL([1, 0] || [1/2, 1/2])


# ---------------------------------------------------------------------------- the objective


class Fixed(nn.Module):
    """A "model" returning given logits, whatever the input."""

    def __init__(self, logits: list[list[float]]) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(logits, dtype=torch.float32))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x, self.weight  # (features, logits): the MI literature's convention


def test_a_hit_is_agreeing_with_the_teacher_and_labels_are_not_read() -> None:
    teacher = Fixed([[0, 1, 0], [2, 0, 0], [0, 0, 3], [1, 0, 0]])
    student = torch.tensor([[0, 5, 0], [0, 1, 0], [0, 0, 1], [2, 0, 0.0]], requires_grad=True)
    labels = torch.full((4,), 99)  # the public data's own labels: not the teacher's classes
    batch = Distillation(teacher)((None, student), torch.zeros(4, 1), labels)
    assert batch.hits.item() == 3
    expected = distillation_loss(teacher.weight.detach(), student.detach())
    assert batch.loss.item() == pytest.approx(expected.item())
    batch.loss.backward()  # the loss reaches the student, never the teacher
    assert student.grad is not None and teacher.weight.grad is None


def test_cross_entropy_counts_label_hits() -> None:
    logits = torch.tensor([[0.0, LN3], [2.0, 0.0]])
    batch = CrossEntropy()(logits, torch.zeros(2, 1), torch.tensor([1, 1]))
    expected = (-math.log(0.75) - math.log(1 / (1 + math.exp(-2)) * math.exp(-2))) / 2
    assert batch.hits.item() == 1 and batch.loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf"), True, "1"])
def test_a_bad_temperature_is_refused(temperature: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        Distillation(mcnn(), temperature=temperature)
    assert "temperature must be a positive number" in one_line(caught)


def test_a_student_with_other_classes_is_refused_at_the_first_batch() -> None:
    objective = Distillation(mcnn(num_classes=5))
    with pytest.raises(ConfigError) as caught:
        objective(torch.zeros(2, 7), torch.rand(2, 1, 32, 32), torch.zeros(2, dtype=torch.long))
    assert "teacher predicts 5 classes and the student 7" in one_line(caught)


def test_the_teacher_cannot_be_its_own_student() -> None:
    model = mcnn()
    with pytest.raises(ConfigError) as caught:
        Distillation(model).prepare(model, torch.device("cpu"))
    assert "the student is the teacher" in one_line(caught)


def test_a_surrogate_needs_the_distillation_objective(public: Dataset) -> None:
    with pytest.raises(ConfigError) as caught:
        train(mcnn(), public, config=TINY, provenance=SURROGATE)
    assert "objective=Distillation(teacher)" in one_line(caught)


# ---------------------------------------------------------------------------- build_surrogate


def test_the_surrogate_takes_the_teachers_classes_and_channels() -> None:
    student = build_surrogate(mcnn(num_classes=7), "scnn")
    assert dict(arch_of(student).kwargs) == {"num_classes": 7, "in_channels": 1}
    assert student.input_shape == (1, 32, 32)


@pytest.mark.parametrize("arch", ["vgg_small", "resnet18", "vgg16"])
def test_a_surrogate_of_another_input_size_is_refused(arch: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build_surrogate(mcnn(), arch)
    assert "teacher 1x32x32" in one_line(caught)


# ---------------------------------------------------------------------------- training


def agreement(student: nn.Module, teacher: nn.Module, data: Dataset) -> float:
    x = torch.stack([data[i][0] for i in range(len(data))])
    with torch.no_grad():
        mine, theirs = logits_of(student.eval()(x)), logits_of(teacher.eval()(x))
    return (mine.argmax(1) == theirs.argmax(1)).float().mean().item()


def test_a_surrogate_learns_to_agree_with_its_teacher(teacher: nn.Module, public: Dataset) -> None:
    train_part, held_out = Subset(public, range(0, 896, 2)), Subset(public, range(1, 896, 2))
    torch.manual_seed(1)
    student = build_surrogate(teacher, "scnn")
    untrained = agreement(student, teacher, held_out)
    config = TrainConfig(epochs=2, batch_size=32, max_steps=20, lr=0.05)
    result = train(
        student, train_part, config=config, provenance=SURROGATE, objective=Distillation(teacher)
    )
    with torch.no_grad():
        x = torch.stack([held_out[i][0] for i in range(len(held_out))])
        shares = logits_of(teacher(x)).argmax(1).bincount(minlength=5).float() / len(x)
    chance = shares.max().item()  # always naming the teacher's favourite class
    trained = agreement(student, teacher, held_out)
    assert trained > max(chance, untrained) + 0.1, (trained, chance, untrained)
    assert result.validation_accuracy is not None and result.validation_accuracy > chance


class Watch:
    """Forward hooks recording the inputs of the teacher and the student, and the teacher's
    mode and whether gradients were on."""

    def __init__(self, teacher: nn.Module, student: nn.Module) -> None:
        self.teacher: list[tuple[Tensor, bool, bool]] = []
        self.student: list[Tensor] = []
        teacher.register_forward_hook(self._teacher)
        student.register_forward_hook(lambda module, args, out: self.student.append(args[0]))

    def _teacher(self, module: nn.Module, args: tuple[Tensor, ...], out: Any) -> None:
        self.teacher.append((args[0], module.training, torch.is_grad_enabled()))


def test_the_teacher_is_frozen_in_eval_mode_and_sees_the_students_batches(
    public: Dataset,
) -> None:
    teacher, student = mcnn(seed=3).train(), build_surrogate(mcnn(seed=3), "scnn")
    before = {key: value.clone() for key, value in teacher.state_dict().items()}
    watch = Watch(teacher, student)
    config = TrainConfig(epochs=1, batch_size=16, max_steps=3)
    data = Subset(public, range(0, 896, 16))
    train(student, data, config=config, provenance=SURROGATE, objective=Distillation(teacher))
    assert all(torch.equal(before[key], value) for key, value in teacher.state_dict().items())
    assert watch.teacher and not any(mode or grad for _, mode, grad in watch.teacher)
    seen = {id(x) for x in watch.student}
    assert all(id(x) in seen for x, _, _ in watch.teacher)  # the same batch, no extra pass
    validation_batches = 1  # 56 images, 10% held out: 6, one batch of 16
    assert len(watch.teacher) == config.max_steps + validation_batches


def test_model_pt_says_surrogate_with_the_teachers_record(
    teacher: nn.Module, public: Dataset, tmp_path: Path
) -> None:
    given = Provenance(
        data="digits",
        public="digits",
        class_names=("a", "b", "c", "d", "e"),
        role="surrogate",
        teacher=tmp_path / "teacher.pt",
        teacher_sha256="ab" * 32,
    )
    student = build_surrogate(teacher, "scnn")
    data = Subset(public, range(0, 896, 16))
    train(
        student, data, config=TINY, provenance=given, objective=Distillation(teacher), out=tmp_path
    )
    meta = load_checkpoint(tmp_path / "model.pt")["meta"]
    assert meta["role"] == "surrogate" and meta["data"] == "digits"
    assert meta["class_names"] == ["a", "b", "c", "d", "e"]  # the teacher's, not the data's
    assert (meta["teacher"], meta["teacher_sha256"]) == (str(tmp_path / "teacher.pt"), "ab" * 32)
    assert meta["objective"] == {
        "name": "distillation",
        "temperature": 1.0,
        "teacher_weights": weights_fingerprint(teacher),
    }


def test_a_surrogate_without_class_names_does_not_take_the_public_ones(
    teacher: nn.Module, public: Dataset, tmp_path: Path
) -> None:
    student = build_surrogate(teacher, "scnn")
    data = Subset(public, range(0, 896, 16))
    train(
        student,
        data,
        config=TINY,
        provenance=SURROGATE,
        objective=Distillation(teacher),
        out=tmp_path,
    )
    assert load_checkpoint(tmp_path / "model.pt")["meta"]["class_names"] is None


def test_a_target_records_the_cross_entropy_objective(tmp_path: Path) -> None:
    data = Subset(load_dataset("digits", "private"), range(0, 723, 18))
    train(mcnn(), data, config=TINY, out=tmp_path)
    assert load_checkpoint(tmp_path / "model.pt")["meta"]["objective"] == {"name": "cross_entropy"}


# ---------------------------------------------------------------------------- resume


def public_slice() -> Dataset:
    return Subset(load_dataset("digits", "public"), range(0, 896, 16))


@dataclass(frozen=True)
class Resumed:
    id: str
    objective: Any  # teacher -> the objective of the resumed run
    message: list[str]


RESUMES = [
    Resumed(
        "another-teacher",
        lambda teacher: Distillation(mcnn(seed=9)),
        ["another objective", "teacher_weights: then '"],
    ),
    Resumed(
        "another-temperature",
        lambda teacher: Distillation(teacher, temperature=2.0),
        ["temperature: then 1.0, now 2.0"],
    ),
]


@pytest.mark.parametrize("case", RESUMES, ids=lambda case: case.id)
def test_resume_refuses_another_teacher(tmp_path: Path, case: Resumed) -> None:
    teacher = mcnn(seed=5)
    student = build_surrogate(teacher, "scnn")
    objective = Distillation(teacher)
    train(
        student,
        public_slice(),
        config=TINY,
        provenance=SURROGATE,
        objective=objective,
        out=tmp_path,
    )
    with pytest.raises(ConfigError) as caught:
        train(
            build_surrogate(teacher, "scnn"),
            public_slice(),
            config=TINY,
            provenance=SURROGATE,
            objective=case.objective(teacher),
            out=tmp_path,
            resume=True,
        )
    message = one_line(caught)
    assert all(fragment in message for fragment in case.message), message


def test_resume_refuses_distilling_a_run_trained_on_labels(tmp_path: Path) -> None:
    train(mcnn(), public_slice(), config=TINY, out=tmp_path)
    with pytest.raises(ConfigError) as caught:
        train(
            mcnn(),
            public_slice(),
            config=TINY,
            objective=Distillation(mcnn(seed=5)),
            out=tmp_path,
            resume=True,
        )
    assert "name: then 'cross_entropy', now 'distillation'" in one_line(caught)


def test_resume_accepts_the_same_teacher_read_again(tmp_path: Path) -> None:
    from fisher_mi.models import save_model

    path = tmp_path / "teacher.pt"
    save_model(mcnn(seed=5), path)
    out = tmp_path / "run"
    for resume in (False, True):
        teacher = load_model(path)  # another module, the same weights
        result = train(
            build_surrogate(teacher, "scnn"),
            public_slice(),
            config=TrainConfig(epochs=2, batch_size=16, max_steps=6),
            provenance=SURROGATE,
            objective=Distillation(teacher),
            out=out,
            resume=resume,
        )
    assert len(result.history) == 2


def test_a_checkpoint_from_before_objectives_resumes_as_cross_entropy(tmp_path: Path) -> None:
    data = Subset(load_dataset("digits", "private"), range(0, 723, 18))
    train(mcnn(), data, config=TINY, out=tmp_path)
    path = tmp_path / "checkpoint.pt"
    payload = torch.load(path, weights_only=True)
    payload["training"]["version"] = 2
    payload["training"].pop("objective")
    torch.save(payload, path)
    result = train(mcnn(), data, config=TINY, out=tmp_path, resume=True)
    assert result.steps == 1

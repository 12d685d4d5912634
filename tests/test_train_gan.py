"""GAN-prior training (``fisher_mi.attacks.gan_training``) and ``fisher-mi train-gan``.

Fast cases: the cpu preset, a few steps, tiny batches, a subset of the bundled digits'
public split, and a linear target (its one pass over the public data is instant).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import Subset

from fisher_mi.attacks import load_gan
from fisher_mi.attacks.gan_training import TRAINERS, GANTrainConfig, train_gan, train_gan_run
from fisher_mi.attacks.gan_training.data import pseudo_labelled, top_n_selection
from fisher_mi.cli import main
from fisher_mi.data import load_dataset
from fisher_mi.errors import ConfigError, FisherMIError
from fisher_mi.models import build_model, save_model

KINDS = ("gmi", "kedmi", "plgmi")
BATCH = 8
PUBLIC_IMAGES = 48
TOP_N = 8  # plgmi: 5 classes x 8 = 40 pseudo-labelled images, five batches of 8


class LinearTarget(nn.Module):
    """A 5-class linear classifier of 1 x 32 x 32 images that checks, on every call, that it
    is in eval mode with frozen parameters (the target must be, throughout training)."""

    def __init__(self) -> None:
        super().__init__()
        self.input_shape = (1, 32, 32)
        self.fc = nn.Linear(32 * 32, 5)
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        assert not self.training
        assert not any(p.requires_grad for p in self.parameters())
        self.calls += 1
        return self.fc(x.flatten(1))


@pytest.fixture(scope="module")
def public() -> Subset:
    return Subset(load_dataset("digits", "public"), range(PUBLIC_IMAGES))


def _target() -> LinearTarget:
    torch.manual_seed(0)
    return LinearTarget()


def _run(public: Subset, kind: str, **options):
    config = GANTrainConfig(kind=kind, batch_size=BATCH, top_n=TOP_N, **options.pop("config", {}))
    target = _target() if kind != "gmi" else None
    return train_gan_run(public, config=config, target=target, **options)


def _weights(gan) -> dict[str, Tensor]:
    return {
        **{f"G.{k}": v for k, v in gan.generator.state_dict().items()},
        **{f"D.{k}": v for k, v in gan.discriminator.state_dict().items()},
    }


# ---------------------------------------------------------------------------- training


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_trains_with_finite_losses(public: Subset, kind: str) -> None:
    run = _run(public, kind, config={"steps": 2})
    trainer = TRAINERS.get(kind)
    losses = run.history[["discriminator_loss", "generator_loss", *trainer.terms]]
    assert losses.notna().all().all() and bool(torch.isfinite(torch.tensor(losses.values)).all())
    assert run.gan.meta["steps"] == 2 and run.gan.meta["kind"] == kind
    assert run.gan.meta["discriminator_steps"] == 2 * trainer.n_critic
    assert "not the reference" in run.gan.meta["preset_note"]
    assert not run.gan.generator.training and not run.gan.discriminator.training
    images = run.gan.generate(
        torch.randn(3, run.gan.latent_dim),
        torch.tensor([0, 1, 4]) if run.gan.conditional else None,
    )
    assert images.shape == (3, 1, 32, 32) and 0 <= images.min() <= images.max() <= 1


def test_the_target_stays_frozen_and_its_modes_are_restored(public: Subset) -> None:
    target = _target()
    target.train()
    config = GANTrainConfig(kind="plgmi", steps=1, batch_size=BATCH, top_n=TOP_N)
    train_gan_run(public, config=config, target=target)
    assert target.calls > 0  # the forward's asserts held on every call
    assert target.training and all(p.requires_grad for p in target.parameters())


def test_train_gan_is_the_keyword_entry_point(public: Subset) -> None:
    gan = train_gan(public, kind="gmi", steps=1, batch_size=BATCH, seed=3)
    again = train_gan(public, kind="gmi", steps=1, batch_size=BATCH, seed=3)
    assert gan.kind == "gmi" and gan.meta["seed"] == 3
    first, second = _weights(gan), _weights(again)
    assert all(torch.equal(first[key], second[key]) for key in first)


@pytest.mark.parametrize("kind", KINDS)
def test_resume_is_bit_exact(public: Subset, kind: str, tmp_path: Path) -> None:
    """Two epochs straight against one epoch, then resumed for the second."""
    straight = _run(public, kind, config={"epochs": 2}, out=tmp_path / "straight")
    _run(public, kind, config={"epochs": 1}, out=tmp_path / "split")
    resumed = _run(public, kind, config={"epochs": 2}, out=tmp_path / "split", resume=True)
    first, second = _weights(straight.gan), _weights(resumed.gan)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    columns = [c for c in straight.history.columns if c != "seconds"]
    pd.testing.assert_frame_equal(straight.history[columns], resumed.history[columns])


def test_resume_refuses_other_options(public: Subset, tmp_path: Path) -> None:
    _run(public, "gmi", config={"epochs": 1}, out=tmp_path)
    with pytest.raises(ConfigError, match="batch_size: then 8, now 4"):
        train_gan_run(
            public,
            config=GANTrainConfig(kind="gmi", epochs=2, batch_size=4),
            out=tmp_path,
            resume=True,
        )
    with pytest.raises(ConfigError, match="already holds a GAN training checkpoint"):
        _run(public, "gmi", config={"epochs": 1}, out=tmp_path)


def test_a_run_stopped_inside_an_epoch_cannot_grow(public: Subset, tmp_path: Path) -> None:
    _run(public, "gmi", config={"steps": 1}, out=tmp_path)  # 5 of the epoch's 6 batches
    with pytest.raises(ConfigError, match="stopped inside epoch 1"):
        _run(public, "gmi", config={"steps": 2}, out=tmp_path, resume=True)


def test_outputs_and_history_columns(public: Subset, tmp_path: Path) -> None:
    run = _run(public, "gmi", config={"epochs": 2}, out=tmp_path)
    names = {path.relative_to(tmp_path).as_posix() for path in run.files}
    steps = run.history["steps"].tolist()  # 6 critic steps an epoch: 1, then 2 in all
    assert steps == [1, 2]
    assert names == {
        "generator.pt",
        "discriminator.pt",
        "checkpoint.pt",
        "history.csv",
        "samples/step_1.png",
        "samples/step_2.png",
    }
    assert all(path.is_file() for path in run.files)
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history.columns) == [
        "epoch",
        "steps",
        "discriminator_steps",
        "discriminator_loss",
        "generator_loss",
        "wasserstein",
        "gradient_penalty",
        "seconds",
    ]
    assert history["discriminator_steps"].tolist() == [6, 12]
    loaded = load_gan(tmp_path)
    assert loaded.kind == "gmi" and loaded.meta["steps"] == 2
    assert all(torch.equal(v, _weights(run.gan)[k]) for k, v in _weights(loaded).items())


def test_plgmi_meta_records_the_target(public: Subset) -> None:
    meta = {"data": "digits", "target": "t.pt", "target_sha256": "ab" * 32}
    run = _run(public, "plgmi", config={"steps": 1}, meta=meta)
    assert run.gan.meta["target_sha256"] == "ab" * 32 and run.gan.meta["num_classes"] == 5
    assert run.gan.meta["settings"]["betas"] == [0.0, 0.9]
    shared = _run(public, "gmi", config={"steps": 1}, meta=meta)
    assert "target_sha256" not in shared.gan.meta and shared.gan.meta["data"] == "digits"


# ---------------------------------------------------------------------------- pseudo-labels


def test_top_n_selection_against_a_hand_example() -> None:
    probabilities = torch.tensor(
        [
            [0.70, 0.20, 0.10],
            [0.10, 0.80, 0.10],
            [0.50, 0.10, 0.40],
            [0.20, 0.30, 0.50],
            [0.60, 0.35, 0.05],
        ]
    )
    chosen = top_n_selection(probabilities, 2)
    assert chosen.tolist() == [[0, 4], [1, 4], [3, 2]]  # image 4 serves classes 0 and 1
    assert top_n_selection(probabilities, 9).shape == (3, 5)  # fewer images than top_n


def test_pseudo_labels_come_from_the_targets_softmax() -> None:
    """Images of constant brightness v_i; logits (v, -v): class 0 takes the brightest."""
    values = torch.tensor([0.3, 0.9, 0.1, 0.6, 0.5])
    images = values[:, None, None, None].expand(5, 1, 2, 2)
    data = list(zip(images, torch.zeros(5, dtype=torch.long), strict=True))
    logits = torch.stack([values, -values], dim=1)
    selected = pseudo_labelled(data, logits, top_n=2)
    assert selected.indices == [1, 3, 2, 0]
    assert selected.labels.tolist() == [0, 0, 1, 1]
    image, label = selected[2]
    assert torch.equal(image, images[2]) and int(label) == 1


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"kind": "gmi", "epochs": 1, "steps": 1}, "pass one"),
        ({"kind": "gmi", "batch_size": 1}, "batch_size must be"),
        ({"kind": "nope"}, "known: gmi, kedmi, plgmi"),
    ],
    ids=["epochs-and-steps", "batch-of-one", "unknown-kind"],
)
def test_bad_options_are_refused(options: dict, says: str) -> None:
    with pytest.raises(FisherMIError, match=says):
        GANTrainConfig(**options)


@pytest.mark.parametrize("kind", ["kedmi", "plgmi"])
def test_target_kinds_need_a_target(public: Subset, kind: str) -> None:
    with pytest.raises(ConfigError, match="pass target=model"):
        train_gan(public, kind=kind, steps=1, batch_size=BATCH)


def test_images_of_another_shape_than_the_target_are_refused() -> None:
    faces = load_dataset("digits", "public", image_size=64)
    with pytest.raises(ConfigError, match=r"\(1, 64, 64\) but the target takes \(1, 32, 32\)"):
        train_gan(Subset(faces, range(16)), kind="kedmi", target=_target(), batch_size=BATCH)


def test_too_few_images_for_a_batch_are_refused(public: Subset) -> None:
    with pytest.raises(ConfigError, match="fewer than one batch of 64"):
        train_gan(public, kind="gmi", steps=1)


# ---------------------------------------------------------------------------- CLI


def _cli(argv: list[str]) -> tuple[int, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    return code, stderr.getvalue()


def _one_line(code: int, stderr: str, *fragments: str) -> None:
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("fisher-mi: error: "), stderr
    for fragment in fragments:
        assert fragment in stderr, (fragment, stderr)


GMI_ARGV = ["train-gan", "--data", "digits", "--kind", "gmi", "--batch-size", str(BATCH)]


def test_cli_writes_the_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "gan"
    code, stderr = _cli([*GMI_ARGV, "--steps", "1", "--out", str(out)])
    assert code == 0, stderr
    for name in ("generator.pt", "discriminator.pt", "checkpoint.pt", "history.csv"):
        assert (out / name).is_file(), name
    assert [p.name for p in (out / "samples").iterdir()] == ["step_1.png"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"generator.pt", "checkpoint.pt", "samples/step_1.png"} <= set(manifest["files"])
    gan = load_gan(out)
    assert gan.kind == "gmi" and gan.meta["data"] == "digits" and gan.meta["split"] == "public"
    code, stderr = _cli([*GMI_ARGV, "--steps", "1", "--out", str(out), "--resume"])
    assert code == 0, stderr  # a finished run resumes to itself


def test_cli_trains_against_a_target(tmp_path: Path) -> None:
    torch.manual_seed(0)
    target = tmp_path / "target.pt"
    save_model(build_model("mcnn", num_classes=5), target)
    out = tmp_path / "gan"
    argv = ["train-gan", "--data", "digits", "--split", "private-test", "--kind", "plgmi"]
    argv += ["--target", str(target), "--top-n", "4", "--batch-size", "4", "--steps", "1"]
    code, stderr = _cli([*argv, "--out", str(out)])  # private-test: a short target pass
    assert code == 0, stderr
    gan = load_gan(out)
    assert gan.kind == "plgmi" and gan.num_classes == 5 and gan.meta["target"] == str(target)
    assert len(gan.meta["target_sha256"]) == 64


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    _one_line(*_cli([*GMI_ARGV, "--epochs", "1", "--steps", "1", "--out", out]), "pass one")
    kedmi = ["train-gan", "--data", "digits", "--kind", "kedmi", "--out", out]
    _one_line(*_cli(kedmi), "--kind kedmi", "--target model.pt")
    odd = tmp_path / "two-channel.pt"
    save_model(build_model("mcnn", num_classes=5, in_channels=2), odd)
    _one_line(*_cli([*kedmi, "--target", str(odd)]), "2 x 32 x 32", str(odd))
    assert not (tmp_path / "out" / "checkpoint.pt").exists()

"""Tests for MID: the KL term against its closed form, the VIB head (deterministic at eval,
sampling on request), self-describing checkpoints, the published ``VGG16_vib`` layout, the
head added to a model and to its plan, and training with ``--defense mid``."""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Subset

from fisher_mi.data import load_dataset
from fisher_mi.defenses import MID, build_defense, gaussian_kl, plan_with_head, with_vib_head
from fisher_mi.errors import ConfigError
from fisher_mi.fisher import profile
from fisher_mi.io import load_checkpoint
from fisher_mi.models import arch_of, build_model, load_model, named_layers, save_model
from fisher_mi.models.vib import VIBClassifier, split_statistics
from fisher_mi.plan import prefix_plan
from fisher_mi.training import TrainConfig, train

SMALL = TrainConfig(epochs=1, batch_size=16, max_steps=2)


@pytest.fixture(scope="module")
def digits() -> tuple[Dataset, Dataset]:
    """A class-balanced slice of the private split (61 images) and of private-test (20)."""
    private, test = load_dataset("digits", "private"), load_dataset("digits", "private-test")
    return Subset(private, range(0, 723, 12)), Subset(test, range(0, 178, 9))


def vib_mcnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return with_vib_head(build_model("mcnn", num_classes=10))


# ----------------------------------------------------------------------------- the loss


def test_gaussian_kl_is_the_closed_form_by_hand() -> None:
    mu, sigma = [[0.5, -1.0], [0.0, 2.0]], [[0.8, 1.5], [1.0, 0.1]]
    expected = 0.0
    for row_mu, row_sigma in zip(mu, sigma, strict=True):
        expected += sum(
            0.5 * (m * m + s * s - 1 - math.log(s * s))
            for m, s in zip(row_mu, row_sigma, strict=True)
        )
    expected /= len(mu)
    found = gaussian_kl(
        torch.tensor(mu, dtype=torch.float64), torch.tensor(sigma, dtype=torch.float64)
    )
    assert found.item() == pytest.approx(expected, abs=1e-12)
    zero = gaussian_kl(torch.zeros(3, 4), torch.ones(3, 4))
    assert zero.item() == 0.0  # N(0, I) against itself


def test_mid_loss_is_ce_plus_beta_kl_of_the_statistics() -> None:
    model = vib_mcnn().eval()
    mid = MID(beta=0.25)
    x, y = torch.rand(5, 1, 32, 32), torch.tensor([0, 1, 2, 3, 4])
    mid.prepare(model, torch.device("cpu"))
    loss = mid(model(x), x, y).loss
    mid.release()
    features = model.body(x)[0]
    mu, sigma = split_statistics(model.st_layer(features))
    expected = F.cross_entropy(model.fc_layer(mu), y) + 0.25 * gaussian_kl(mu, sigma)
    torch.testing.assert_close(loss, expected)
    assert not model.st_layer._forward_hooks


# ----------------------------------------------------------------------------- the head


def test_the_head_uses_mu_at_eval_and_samples_when_asked() -> None:
    model = vib_mcnn().eval()
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x)[1], model(x)[1])
        mu, _ = split_statistics(model.st_layer(model.body(x)[0]))
        assert torch.equal(model(x)[0], mu)
        model.sample = True
        assert not torch.equal(model(x)[1], model(x)[1])
        model.sample = False
        model.train()
        assert not torch.equal(model(x)[0], model(x)[0])  # training samples z


def test_the_head_replaces_fc_layer_and_keeps_the_backbone() -> None:
    torch.manual_seed(0)
    plain = build_model("mcnn", num_classes=10)
    model = with_vib_head(plain)
    names = [layer.name for layer in named_layers(model)]
    assert names[-2:] == ["st_layer", "fc_layer"]
    assert (model.st_layer.in_features, model.st_layer.out_features, model.k) == (256, 256, 128)
    assert (model.fc_layer.in_features, model.fc_layer.out_features) == (128, 10)
    assert arch_of(model).kwargs == {"num_classes": 10, "vib_dim": 128}
    backbone = {k: v for k, v in plain.state_dict().items() if not k.startswith("fc_layer.")}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in backbone.items())
    assert with_vib_head(model) is model


def test_a_vib_model_saves_and_loads_without_arch_bit_for_bit(tmp_path: Path) -> None:
    model = vib_mcnn().eval()
    save_model(model, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt")
    assert isinstance(loaded, VIBClassifier)
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x)[1], model(x)[1])


# torchvision's vgg16_bn().features, as the MID reference's VGG16_vib holds it: index of each
# conv (its BatchNorm is the next index) and its (in, out) channels.
VGG16_CONVS = [
    (0, 3, 64), (3, 64, 64), (7, 64, 128), (10, 128, 128), (14, 128, 256), (17, 256, 256),
    (20, 256, 256), (24, 256, 512), (27, 512, 512), (30, 512, 512), (34, 512, 512),
    (37, 512, 512), (40, 512, 512),
]  # fmt: skip


def published_vgg16_vib(classes: int) -> dict[str, torch.Tensor]:
    """A state dict with the keys and shapes of the MID reference's ``VGG16_vib(classes)``."""
    generator = torch.Generator().manual_seed(0)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.05

    state: dict[str, torch.Tensor] = {}
    for index, fan_in, fan_out in VGG16_CONVS:
        state[f"feature.{index}.weight"] = rand(fan_out, fan_in, 3, 3)
        state[f"feature.{index}.bias"] = rand(fan_out)
        bn = f"feature.{index + 1}"
        state[f"{bn}.weight"], state[f"{bn}.bias"] = 1 + rand(fan_out), rand(fan_out)
        state[f"{bn}.running_mean"], state[f"{bn}.running_var"] = (
            rand(fan_out),
            1 + rand(fan_out).abs(),
        )
        state[f"{bn}.num_batches_tracked"] = torch.tensor(7)
    state["st_layer.weight"], state["st_layer.bias"] = rand(2048, 2048), rand(2048)
    state["fc_layer.weight"], state["fc_layer.bias"] = rand(classes, 1024), rand(classes)
    return state


def test_the_published_vgg16_vib_loads_strictly_and_predicts_from_mu(tmp_path: Path) -> None:
    state = published_vgg16_vib(7)
    path = tmp_path / "VGG16_vib.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)  # DataParallel
    model = load_model(path)
    assert arch_of(model).name == "vgg16_vib"
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[key], value) for key, value in state.items())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        features = torch.flatten(model.feature(x), 1)  # no BatchNorm1d in this layout
        mu = (features @ state["st_layer.weight"].T + state["st_layer.bias"])[:, :1024]
        expected = mu @ state["fc_layer.weight"].T + state["fc_layer.bias"]
        torch.testing.assert_close(model(x)[1], expected)


# ----------------------------------------------------------------------------- the plan


def test_a_plan_of_the_undefended_model_gets_the_head_appended() -> None:
    plain = build_model("mcnn", num_classes=10)
    model = with_vib_head(plain)
    plan = plan_with_head(prefix_plan(plain, 2), model)
    assert plan.layers == tuple(layer.name for layer in named_layers(model))
    assert (plan.cutoff, plan.trained[-2:]) == (2, ("st_layer", "fc_layer"))
    deep = plan_with_head(prefix_plan(model, 7), model)  # would freeze st_layer
    assert deep.cutoff == 6 and deep.trained == ("st_layer", "fc_layer")
    same = prefix_plan(model, 3)
    assert plan_with_head(same, model) is same


def test_mid_refuses_a_model_without_the_head() -> None:
    with pytest.raises(ConfigError, match="model_for"):
        MID().prepare(build_model("mcnn", num_classes=10), torch.device("cpu"))


# ----------------------------------------------------------------------------- training


def test_mid_trains_under_a_plan_saves_loads_and_profiles(
    digits: tuple[Dataset, Dataset], tmp_path: Path
) -> None:
    plain = build_model("mcnn", num_classes=10)
    mid = build_defense("mid", {"beta": "0.01"})
    model = mid.model_for(plain)
    frozen = model.feature[0].weight.detach().clone()
    result = train(
        model, digits[0], config=SMALL, plan=prefix_plan(plain, 2), objective=mid, out=tmp_path
    )
    assert result.plan.trained[-2:] == ("st_layer", "fc_layer")
    assert torch.equal(model.feature[0].weight, frozen)
    meta = load_checkpoint(tmp_path / "model.pt")["meta"]
    assert meta["defense"] == {"name": "mid", "params": {"beta": 0.01}, "k": 128}
    loaded = load_model(tmp_path / "model.pt")
    x = torch.stack([digits[1][i][0] for i in range(8)])
    with torch.no_grad():
        assert torch.equal(loaded(x)[1], model.eval()(x)[1])
    table = profile(loaded, digits[1], max_samples=8, batch_size=8)
    assert {"st_layer", "fc_layer"} <= set(table["layer"])


def test_cli_train_with_mid(tmp_path: Path) -> None:
    from fisher_mi.cli import main

    out = tmp_path / "run"
    argv = ["train", "--data", "digits", "--arch", "mcnn", "--epochs", "1", "--batch-size", "16"]
    argv += ["--max-steps", "2", "--cutoff", "2", "--defense", "mid", "--out", str(out)]
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        assert main(argv) == 0, stderr.getvalue()
    payload = load_checkpoint(out / "model.pt")
    assert payload["arch_kwargs"]["vib_dim"] == 128
    assert payload["meta"]["defense"]["name"] == "mid"
    assert isinstance(load_model(out / "model.pt"), VIBClassifier)

"""Tests for fisher_mi.evaluate.evaluator: resizing against hand values and Pillow, channel
conversion, batched features and logits in eval mode, the evaluator check, and the evaluator
architectures (scnn, resnet18 with one input channel).
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

import fisher_mi
from fisher_mi.errors import ConfigError, DataError
from fisher_mi.evaluate import (
    LUMA_WEIGHTS,
    EvaluatorWarning,
    check_evaluator,
    features_and_logits,
    resize_for,
)
from fisher_mi.models import arch_of, build_model
from tests.error_cases import one_line

F64 = torch.float64


class Shape(nn.Module):
    """Stands for a model in ``resize_for``, which reads only ``input_shape``."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.input_shape = (channels, height, width)


class Tiny(nn.Module):
    """A float64 (features, logits) model of 1 x 4 x 4 input with BatchNorm and dropout, so
    train and eval mode give different outputs."""

    def __init__(self, classes: int = 3, only_logits: bool = False) -> None:
        super().__init__()
        self.input_shape = (1, 4, 4)
        self.only_logits = only_logits
        self.feature = nn.Sequential(
            nn.Flatten(), nn.Linear(16, 6), nn.BatchNorm1d(6), nn.Dropout(0.5)
        )
        self.fc_layer = nn.Linear(6, classes)
        with torch.no_grad():
            self.feature[2].running_mean.uniform_(-1, 1)
            self.feature[2].running_var.uniform_(0.5, 2)
        self.double()

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        features = self.feature(x)
        logits = self.fc_layer(features)
        return logits if self.only_logits else (features, logits)


def _tiny(seed: int = 0, **kwargs: object) -> Tiny:
    torch.manual_seed(seed)
    return Tiny(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# resize_for
def test_downscale_by_two_matches_the_hand_computed_triangle_filter() -> None:
    # 4 -> 2 columns: antialiased bilinear is a triangle of half-width 2 input pixels centred
    # at 0.5 and 2.5; at column 0 the in-image weights are 0.75, 0.75, 0.25 (pixels 0, 1, 2),
    # normalised to 3/7, 3/7, 1/7, so [0, 0, 1, 1] -> [1/7, 6/7].
    image = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=F64).repeat(4, 1)[None, None]
    got = resize_for(Shape(1, 4, 2), image)
    expected = torch.tensor([1 / 7, 6 / 7], dtype=F64).repeat(4, 1)[None, None]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-15)  # float64 rounding


@pytest.mark.parametrize(
    "size", [(5, 4), (28, 21), (7, 18), (13, 9)], ids=["down", "up", "mixed", "same"]
)
def test_resize_matches_pillow_bilinear(size: tuple[int, int]) -> None:
    """Pillow's BILINEAR on float ('F') images antialiases when shrinking: the independent
    implementation the protocol's resize must agree with."""
    image = torch.rand(1, 1, 13, 9, generator=torch.Generator().manual_seed(0))
    got = resize_for(Shape(1, *size), image)[0, 0].numpy()
    pillow = Image.fromarray(image[0, 0].numpy(), mode="F").resize(size[::-1], Image.BILINEAR)
    np.testing.assert_allclose(got, np.asarray(pillow), rtol=0, atol=1e-6)  # float32 rounding


def test_resize_returns_an_image_of_the_right_shape_itself() -> None:
    images = torch.rand(2, 3, 8, 8)
    assert resize_for(Shape(3, 8, 8), images) is images


def test_resize_keeps_unit_range() -> None:
    images = (torch.rand(3, 3, 17, 11, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    for size in ((5, 4), (40, 33)):
        resized = resize_for(Shape(3, *size), images)
        assert resized.min() >= 0 and resized.max() <= 1  # convex weights: exact


def test_grey_to_rgb_repeats_the_channel() -> None:
    grey = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    rgb = resize_for(Shape(3, 6, 6), grey)
    assert rgb.shape == (2, 3, 6, 6)
    for channel in range(3):
        assert torch.equal(rgb[:, channel], grey[:, 0])


def test_rgb_to_grey_uses_the_bt601_luma() -> None:
    # pure red, green, blue and white pixels: 0.299, 0.587, 0.114 and their sum 1
    pixels = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    images = pixels.T.reshape(1, 3, 2, 2).double()
    grey = resize_for(Shape(1, 2, 2), images)
    expected = torch.tensor([[0.299, 0.587], [0.114, 1.0]], dtype=F64)[None, None]
    torch.testing.assert_close(grey, expected, rtol=0, atol=1e-15)
    assert LUMA_WEIGHTS == (0.299, 0.587, 0.114)  # Pillow's convert("L")


@pytest.mark.parametrize(
    ("have", "want", "size"),
    [(3, 1, (5, 4)), (3, 1, (30, 20)), (1, 3, (5, 4)), (1, 3, (30, 20))],
    ids=["rgb-to-grey-down", "rgb-to-grey-up", "grey-to-rgb-down", "grey-to-rgb-up"],
)
def test_channel_conversion_and_resizing_commute(have: int, want: int, size: tuple) -> None:
    """resize_for converts where fewer pixels are; both explicit orders give its images."""
    images = torch.rand(2, have, 12, 10, generator=torch.Generator().manual_seed(3), dtype=F64)
    got = resize_for(Shape(want, *size), images)
    # each inner call does one step only: channels at the source size, or size at `have`
    convert_first = resize_for(Shape(want, *size), resize_for(Shape(want, 12, 10), images))
    resize_first = resize_for(Shape(want, *size), resize_for(Shape(have, *size), images))
    torch.testing.assert_close(got, convert_first, rtol=0, atol=1e-14)  # float64, linear maps
    torch.testing.assert_close(got, resize_first, rtol=0, atol=1e-14)


BAD_RESIZE = [
    pytest.param(Shape(3, 4, 4), torch.rand(1, 2, 4, 4), "2-channel", id="two-channels"),
    pytest.param(Shape(3, 4, 4), torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "float", id="uint8"),
    pytest.param(Shape(3, 4, 4), torch.rand(3, 4, 4), "N x C x H x W", id="no-batch-dim"),
    pytest.param(nn.Linear(2, 2), torch.rand(1, 3, 4, 4), "input_shape", id="no-input-shape"),
]


@pytest.mark.parametrize(("model", "images", "says"), BAD_RESIZE)
def test_resize_refuses_what_it_cannot_convert(model: nn.Module, images: Tensor, says: str):
    with pytest.raises(ConfigError) as caught:
        resize_for(model, images)
    one_line(caught.value, says)


# ---------------------------------------------------------------------------------------------
# features_and_logits
@pytest.mark.parametrize("batch_size", [1, 3, 256])
@pytest.mark.parametrize("was_training", [True, False], ids=["from-train", "from-eval"])
def test_features_and_logits_are_the_eval_mode_outputs(batch_size: int, was_training: bool):
    model = _tiny().train(was_training)
    images = torch.rand(7, 1, 8, 8, generator=torch.Generator().manual_seed(4))  # float32, 8px
    features, logits = features_and_logits(model, images, batch_size=batch_size)
    assert model.training == was_training  # mode restored
    with torch.no_grad():
        expected = model.eval()(resize_for(model, images.double()))
    torch.testing.assert_close(features, expected[0], rtol=0, atol=1e-14)  # float64, reordered
    torch.testing.assert_close(logits, expected[1], rtol=0, atol=1e-14)  # batch sums
    assert features.dtype == F64 and not features.requires_grad and not logits.requires_grad


def test_features_and_logits_flatten_feature_maps_of_a_real_architecture() -> None:
    torch.manual_seed(0)
    model = build_model("scnn", num_classes=4)
    images = torch.rand(3, 3, 64, 64)  # RGB at 64 px into the 1 x 32 x 32 evaluator
    features, logits = features_and_logits(model, images, batch_size=2)
    assert features.shape == (3, 512) and logits.shape == (3, 4)


class Fails(Tiny):
    """A model whose forward raises (in the eval mode features_and_logits puts it in)."""

    def forward(self, x: Tensor) -> Tensor:
        raise RuntimeError(f"forward failed in {'train' if self.training else 'eval'} mode")


def test_features_and_logits_restore_the_mode_when_the_model_fails() -> None:
    model = Fails().train()
    with pytest.raises(RuntimeError, match="in eval mode"):
        features_and_logits(model, torch.rand(2, 1, 4, 4))
    assert model.training


def test_features_need_a_model_returning_features_and_logits() -> None:
    with pytest.raises(ConfigError) as caught:
        features_and_logits(_tiny(only_logits=True), torch.rand(2, 1, 4, 4))
    one_line(caught.value, "Tiny returns only logits", "(features, logits)")


@pytest.mark.parametrize(
    ("images", "batch_size", "error", "says"),
    [
        pytest.param(torch.zeros(0, 1, 4, 4), 8, DataError, "no images", id="empty"),
        pytest.param(torch.rand(2, 1, 4, 4), 0, ConfigError, "batch_size", id="batch-0"),
        pytest.param(
            torch.full((2, 1, 4, 4), 255, dtype=torch.uint8),
            8,
            ConfigError,
            "torch.uint8",
            id="uint8-not-cast-to-0-255-floats",
        ),
        pytest.param(torch.rand(2, 1, 4, 4), 2.0, ConfigError, "batch_size", id="batch-float"),
    ],
)
def test_features_and_logits_refuse_bad_input(
    images: Tensor, batch_size: object, error: type, says: str
) -> None:
    with pytest.raises(error) as caught:
        features_and_logits(_tiny(), images, batch_size=batch_size)  # type: ignore[arg-type]
    one_line(caught.value, says)


# ---------------------------------------------------------------------------------------------
# check_evaluator
def test_an_evaluator_of_other_classes_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        check_evaluator(_tiny(classes=4), _tiny(classes=3))
    one_line(caught.value, "scores 4 classes but the target 3", "private identities")


@pytest.mark.parametrize(
    "make_evaluator",
    [lambda target: target, copy.deepcopy],
    ids=["the-target-itself", "an-exact-copy"],
)
def test_the_target_as_its_own_evaluator_is_warned_about(make_evaluator) -> None:
    target = _tiny()
    with pytest.warns(EvaluatorWarning, match="not the literature's metric") as caught:
        check_evaluator(make_evaluator(target), target)
    assert len(caught) == 1 and "\n" not in str(caught[0].message)


def test_a_copy_with_one_other_buffer_is_not_the_target() -> None:
    target = _tiny()
    evaluator = copy.deepcopy(target)
    with torch.no_grad():
        evaluator.feature[2].running_mean[0] += 1e-12  # a BatchNorm statistic, not a parameter
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_evaluator(evaluator, target)


@pytest.mark.parametrize(
    ("evaluator", "target"),
    [
        pytest.param(lambda: _tiny(seed=1), lambda: _tiny(seed=0), id="same-arch-other-weights"),
        pytest.param(
            lambda: build_model("scnn", num_classes=5),
            lambda: build_model("mcnn", num_classes=5),
            id="scnn-judges-mcnn",
        ),
        pytest.param(
            lambda: build_model("resnet18", num_classes=5, in_channels=1),
            lambda: build_model("mcnn", num_classes=5),
            id="grey-resnet18-at-64px-judges-mcnn-at-32px",
        ),
    ],
)
def test_an_independent_evaluator_passes_silently(evaluator, target) -> None:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_evaluator(evaluator(), target())


# ---------------------------------------------------------------------------------------------
# resnet18's in_channels option
def test_resnet18_in_channels_changes_only_the_first_convolution() -> None:
    with torch.device("meta"):
        rgb = build_model("resnet18", num_classes=5).state_dict()
        grey = build_model("resnet18", num_classes=5, in_channels=1).state_dict()
    assert list(rgb) == list(grey)
    differ = [key for key in rgb if rgb[key].shape != grey[key].shape]
    assert differ == ["feature.0.weight"]
    assert tuple(grey["feature.0.weight"].shape) == (64, 1, 7, 7)


def test_grey_resnet18_is_recognised_from_a_raw_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=3, in_channels=1).eval()
    torch.save(model.state_dict(), tmp_path / "evaluator.pt")
    loaded = fisher_mi.load_model(tmp_path / "evaluator.pt")
    spec = arch_of(loaded)
    assert spec is not None and spec.name == "resnet18"
    assert spec.kwargs["in_channels"] == 1 and spec.kwargs["num_classes"] == 3
    assert loaded.input_shape == (1, 64, 64)
    images = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(5))
    for got, expected in zip(
        features_and_logits(loaded, images), features_and_logits(model, images), strict=True
    ):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)  # same weights, same ops

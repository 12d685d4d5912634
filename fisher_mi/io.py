"""Files in and out: atomic writes, tidy tables, and safe checkpoint reading.

Outputs are written to a temporary file in the destination folder and renamed into place, so
an interrupted run never leaves a half-written CSV or checkpoint behind. Checkpoints are
untrusted input: they are read with ``torch.load(weights_only=True)``, which refuses any pickled
object other than tensors and plain containers, so opening a file can never run its code.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import pandas as pd
import torch

from fisher_mi.errors import CheckpointError, UnsafeCheckpointError


def _new_file_mode() -> int:
    """The mode ``open()`` would give a new file: 0o666 less the process umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, _new_file_mode())  # mkstemp makes 0o600; results are meant to be shared
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(
    path: str | os.PathLike[str], write: Callable[[IO[Any]], None], *, binary: bool
) -> Path:
    """Open a temporary file, let ``write`` fill it, then move it onto ``path``."""
    with atomic_path(path) as tmp, open(tmp, "wb" if binary else "w") as stream:
        write(stream)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see ``atomic_path``); returns the path."""
    return write_atomic(path, lambda stream: stream.write(text), binary=False)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically; values JSON lacks (paths, numpy scalars)
    are written as their ``str``, so a record never fails to save."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_table(path: str | os.PathLike[str], table: pd.DataFrame) -> Path:
    """Write a tidy table as CSV (no index column), atomically."""
    return write_atomic(path, lambda stream: table.to_csv(stream, index=False), binary=False)


TEXT_COLUMNS = ("layer", "kind", "split", "fisher", "backend")


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a table written by ``write_table``; names stay text (a layer called ``0``, a
    split called ``NA`` and the estimator ``true`` are not numbers, NaN or booleans)."""
    header = pd.read_csv(path, nrows=0).columns
    text = {column: str for column in TEXT_COLUMNS if column in header}
    return pd.read_csv(
        path,
        dtype=text,
        keep_default_na=False,
        na_values={column: [""] for column in header if column not in text},
    )


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """``torch.save`` a dict of tensors and plain values, atomically."""
    return write_atomic(path, lambda stream: torch.save(payload, stream), binary=True)


def load_checkpoint(path: str | os.PathLike[str]) -> Any:
    """Read a checkpoint with ``weights_only=True``; refuse pickled code in one line.

    Every tensor read must be dense (see ``require_dense``), so the shapes a caller reads
    from the payload are backed by values the file really holds.

    Raises:
        UnsafeCheckpointError: the file pickles an object that could run code.
        CheckpointError: the file is missing, unreadable, or holds an undersized tensor.
    """
    source = Path(path)
    payload = _torch_load(source)
    require_dense(source, payload)
    return payload


PROTOCOL_WARNING = "Detected pickle protocol"  # torch's warning on old-protocol pickles


def _torch_load(source: Path) -> Any:
    """``torch.load(weights_only=True)`` of ``source``, each failure as one CheckpointError.

    A damaged or foreign file can make torch's readers fail in any way (the weights-only
    unpickler raises IndexError, KeyError, struct.error, AssertionError... on short or text
    files), so every exception is turned into one line naming the file and what was expected.
    """
    if not source.exists():
        raise CheckpointError(f"checkpoint {source} does not exist; check the path")
    if not source.is_file():
        raise CheckpointError(f"checkpoint {source} is not a file; give the checkpoint file itself")
    try:
        with warnings.catch_warnings():  # a text file reads as pickle protocol 0: no news
            warnings.filterwarnings("ignore", PROTOCOL_WARNING, UserWarning)
            return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise _refused(source, err) from None
    except Exception as err:
        raise CheckpointError(
            f"checkpoint {source} cannot be read as a torch file ({_first_sentence(err)}); "
            "check that it is a complete torch.save file"
        ) from None


def _refused(source: Path, err: pickle.UnpicklingError) -> CheckpointError:
    """The weights-only unpickler's refusal: unsafe when it blocked a global (code), else the
    file is no pickle torch can read."""
    message = str(err)
    if "GLOBAL" in message:
        blocked = re.search(r"GLOBAL (\S+)", message)
        culprit = f" ({blocked.group(1)})" if blocked else ""
        return UnsafeCheckpointError(
            f"checkpoint {source} holds a pickled Python object{culprit}, not just tensors, "
            "and was refused because loading it could run code; re-save it as a plain state "
            "dict (torch.save(model.state_dict(), path)) in a trusted environment"
        )
    return CheckpointError(
        f"checkpoint {source} is not a readable torch file (corrupt or another format); "
        "check that it is a complete torch.save file"
    )


def _first_sentence(err: Exception) -> str:
    """The first sentence of an exception's message on one line, or its type's name."""
    text = str(err).strip()
    return text.splitlines()[0].split(". ")[0] if text else type(err).__name__


def stored_elements(tensor: torch.Tensor) -> int:
    """Elements the tensor's storage holds from its offset on.

    (storage bytes / element size) - storage offset: the most distinct values the tensor
    can show. A dense tensor, or a view of a larger one, has at least ``numel()`` of them;
    an expanded (stride-0) or self-overlapping view has fewer.
    """
    return tensor.untyped_storage().nbytes() // tensor.element_size() - tensor.storage_offset()


def _tensors(payload: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor in ``payload`` with where it sits (``['state_dict']['fc.weight']``).

    Walks dicts, lists and tuples without recursion, each container once: an unpickled
    payload may share a container, nest it thousands deep, or even hold itself.
    """
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", payload)]
    while stack:
        where, obj = stack.pop()
        if isinstance(obj, torch.Tensor):
            yield where or "the payload", obj
        elif isinstance(obj, Mapping | list | tuple) and id(obj) not in seen:
            seen.add(id(obj))
            items = obj.items() if isinstance(obj, Mapping) else enumerate(obj)
            stack.extend(reversed([(f"{where}[{key!r}]", value) for key, value in items]))


def require_dense(source: Path, payload: Any) -> None:
    """Refuse a payload holding a tensor with fewer stored values than its shape claims.

    A real checkpoint's tensors are dense, so their shapes are bounded by the file's size.
    An expanded (stride-0) or overlapping view breaks that bound: one stored row can claim
    10^9 rows, and a reader that builds a model from such shapes would allocate terabytes
    from a file of a few megabytes. Only strided tensors are checked (sparse ones keep no
    single storage).
    """
    for where, tensor in _tensors(payload):
        if tensor.layout is not torch.strided:
            continue
        stored = stored_elements(tensor)
        if tensor.numel() > stored:
            raise CheckpointError(
                f"checkpoint {source} holds a tensor at {where} of shape {tuple(tensor.shape)} "
                f"({tensor.numel()} values) backed by only {stored} stored values (an expanded "
                "or overlapping view), which a real checkpoint never holds; re-save it from "
                "dense tensors (tensor.clone())"
            )

"""Run folders: where a command may write, who is writing, and which files can be trusted.

Every command that writes a run folder goes through ``RunFolder``:

1. ``check_output`` before any work: a mistyped or unwritable ``--out`` (an existing file, a
   path under a file, a read-only place) is found in a second, not after an hour of training.
2. ``.lock`` (pid, host, start time) while it runs: a second command writing the same folder
   is refused instead of leaving ``model.pt`` from one run beside ``history.csv`` from another.
   The lock is re-entrant for the same process and a lock whose process is gone (same host) is
   stale and taken over.
3. Stale temporaries (``.NAME.RANDOM.tmp``, left by a kill -9 during an atomic write) are
   removed at start, under the lock, so no live writer's file is touched.
4. ``manifest.json`` last: it lists each output with its sha256. At start the entries of the
   files this command will write are dropped, so an interrupted run leaves them unlisted;
   readers (``check_listed``) trust a file of a folder with a manifest only when it is listed
   with the same hash. A folder without a manifest is the user's own and is read as it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fisher_mi._version import versions
from fisher_mi.errors import ConfigError, DataError
from fisher_mi.io import write_json

MANIFEST = "manifest.json"
LOCK = ".lock"
MANIFEST_FORMAT = "fisher_mi-manifest/1"
HASH_BLOCK = 1 << 20  # bytes read at a time when hashing a file
_KEEP = frozenset({MANIFEST, LOCK})


def check_output(path: Path, *, kind: str) -> None:
    """Refuse an output location that cannot be written, before any work is done.

    Args:
        path: the folder (``kind="dir"``) or file (``kind="file"``) a command will write.
        kind: ``"dir"`` or ``"file"``.

    The nearest existing ancestor must be a folder in which a file can actually be created
    (probed with a temporary file: permission bits alone say nothing for root or on read-only
    mounts); ``path`` itself, if it exists, must be of the right kind.
    """
    if path.exists() and kind == "dir" and not path.is_dir():
        raise ConfigError(f"--out {path} is a file, not a folder; give a folder path")
    if path.is_dir() and kind == "file":
        raise ConfigError(f"--out {path} is a folder; give the path of the file to write")
    ancestor = path if kind == "dir" else path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"--out {path} lies under {ancestor}, which is a file; fix the path")
    try:
        handle, probe = tempfile.mkstemp(prefix=".fisher_mi-probe.", dir=ancestor)
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        raise ConfigError(
            f"--out {path} cannot be written ({err.strerror} in {ancestor}); "
            "choose a folder you can write to"
        ) from None


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or None when it has none; a damaged one is an error."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path} cannot be read ({err}); delete it and rerun the command") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise DataError(f"{path} is not a fisher_mi manifest; delete it and rerun the command")
    return manifest


def check_listed(path: Path) -> Path:
    """Refuse a file that its folder's manifest does not vouch for; return the path.

    A file of a folder with a manifest is trusted only when the manifest lists it with its
    current sha256: otherwise an interrupted run (or a hand edit) left it. The nearest folder
    with a manifest, up to the run folder above a stage (``run/pretrain/model.pt``), decides.
    """
    if not path.is_file():
        return path  # the reader says what is wrong with a missing path or a folder
    for folder in (path.parent, path.parent.parent):
        manifest = read_manifest(folder)
        if manifest is None:
            continue
        entry = manifest["files"].get(path.relative_to(folder).as_posix())
        if entry is None:
            raise DataError(
                f"{path} is not listed in {folder / MANIFEST}: the run that wrote it did not "
                "finish; rerun it (or --resume)"
            )
        if entry.get("sha256") != sha256(path):
            raise DataError(
                f"{path} changed after the run that wrote it (its sha256 differs from "
                f"{folder / MANIFEST}); rerun that command"
            )
        return path
    return path


@dataclass(frozen=True)
class LockHolder:
    """Who holds a run folder's lock."""

    pid: int
    host: str
    started: str

    @classmethod
    def me(cls) -> LockHolder:
        """This process, now."""
        return cls(os.getpid(), socket.gethostname(), _now())

    def is_alive(self) -> bool:
        """False only when the holder is on this host and its process is gone."""
        if self.host != socket.gethostname():
            return True  # cannot tell: never take over another machine's lock
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_holder(path: Path) -> LockHolder | None:
    try:
        data = json.loads(path.read_text())
        return LockHolder(int(data["pid"]), str(data["host"]), str(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _create_lock(path: Path) -> bool:
    """Create the lock file with this process as holder; False if it already exists."""
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as stream:
        json.dump(vars(LockHolder.me()), stream)
    return True


def acquire_lock(folder: Path) -> bool:
    """Take ``folder/.lock``; True when this call created it (and so must release it).

    Re-entrant: a lock already held by this process is kept (False). A lock whose holder is
    gone (same host, dead pid) is taken over; a lock that cannot be read is refused, since its
    writer may be alive (delete it by hand if not).
    """
    path = folder / LOCK
    folder.mkdir(parents=True, exist_ok=True)
    if _create_lock(path):
        return True
    holder = _read_holder(path)
    if holder is None:
        raise ConfigError(
            f"{path} exists but cannot be read; if no fisher-mi command is writing {folder}, "
            f"delete {path}"
        )
    if holder.pid == os.getpid() and holder.host == socket.gethostname():
        return False
    if holder.is_alive():
        raise ConfigError(
            f"{folder} is in use by process {holder.pid} on {holder.host} (since "
            f"{holder.started}); wait for it, use another --out, or delete {path} if that run "
            "is gone"
        )
    path.unlink(missing_ok=True)  # stale: its process is gone
    if _create_lock(path):
        return True
    raise ConfigError(f"could not take {path}: another process took it first; retry")


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete ``.NAME.RANDOM.tmp`` files left below ``folder`` by interrupted atomic writes."""
    stale = [p for p in folder.rglob(".*.tmp") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file below ``folder`` but the lock."""
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and p.name != LOCK
    }


@dataclass
class RunFolder:
    """One command's hold on its output folder: lock, stale clean-up, and the manifest.

    Args:
        folder: the run folder.
        outputs: the files (below ``folder``) the command may write; None: the whole folder
            is this run's (every previous entry is dropped at start).
        record: what ran (command, settings), written into the manifest.
    """

    folder: Path
    outputs: tuple[Path, ...] | None = None
    record: dict[str, Any] = field(default_factory=dict)
    _created: bool = False
    _locked: bool = False
    _before: dict[str, Any] | None = None
    _snapshot: dict[str, tuple[int, int]] = field(default_factory=dict)
    _kept: dict[str, Any] = field(default_factory=dict)
    _started: str = ""

    def __enter__(self) -> RunFolder:
        self._created = not self.folder.exists()
        self._locked = acquire_lock(self.folder)
        self._started = _now()
        remove_stale_temporaries(self.folder)
        self._before = read_manifest(self.folder)
        self._snapshot = _snapshot(self.folder)
        self._kept = self._kept_entries()
        self._write_manifest(self._kept, complete=False)
        return self

    def _kept_entries(self) -> dict[str, Any]:
        """What stays listed while this command runs: the previous entries (in a folder
        without a manifest, the files found there, as they are now, since they were trusted
        until now) less the files this command will rewrite; nothing for a whole-folder run."""
        if self.outputs is None:
            return {}
        if self._before is not None:
            kept = dict(self._before["files"])
        else:
            kept = {
                name: {"sha256": sha256(self.folder / name), "bytes": size}
                for name, (size, _) in self._snapshot.items()
                if name != MANIFEST and not name.endswith(".tmp")
            }
        for path in self.outputs:
            kept.pop(self._relative(path), None)
        return kept

    def _relative(self, path: Path) -> str:
        return Path(path).resolve().relative_to(self.folder.resolve()).as_posix()

    def _write_manifest(self, files: dict[str, Any], *, complete: bool) -> None:
        runs = list((self._before or {}).get("runs", []))
        run = {**self.record, "started": self._started, "complete": complete}
        if complete:
            run["finished"] = _now()
        write_json(
            self.folder / MANIFEST,
            {
                "format": MANIFEST_FORMAT,
                "files": dict(sorted(files.items())),
                "runs": [*runs, run],
                "versions": versions(),
            },
        )

    def finish(self, written: Iterable[Path]) -> Path:
        """List ``written`` (and the still-valid previous entries) in the manifest, last."""
        now = _snapshot(self.folder)
        files = {  # entries of files left as they were at the start (size and mtime)
            name: entry
            for name, entry in self._kept.items()
            if name in now and now[name] == self._snapshot.get(name)
        }
        for path in written:
            path = Path(path)
            files[self._relative(path)] = {"sha256": sha256(path), "bytes": path.stat().st_size}
        self._write_manifest(files, complete=True)
        return self.folder / MANIFEST

    def __exit__(self, kind: type | None, *_: object) -> None:
        try:
            if kind is not None and self._untouched():
                self._restore()
        finally:
            if self._locked:
                (self.folder / LOCK).unlink(missing_ok=True)
            if kind is not None and self._created:
                with contextlib.suppress(OSError):
                    self.folder.rmdir()  # only when the failed run left it empty

    def _untouched(self) -> bool:
        """True when no file but the manifest was added, removed or changed since the start."""
        before, now = dict(self._snapshot), _snapshot(self.folder)
        before.pop(MANIFEST, None)
        now.pop(MANIFEST, None)
        return before == now

    def _restore(self) -> None:
        """A command that failed before writing anything leaves the manifest as it found it."""
        path = self.folder / MANIFEST
        if self._before is None:
            path.unlink(missing_ok=True)
        else:
            write_json(path, self._before)

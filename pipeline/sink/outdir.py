"""What a run may write: only output directories it owns, and one run per output at a time.

Ownership: a build replaces DIR only when DIR does not exist, is empty, or holds a build's own manifest
and nothing but the files that manifest lists (shards, manifest, dataset card, report); anything else is
refused unless the user asks to overwrite. A generate or train run writes only into a folder that is
missing, empty, or holds its own kind of output (so a train run never writes into a model's folder).

One writer: ``output_lock`` holds an exclusive ``flock`` on ``.NAME.work/lock`` for the whole run. The
kernel drops it when the holder dies (SIGKILL included), so a killed run's lock is simply taken over;
the file keeps the holder's pid and start time for the message a second run prints. ``--fresh`` clears
``.NAME.work`` but this file.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from pipeline.errors import PipelineError
from pipeline.resume.store import work_root
from schemas.manifest import Manifest

BUILD_FILES = frozenset({"manifest.json", "README.md", "report.html"})
GENERATE_ENTRIES = frozenset({"manifest.json", "generated", "rejects", "rounds"})
TRAIN_ENTRIES = frozenset(
    {"adapter", "checkpoints", "imported", "merged", "run_manifest.json", "state.safetensors", "train_log.jsonl"}
)


class OutputRefused(PipelineError):
    """The output directory holds something this run did not write."""


class OutputBusy(PipelineError):
    """Another run holds the output's lock."""


def _listing(names: list[str], most: int = 3) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _files(d: Path) -> list[str]:
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file() or p.is_symlink())


def _occupied(out: Path) -> bool:
    """False for a folder a run may fill: missing, or an empty directory; a file or a link is occupied."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        return True
    return out.exists() and any(out.iterdir())


def check_build_output(out: Path, overwrite: bool = False) -> None:
    """Raise OutputRefused unless a build may replace ``out`` (see the module docstring)."""
    if overwrite or not _occupied(out):
        return
    refuse = OutputRefused(f"{out} exists and is not a build output (use --overwrite to replace it)")
    if not out.is_dir() or out.is_symlink():
        raise refuse
    try:
        manifest = Manifest.model_validate_json((out / "manifest.json").read_bytes())
    except (OSError, ValidationError, ValueError):
        raise refuse from None
    if manifest.generation is not None:  # a generate run's output, not a build
        raise refuse
    owned = BUILD_FILES | {s.path for s in manifest.shards}
    foreign = [f for f in _files(out) if f not in owned]
    if foreign:
        raise OutputRefused(
            f"{out} holds files no build wrote ({_listing(foreign)}): move them, or use --overwrite "
            "to replace the whole directory"
        )


def _check_kind(out: Path, allowed: frozenset[str], kind: str) -> None:
    if not _occupied(out):
        return
    foreign = sorted(p.name for p in out.iterdir()) if out.is_dir() and not out.is_symlink() else []
    foreign = [n for n in foreign if n not in allowed]
    if not out.is_dir() or out.is_symlink() or foreign:
        held = f" (it holds {_listing(foreign)})" if foreign else ""
        raise OutputRefused(f"{out} exists and is not a {kind} output{held}: choose another --out")


def check_generate_output(out: Path) -> None:
    _check_kind(out, GENERATE_ENTRIES, "generate")


def check_train_output(out: Path) -> None:
    """A train run writes only into its own kind of folder: never into a model's (config.json, weights)."""
    _check_kind(out, TRAIN_ENTRIES, "train")


_held: dict[str, list] = {}  # lock path -> [open file, depth]: the lock is re-entrant within a process

LOCK_NAME = "lock"


def lock_path(out: Path) -> Path:
    return work_root(Path(os.path.abspath(out))) / LOCK_NAME


def _same_file(fh, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fh.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


@contextmanager
def output_lock(out: Path, wait: bool = False, log=None) -> Iterator[None]:
    """Hold the exclusive lock of output ``out`` for the block; OutputBusy when another run has it
    (or, with ``wait``, block until it is free).

    The lock file is ``.NAME.work/lock``. When the run leaves nothing else in ``.NAME.work`` (it was
    refused, or failed before finishing any work) the lock file and the folder are removed, so such a run
    leaves no trace; a run that was waiting on the removed file sees that it is gone and locks anew.
    """
    path = lock_path(out)
    key = str(path)
    if key in _held:  # the CLI took it; the flow it runs takes it again
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    fh = _acquire(path, out, wait, log)
    try:
        fh.seek(0)
        fh.truncate()
        started = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}))
        fh.flush()
        _held[key] = [fh, 1]
        try:
            yield
        finally:
            del _held[key]
            if [p.name for p in path.parent.iterdir()] == [LOCK_NAME]:  # still ours: no one else can be here
                path.unlink()
                try:
                    path.parent.rmdir()
                except OSError:  # another run has just started here
                    pass
    finally:
        fh.close()  # closing the file drops the lock


def _acquire(path: Path, out: Path, wait: bool, log):
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fh = open(path, "a+", encoding="utf-8")
        except FileNotFoundError:  # the folder was removed by a run finishing just now: again
            continue
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(path)
                if not wait:
                    raise OutputBusy(
                        f"{out} is being written by another run ({holder}); wait for it to end, or run "
                        "again with --wait"
                    ) from None
                if log is not None:
                    log.info("waiting for the run that writes %s (%s)", out, holder)
                fcntl.flock(fh, fcntl.LOCK_EX)
        except BaseException:
            fh.close()
            raise
        if _same_file(fh, path):
            return fh
        fh.close()  # the holder removed the file as it finished: lock the new one


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):  # the holder has not written its record yet
        return "a run that has just started"

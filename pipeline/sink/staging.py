"""The staging directory of a build: ``.NAME.partial`` beside DIR, renamed into place when complete,
so that a failed or killed run never leaves a half-written DIR."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline.failpoints import failpoint
from pipeline.sink.parquet import atomic_write_text


@dataclass
class StagingDir:
    """``.NAME.partial`` beside DIR, renamed to DIR when complete.

    With a ``key`` (a hash of everything the output depends on) a staging directory left by a killed run
    with the same key is resumed: its finished shards are kept, leftover temporary files removed. A
    different key, or none, starts it empty. The key file is removed before the rename.
    """

    final: Path
    key: str | None = None

    KEY_FILE = ".resume-key"

    @property
    def path(self) -> Path:
        return self.final.parent / f".{self.final.name}.partial"

    def __enter__(self) -> Path:
        key_file = self.path / self.KEY_FILE
        resumable = (
            self.key is not None
            and key_file.is_file()
            and key_file.read_text(encoding="utf-8").strip() == self.key
        )
        if resumable:
            for tmp in self.path.rglob(".*.tmp-*"):
                tmp.unlink()
        else:
            if self.path.exists():
                shutil.rmtree(self.path)
            self.path.mkdir(parents=True)
            if self.key is not None:
                atomic_write_text(key_file, self.key + "\n")
        self.resumed = resumable
        return self.path

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            if self.key is None:  # nothing could resume it
                shutil.rmtree(self.path, ignore_errors=True)
            return
        (self.path / self.KEY_FILE).unlink(missing_ok=True)
        failpoint("write-rename")
        old = self.final.parent / f".{self.final.name}.old"
        if old.exists():
            shutil.rmtree(old)
        if self.final.exists():
            self.final.rename(old)
        self.path.rename(self.final)
        if old.exists():
            shutil.rmtree(old)

"""Named crash points for the resume and safety tests: ``PIPELINE_FAILPOINT=NAME[:N][:ACTION]`` acts the
N-th time (default the first) the code passes ``failpoint(NAME)``.

ACTION ``kill`` (the default) SIGKILLs the build: the process that first imported this module with the
variable set (the CLI; its worker processes inherit ``PIPELINE_FAILPOINT_ROOT``) and the caller; ``crash``
SIGKILLs the calling process only (a worker the kernel's OOM killer picked). A SIGKILL cannot be caught, so no cleanup code runs:
what the rerun finds on disk is exactly what a power cut or an OOM kill would leave. ACTION ``pause``
holds the run there (up to 10 minutes) after creating the file named by ``PIPELINE_FAILPOINT_READY``, so
a test can act on a run that is known to be in the middle of its work (a second run, a killed server).
Unset (the normal case) a failpoint is one ``if`` on a module global.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "PIPELINE_FAILPOINT"
READY_ENV = "PIPELINE_FAILPOINT_READY"
PAUSE_SECONDS = 600


def _parse(value: str | None) -> tuple[str, int, str] | None:
    if not value:
        return None
    name, _, rest = value.partition(":")
    n, _, action = rest.partition(":")
    return name, int(n or 1), action or "kill"


ROOT_ENV = "PIPELINE_FAILPOINT_ROOT"
_ACTIVE = _parse(os.environ.get(ENV))
if _ACTIVE is not None:
    os.environ.setdefault(ROOT_ENV, str(os.getpid()))  # worker processes started later inherit it
_seen: dict[str, int] = {}


def failpoint(name: str) -> None:
    if _ACTIVE is None or _ACTIVE[0] != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] != _ACTIVE[1]:
        return
    if _ACTIVE[2] == "pause":
        if os.environ.get(READY_ENV):
            Path(os.environ[READY_ENV]).touch()
        time.sleep(PAUSE_SECONDS)
        return
    root = int(os.environ.get(ROOT_ENV, os.getpid()))
    if root != os.getpid() and _ACTIVE[2] != "crash":
        try:
            os.kill(root, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.kill(os.getpid(), signal.SIGKILL)

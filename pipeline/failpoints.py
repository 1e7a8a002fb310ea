"""Named crash points for the resume tests: ``PIPELINE_FAILPOINT=NAME[:N]`` SIGKILLs the process the N-th
time (default the first) the code passes ``failpoint(NAME)``.

A SIGKILL cannot be caught, so no cleanup code runs: what the rerun finds on disk is exactly what a power
cut or an OOM kill would leave. Unset (the normal case) a failpoint is one ``if`` on a module global.
"""

from __future__ import annotations

import os
import signal

ENV = "PIPELINE_FAILPOINT"


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    name, _, n = value.partition(":")
    return name, int(n or 1)


_ACTIVE = _parse(os.environ.get(ENV))
_seen: dict[str, int] = {}


def failpoint(name: str) -> None:
    if _ACTIVE is None or _ACTIVE[0] != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == _ACTIVE[1]:
        os.kill(os.getpid(), signal.SIGKILL)

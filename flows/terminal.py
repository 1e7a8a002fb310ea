"""What the CLI shows on the terminal, and what it settles before a run starts: one `error:` line and
exit status 2 for a problem it can name (fail), Prefect's console log on the command's stderr without
tracebacks of those problems (prefect_terminal), the output's lock and ownership check (owned_output),
the stop when Prefect's API server dies (api_lost), and the counts table."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from pipeline.errors import PipelineError
from schemas.recipe import RecipeError

err_console = Console(stderr=True)


def fail(message: str) -> None:
    err_console.print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(2)


def prefect_env() -> None:
    """Embedded Prefect: its ephemeral local API, no server to start, no analytics, no network."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "true")


@contextmanager
def prefect_terminal():
    """Prefect's console log on this command's stderr, as it is now (a command run in process, as by
    typer's test runner or a notebook, may have another stderr than the first one Prefect saw), and
    without what the CLI reports itself in one `error:` line (HandledErrors). Undone at the end."""
    from prefect.logging.configuration import setup_logging
    from prefect.logging.handlers import PrefectConsoleHandler

    setup_logging()
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    # what to put back: the stream a handler had, unless it was made during this command (then it holds
    # this command's stderr, which an in-process runner closes afterwards) and the process's own
    before = [h.stream if h.stream is not sys.stderr else sys.__stderr__ for h in handlers]
    quiet = HandledErrors()
    for h in handlers:
        h.stream = h.console.file = sys.stderr
        h.addFilter(quiet)
    try:
        yield
    finally:
        for h, stream in zip(handlers, before, strict=True):
            h.stream = h.console.file = stream
            h.removeFilter(quiet)


class HandledErrors(logging.Filter):
    """Leaves out of the terminal what Prefect logs about an error the CLI reports itself (a
    PipelineError or RecipeError: the exception with its traceback, and the failed-state lines that
    name it). The flow run's own log in Prefect's API keeps them."""

    def __init__(self):
        super().__init__()
        classes, self.names = [PipelineError, RecipeError], set()
        while classes:  # every subclass, wherever it is defined
            c = classes.pop()
            self.names.add(c.__name__)
            classes.extend(c.__subclasses__())

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (PipelineError, RecipeError)):
            return False
        if record.levelno >= logging.INFO and record.name.startswith("prefect."):
            message = record.getMessage()
            if ("Failed(" in message or "exception" in message) and any(n in message for n in self.names):
                return False
        return True


def absolute(path: Path) -> str:
    """The path made absolute without resolving links ("data/out/.." is "data", never "data/out/..")."""
    return os.path.abspath(path)


@contextmanager
def owned_output(out_dir: Path, wait: bool, check):
    """Hold the output's lock and check that the run may write there, before Prefect starts: a refusal
    is one line and exit status 2. The flow takes the same lock again (re-entrant in this process)."""
    from pipeline.sink.outdir import output_lock

    try:
        with output_lock(Path(absolute(out_dir)), wait, ConsoleLog()):
            check(Path(absolute(out_dir)))
            yield
    except PipelineError as err:
        fail(str(err))


class ConsoleLog:
    def info(self, msg: str, *args) -> None:
        err_console.print(msg % args, markup=False, highlight=False)


def api_lost(status: int | None) -> None:
    """Prefect's API server died under the run: say so in one line and stop now (the build is crash-safe:
    what finished is kept, and the same command resumes it)."""
    sys.stderr.write(
        f"error: Prefect's API server stopped during the run (exit status {status}); finished work is "
        "kept: run the same command again to resume\n"
    )
    sys.stderr.flush()
    os._exit(1)


def print_counts(counts: dict) -> None:
    table = Table(title="records per source")
    for col in ("source", "read", "kept", "rejected", "reasons"):
        table.add_column(col, justify="right" if col in ("read", "kept", "rejected") else "left")
    totals = [0, 0, 0]
    for name, c in counts.items():
        rej = sum(c["rejected"].values())
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(c["rejected"].items(), key=lambda kv: -kv[1]))
        table.add_row(name, str(c["read"]), str(c["kept"]), str(rej), reasons)
        totals = [totals[0] + c["read"], totals[1] + c["kept"], totals[2] + rej]
    table.add_row("total", *map(str, totals), "", style="bold")
    Console().print(table)

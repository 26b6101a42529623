"""Error kinds a user can act on, each mapped to the CLI's documented exit code."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_INPUT = 2
EXIT_SETUP = 3
EXIT_EXECUTION = 4
EXIT_INCONCLUSIVE = 5
EXIT_INTERRUPTED = 130


class AuditkitError(Exception):
    """Base class: the message is one line that tells the user what to fix."""

    exit_code: int = EXIT_EXECUTION

    def one_line(self) -> str:
        """The message folded onto a single line (stderr shows exactly this)."""
        return " ".join(str(self).split())


class InputError(AuditkitError):
    """Bad config, dataset or parameters: the user must change their input."""

    exit_code = EXIT_INPUT


class SetupError(AuditkitError):
    """The environment is not ready: endpoint unreachable, output dir not writable, port busy."""

    exit_code = EXIT_SETUP


class ExecutionError(AuditkitError):
    """A phase failed or was incomplete; records are kept, no verdict is written."""

    exit_code = EXIT_EXECUTION


class Interrupted(AuditkitError):
    """The run was stopped by SIGINT/SIGTERM; records so far are kept, no verdict is written."""

    exit_code = EXIT_INTERRUPTED


class NotebookStop(InputError):
    """A bad parameter stops the notebook with one line instead of a traceback.

    IPython prints `_render_traceback_()` instead of the traceback, so Jupyter, papermill's
    output notebook and nbval all show just the message.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"auditkit: {self.one_line()}"]


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """The hint `; did you mean X?` naming the known word closest to `word` ("" if none is)."""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"; did you mean {close[0]}?" if close else ""

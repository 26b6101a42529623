"""Executing a notebook with papermill in a kernel of its own, errors mapped to exit codes.

No event loop of ours runs here: papermill.execute_notebook must not be called from inside a
running loop (nteract/papermill#490), and the CLI calls it from plain Python.

papermill runs in a thread of its own while the main thread keeps Ctrl-C and SIGTERM: in the
main thread, nbclient puts its own signal handlers on its loop, which only schedule a kernel
shutdown; the cell ran on and a Ctrl-C during a run was lost (the audit finished and exited 0).
Here an interrupt reaches the kernel as SIGINT (the cell stops, the run keeps its records) and
the command exits 130.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditkit.errors import EXIT_EXECUTION, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_PASS, EXIT_SETUP


@dataclass
class NotebookOutcome:
    """What `auditkit notebook` did: exit code, verdict and the files it wrote."""

    exit_code: int
    message: str
    notebook: Path | None = None
    html: Path | None = None
    result_file: Path | None = None
    verdict: str | None = None
    seconds: float = 0.0


#: seconds an interrupted kernel gets to stop its cell and save the run's records (a second
#: Ctrl-C cuts this short) before it is killed
INTERRUPT_GRACE_S = 30.0


def kernel_manager_class(
    socket_dir: Path, log_file: Path | None = None, pids: list[int] | None = None
) -> type:
    """The kernel manager the runner uses: jupyter_client's async manager over IPC (unix
    sockets, protected by file permissions) instead of TCP, so ipykernel has no reason to warn
    "Kernel is running over TCP without encryption"; the kernel's own stderr (its log, e.g. the
    ZMQ errors of a kernel stopped by Ctrl-C mid-cell) goes to `log_file` instead of the
    terminal. Cell output still reaches the notebook (it travels over the kernel's sockets).

    The sockets live in `socket_dir`, which must be private to this run: jupyter_client's
    default IPC path is `kernel-ipc-<n>` relative to the working directory, so two notebooks
    started together from one directory bound the same sockets and talked to each other's
    kernels ("Invalid Signature", then "Kernel didn't respond in 60 seconds")."""
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import CaselessStrEnum, default

    class QuietKernelManager(AsyncKernelManager):
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _private_socket_path(self) -> str:
            if self.transport == "ipc":
                return str(socket_dir / "kernel")
            return super()._ip_default()

        async def start_kernel(self, **kw: Any) -> None:  # type: ignore[override]
            if log_file is not None:
                log_file.parent.mkdir(parents=True, exist_ok=True)
                with log_file.open("ab") as sink:  # Popen dups the descriptor
                    kw.setdefault("stderr", sink)
                    await super().start_kernel(**kw)
            else:
                await super().start_kernel(**kw)
            pid = getattr(self.provisioner, "pid", None)
            if pids is not None and isinstance(pid, int):
                pids.append(pid)

    return QuietKernelManager


def execute(
    source: Path, executed: Path, values: Mapping[str, Any], cell_timeout_s: int
) -> NotebookOutcome:
    """Run `source` with `values` as its parameters, writing `executed`; the outcome says
    "executed" (exit 0) or which error stopped it, with its documented exit code. Ctrl-C (or
    SIGTERM, which the CLI turns into one) stops the kernel's cell and raises
    KeyboardInterrupt once the kernel has stopped."""
    pids: list[int] = []
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["outcome"] = _execute(source, executed, values, cell_timeout_s, pids)
        except BaseException as exc:  # handed to the main thread, which raises it
            box["error"] = exc

    thread = threading.Thread(target=work, name="auditkit-notebook", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.2)  # short waits: the main thread must stay free to take a signal
    except KeyboardInterrupt:
        _signal_kernels(pids, signal.SIGINT)
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop now
            thread.join(INTERRUPT_GRACE_S)
        if thread.is_alive():
            _signal_kernels(pids, signal.SIGKILL)
            thread.join(5)
        # the half-finished tasks an interrupted run leaves would be logged at exit as
        # tracebacks ("Kernel died", "Task exception was never retrieved") that add nothing
        # to the CLI's one line
        for name in ("asyncio", "traitlets", "papermill", "nbclient"):
            logging.getLogger(name).disabled = True
        raise
    if "error" in box:
        raise box["error"]
    outcome: NotebookOutcome = box["outcome"]
    return outcome


def _signal_kernels(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _execute(
    source: Path, executed: Path, values: Mapping[str, Any], cell_timeout_s: int, pids: list[int]
) -> NotebookOutcome:
    import papermill  # papermill and the kernel machinery load only when a notebook runs
    from papermill.exceptions import PapermillExecutionError

    log_file = executed.with_suffix(".kernel.log")
    with contextlib.suppress(FileNotFoundError):
        log_file.unlink()
    # short and private: a unix socket path must stay under ~107 bytes
    socket_dir = tempfile.TemporaryDirectory(prefix="auditkit-kernel-")
    try:
        papermill.execute_notebook(
            str(source),
            str(executed),
            parameters=dict(values),
            kernel_name="python3",
            execution_timeout=cell_timeout_s,
            progress_bar=False,
            cwd=os.getcwd(),
            kernel_manager_class=kernel_manager_class(Path(socket_dir.name), log_file, pids),
        )
    except PapermillExecutionError as exc:
        if exc.ename == "NotebookStop":  # the notebook's own parameter check
            return NotebookOutcome(EXIT_INPUT, f"{exc.evalue}")
        # the run's own errors keep their documented exit codes inside a kernel too
        codes = {
            "SetupError": EXIT_SETUP,
            "Interrupted": EXIT_INTERRUPTED,
            # Ctrl-C that reached the kernel outside a phase (between cells, in a plot)
            "KeyboardInterrupt": EXIT_INTERRUPTED,
        }
        if exc.ename in codes:
            return NotebookOutcome(codes[exc.ename], " ".join(str(exc.evalue).split())[:300])
        evalue = " ".join(str(exc.evalue).split())[:300]
        return NotebookOutcome(
            EXIT_EXECUTION,
            f"notebook crashed in cell {exc.exec_count}: {exc.ename}: {evalue} (see {executed})",
        )
    except Exception as exc:  # kernel died, timeout, …: still an execution error
        text = " ".join(str(exc).split())[:300]
        return NotebookOutcome(EXIT_EXECUTION, f"notebook failed: {type(exc).__name__}: {text}")
    finally:
        socket_dir.cleanup()
        # a kernel that logged nothing leaves no empty file beside the notebook
        with contextlib.suppress(OSError):
            if log_file.stat().st_size == 0:
                log_file.unlink()
    return NotebookOutcome(EXIT_PASS, "executed")

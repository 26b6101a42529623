"""Progress bars for phases: tqdm on a terminal, a widget bar in notebooks (tqdm.auto)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from auditkit.plan import RunSpec

Callback = Callable[[int, int], None]


def tqdm_progress(
    *, notebook: bool = False, enabled: bool | None = None, leave: bool = True
) -> Callable[[RunSpec], tuple[Callback, Callable[[], None]]]:
    """A progress factory for run_audit: one bar per phase (off when stderr is not a TTY;
    `leave=False`: each bar is erased when its phase ends, so only the running one shows)."""
    from tqdm import tqdm as terminal_tqdm
    from tqdm.auto import tqdm as auto_tqdm

    tqdm = auto_tqdm if notebook else terminal_tqdm
    show = enabled if enabled is not None else (notebook or sys.stderr.isatty())

    def factory(spec: RunSpec) -> tuple[Callback, Callable[[], None]]:
        if not show:
            return (lambda _done, _total: None), (lambda: None)
        bar = tqdm(
            total=spec.planned_queries, desc=spec.name, unit="q", leave=leave, file=sys.stderr
        )

        def update(done: int, _total: int) -> None:
            bar.update(done - bar.n)

        return update, bar.close

    return factory

"""The interactive caching investigation: an endpoint form, one button per catalogue probe, and a
history that keeps every probe's result on screen.

Probes run in a worker thread (one at a time) and push partial results into the widgets: each
probe run gets a card (plot rendered to PNG into an `Image` widget, finding and effects table
as `HTML`) in a wrapping grid, so results sit side by side; a results table grows by one row per
run. Plain trait assignments are safe from a thread and visible while the kernel stays idle;
fire-and-forget asyncio tasks would not do: ipykernel 7 stalls them between cells.
"""

from __future__ import annotations

import html
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd
from pydantic import ValidationError

from auditkit import plots, probes
from auditkit.config import DatasetConfig, EndpointConfig, MockConfig, format_validation_error
from auditkit.data import Dataset, load_dataset
from auditkit.errors import AuditkitError
from auditkit.loadgen import resolve_api_key
from auditkit.mock.presets import PRESETS, preset_config

# Live redraws at most twice a second, on a renderer thread: a PNG costs ~50 ms of CPU, and
# drawing on the loop thread (where updates arrive) would delay the probe's own requests.
RENDER_INTERVAL_S = 0.5
IDLE = "<b style='color:#1a7f37'>● idle</b>"
RUNNING = "<b style='color:#bf8700'>● running</b>"


def _table_html(frame: pd.DataFrame, size: str = "100%") -> str:
    if frame.empty:
        return ""
    table = frame.to_html(na_rep="—", float_format=lambda x: f"{x:.3g}", index_names=False)
    return f"<div style='font-size:{size}'>{table}</div>"


class ProbeCard:
    """One probe run on screen: title, plot, finding and effects table."""

    def __init__(self, title: str) -> None:
        self.title = w.HTML(f"<b>{html.escape(title)}</b>")
        self.image = w.Image(format="png", layout=w.Layout(width="500px"))
        self.finding = w.HTML(layout=w.Layout(width="500px"))
        self.table = w.HTML(layout=w.Layout(width="500px"))
        # a fixed width, so two cards sit side by side in a notebook of ordinary width
        self.box = w.VBox(
            [self.title, self.image, self.finding, self.table],
            layout=w.Layout(width="520px", border="1px solid #d0d7de", padding="4px", margin="4px"),
        )

    def show(self, result: probes.ProbeResult) -> None:
        """Draw `result` (partial or final) into the card."""
        fig = plots.probe_figure(result.records, title=result.title)
        self.image.value = plots.figure_png(fig)
        self.finding.value = html.escape(result.finding)
        self.table.value = _table_html(result.table, size="85%")


class CachingInvestigator:
    """Form + probe buttons + growing history. Build it, then show `.ui` as a cell's value."""

    def __init__(
        self, dataset: str = "data/prompts.jsonl", k: int = 10, output_dir: str = "auditkit-out"
    ) -> None:
        self.dataset_path = dataset
        self._dataset: Dataset | None = None
        self._mocks: dict[str, Any] = {}
        self._target_key: tuple[Any, ...] | None = None
        self._target: probes.ProbeTarget | None = None
        self._thread: threading.Thread | None = None
        self._stop: probes.StopFlag | None = None
        self._pending: probes.ProbeResult | None = None
        self._pending_lock = threading.Lock()
        self._wake = threading.Event()
        #: the latest result of each probe (what the diagnosis combines)
        self.results: dict[str, probes.ProbeResult] = {}
        #: every finished probe run, in order (the results table and the export)
        self.history: list[probes.ProbeResult] = []
        self.cards: list[ProbeCard] = []
        self.errors: list[str] = []
        self.exported: Path | None = None

        style = {"description_width": "110px"}
        wide = w.Layout(width="460px")
        self.url = w.Text(
            description="URL", placeholder="blank → embedded mock", style=style, layout=wide
        )
        self.cache = w.Dropdown(
            description="mock", options=list(PRESETS), value="no cache", style=style
        )
        self.api = w.Dropdown(
            description="API",
            options=["openai-completions", "openai-chat"],
            value="openai-completions",
            style=style,
        )
        self.model = w.Text(
            description="model", placeholder="blank → first of /v1/models", style=style
        )
        self.key_env = w.Text(
            description="key env var",
            placeholder="NAME of the variable, e.g. OPENAI_API_KEY",
            style=style,
            layout=wide,
        )
        self.user_agent = w.Text(
            description="User-Agent", placeholder="blank → the HTTP client's own", style=style
        )
        self.stream = w.Checkbox(
            value=True, description="stream (splits TTFT and decode)", indent=False
        )
        self.k = w.BoundedIntText(value=k, min=3, max=256, description="rounds k", style=style)
        self.output_dir = w.Text(description="output folder", value=output_dir, style=style)
        # one button per catalogue entry: the catalogue is the only list of probes
        self.buttons = {
            name: w.Button(
                description=probe.label, tooltip=probe.doc, layout=w.Layout(width="230px")
            )
            for name, probe in probes.CATALOGUE.items()
        }
        for name, button in self.buttons.items():
            button.on_click(self._click_handler(name))
        self.stop_button = w.Button(description="Stop", button_style="warning", disabled=True)
        self.stop_button.on_click(lambda _b: self.stop())
        self.export_button = w.Button(description="Export records", disabled=True)
        self.export_button.on_click(lambda _b: self.export())
        self.state = w.HTML(IDLE)
        self.status = w.HTML(value="Pick a probe. Blank URL → embedded mock.")
        self.diagnosis = w.HTML()
        self.table = w.HTML()
        self.grid = w.Box(layout=w.Layout(display="flex", flex_flow="row wrap", width="100%"))
        self.url.observe(self._toggle_cache, names="value")

        form = w.VBox(
            [
                self.url,
                self.cache,
                self.api,
                self.model,
                self.key_env,
                self.user_agent,
                w.HBox([self.k, self.stream]),
                self.output_dir,
            ]
        )
        buttons = list(self.buttons.values())
        rows = [w.HBox(buttons[i : i + 3]) for i in range(0, len(buttons), 3)]
        controls = w.VBox([*rows, w.HBox([self.stop_button, self.export_button, self.state])])
        self.ui = w.VBox(
            [
                w.HTML("<b>Endpoint</b>"),
                form,
                w.HTML("<b>Probes</b>"),
                controls,
                self.status,
                self.diagnosis,
                self.table,
                self.grid,
            ]
        )

    # --- state ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while a probe runs."""
        return self._thread is not None and self._thread.is_alive()

    def _toggle_cache(self, _change: Any = None) -> None:
        self.cache.disabled = bool(self.url.value.strip())

    def _set_status(self, text: str, error: bool = False) -> None:
        colour = "#cf222e" if error else "#57606a"
        self.status.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"

    def _set_running(self, running: bool) -> None:
        for button in self.buttons.values():
            button.disabled = running
        self.stop_button.disabled = not running
        self.export_button.disabled = running or not self.history
        self.state.value = RUNNING if running else IDLE

    def _endpoint(self) -> EndpointConfig:
        return EndpointConfig(
            url=self.url.value.strip() or None,
            api=self.api.value,
            model=self.model.value.strip() or None,
            api_key_env=self.key_env.value.strip() or None,
            user_agent=self.user_agent.value.strip() or None,
            stream=self.stream.value,
        )

    def target(self) -> probes.ProbeTarget:
        """The probe target for the form's current values (starts the mock if URL is blank).

        Reused while the form is unchanged, so a session's fresh-prompt counter keeps going.
        """
        try:
            endpoint = self._endpoint()
        except ValidationError as exc:
            raise AuditkitError(format_validation_error(exc, "form")) from None
        key = (endpoint.model_dump_json(), self.cache.value if endpoint.url is None else None)
        if self._target is not None and self._target_key == key:
            return self._target
        if self._dataset is None:
            self._dataset = load_dataset(DatasetConfig(path=self.dataset_path))
        api_key = resolve_api_key(endpoint)
        if endpoint.url is None:
            base_url, label = self._mock_url(self.cache.value), f"mock ({self.cache.value})"
        else:
            base_url, label = endpoint.url, endpoint.url
        self._target = probes.ProbeTarget.connect(
            endpoint, base_url, self._dataset, api_key=api_key, label=label
        )
        self._target_key = key
        return self._target

    def _mock_url(self, preset: str) -> str:
        # its own process: a mock in the kernel would share the GIL with the client and the
        # plot renderer, and their pauses would read as the server's latency
        from auditkit.mock import MockProcess

        server = self._mocks.get(preset)
        if server is None or not server.running:
            server = MockProcess(MockConfig.model_validate(preset_config(preset))).start()
            self._mocks[preset] = server
        return str(server.url)

    # --- running probes ---------------------------------------------------------------------

    def _click_handler(self, name: str) -> Callable[[w.Button], None]:
        def handler(_button: w.Button) -> None:
            self.run(name)

        return handler

    def run(self, name: str) -> bool:
        """Start probe `name` in the worker thread; False if one is running or setup failed."""
        label = probes.CATALOGUE[name].label
        if self.busy:
            self._set_status("a probe is already running; press Stop first")
            return False
        self._set_status(f"connecting for {label}…")
        try:
            target = self.target()
        except AuditkitError as exc:
            self.errors.append(exc.one_line())
            self._set_status(exc.one_line(), error=True)
            return False
        self._stop = probes.StopFlag()
        card = ProbeCard(f"{len(self.history) + 1}. {label} — {target.label}")
        self.cards.append(card)
        self.grid.children = (*self.grid.children, card.box)
        self._set_running(True)
        self._set_status(f"running {label} against {target.label}, k={self.k.value}")
        self._thread = threading.Thread(
            target=self._work, args=(name, target, self.k.value, self._stop, card), daemon=True
        )
        self._thread.start()
        return True

    def _work(
        self,
        name: str,
        target: probes.ProbeTarget,
        k: int,
        stop: probes.StopFlag,
        card: ProbeCard,
    ) -> None:
        label = probes.CATALOGUE[name].label
        started = time.monotonic()
        done = threading.Event()
        renderer = threading.Thread(target=self._render_loop, args=(done, card), daemon=True)
        renderer.start()
        try:
            result = probes.run_probe(name, target, k, on_update=self._live, stop=stop)
            done.set()
            renderer.join()
            card.show(result)
            self.results[name] = result
            self.history.append(result)
            self._show_history()
            took = time.monotonic() - started
            state = "stopped" if stop.is_set() else "done"
            self._set_status(f"{label}: {state} in {took:.1f} s ({target.label})")
        except AuditkitError as exc:
            self.errors.append(exc.one_line())
            self._set_status(exc.one_line(), error=True)
        except Exception as exc:  # shown in the UI: a worker thread has no cell to raise into
            self.errors.append(traceback.format_exc())
            self._set_status(f"probe failed: {type(exc).__name__}: {exc}", error=True)
        finally:
            done.set()
            self._set_running(False)

    def _show_history(self) -> None:
        rows = [probes.history_row(r) for r in self.history]
        self.table.value = _table_html(pd.DataFrame(rows, index=range(1, len(rows) + 1)))
        text = probes.diagnose(self.results)
        self.diagnosis.value = f"<b>Diagnosis so far:</b> {html.escape(text)}"

    def _live(self, result: probes.ProbeResult) -> None:
        # called on auditkit's loop thread: only hand the result over, never draw here
        with self._pending_lock:
            self._pending = result
        self._wake.set()

    def _render_loop(self, done: threading.Event, card: ProbeCard) -> None:
        while not done.is_set():
            self._wake.wait(RENDER_INTERVAL_S)
            self._wake.clear()
            with self._pending_lock:
                result, self._pending = self._pending, None
            if result is not None and not done.is_set():
                card.show(result)
            done.wait(RENDER_INTERVAL_S)

    def stop(self) -> None:
        """Ask the running probe to stop (it records what completed)."""
        if self._stop is not None:
            self._stop.set()

    def export(self) -> Path | None:
        """Write every probe run's records and the results table under the output folder."""
        if not self.history:
            self._set_status("nothing to export yet: run a probe first")
            return None
        try:
            folder = probes.export_records(self.history, self.output_dir.value.strip() or ".")
        except OSError as exc:
            self._set_status(f"export failed: {exc}", error=True)
            return None
        self.exported = folder
        self._set_status(f"exported {len(self.history)} probe run(s) to {folder}")
        return folder

    def wait(self, timeout_s: float = 60.0) -> bool:
        """Block until the running probe ends (for tests and scripts); True if it ended."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        return not self.busy

    def close(self) -> None:
        """Stop the probe and any embedded mocks this UI started."""
        self.stop()
        self.wait(10)
        for server in self._mocks.values():
            server.stop()
        self._mocks.clear()
        self._target = None

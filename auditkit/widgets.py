"""The interactive caching investigation: an endpoint form and one button per probe.

Probes run in a worker thread (one at a time) and push partial results into the widgets: the
plot is rendered to PNG into an `Image` widget and the table into an `HTML` widget, because
both are plain trait assignments, safe from a thread and visible while the kernel stays idle.
Fire-and-forget asyncio tasks would not do: ipykernel 7 stalls them between cells.
"""

from __future__ import annotations

import html
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import ipywidgets as w
from pydantic import ValidationError

from auditkit import plots, probes
from auditkit.config import DatasetConfig, EndpointConfig, MockConfig, format_validation_error
from auditkit.data import Dataset, load_dataset
from auditkit.errors import AuditkitError
from auditkit.loadgen import resolve_api_key

PROBE_BUTTONS: dict[str, str] = {
    "repeat_vs_distinct": "(a) repeated vs distinct",
    "cold_vs_warm": "(b) cold vs warm",
    "shared_prefix": "(c) shared prefix",
    "output_identity": "(d) identical outputs T>0",
}
# Live redraws at most twice a second, on a renderer thread: a PNG costs ~50 ms of CPU, and
# drawing on the loop thread (where updates arrive) would delay the probe's own requests.
RENDER_INTERVAL_S = 0.5


class CachingInvestigator:
    """Form + probe buttons + live plot/table. Build it, then show `.ui` as a cell's value."""

    def __init__(self, dataset: str = "data/prompts.jsonl", k: int = 8) -> None:
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
        self.results: dict[str, probes.ProbeResult] = {}
        self.errors: list[str] = []

        style = {"description_width": "110px"}
        wide = w.Layout(width="460px")
        self.url = w.Text(
            description="URL",
            placeholder="blank → embedded mock",
            style=style,
            layout=wide,
        )
        self.cache = w.Dropdown(
            description="mock cache",
            options=["none", "output", "prefix"],
            value="none",
            style=style,
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
        self.stream = w.Checkbox(
            value=True, description="stream (splits TTFT and decode)", indent=False
        )
        self.k = w.BoundedIntText(value=k, min=2, max=256, description="k", style=style)
        self.buttons = {
            name: w.Button(description=label, layout=w.Layout(width="210px"))
            for name, label in PROBE_BUTTONS.items()
        }
        for name, button in self.buttons.items():
            button.on_click(self._click_handler(name))
        self.stop_button = w.Button(description="Stop", button_style="warning", disabled=True)
        self.stop_button.on_click(lambda _b: self.stop())
        self.status = w.HTML(value="Pick a probe. Blank URL → embedded mock.")
        self.finding = w.HTML()
        self.diagnosis = w.HTML()
        self.image = w.Image(format="png", layout=w.Layout(width="720px"))
        self.table = w.HTML()
        self.url.observe(self._toggle_cache, names="value")

        form = w.VBox(
            [
                self.url,
                self.cache,
                self.api,
                self.model,
                self.key_env,
                w.HBox([self.k, self.stream]),
            ]
        )
        buttons = w.VBox(
            [
                w.HBox([self.buttons["repeat_vs_distinct"], self.buttons["cold_vs_warm"]]),
                w.HBox([self.buttons["shared_prefix"], self.buttons["output_identity"]]),
                self.stop_button,
            ]
        )
        self.ui = w.VBox(
            [
                w.HTML("<b>Endpoint</b>"),
                form,
                w.HTML("<b>Probes</b>"),
                buttons,
                self.status,
                self.finding,
                self.diagnosis,
                self.image,
                self.table,
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

    def _set_buttons(self, running: bool) -> None:
        for button in self.buttons.values():
            button.disabled = running
        self.stop_button.disabled = not running

    def _endpoint(self) -> EndpointConfig:
        return EndpointConfig(
            url=self.url.value.strip() or None,
            api=self.api.value,
            model=self.model.value.strip() or None,
            api_key_env=self.key_env.value.strip() or None,
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
            base_url, label = self._mock_url(self.cache.value), f"mock (cache={self.cache.value})"
        else:
            base_url, label = endpoint.url, endpoint.url
        self._target = probes.ProbeTarget.connect(
            endpoint, base_url, self._dataset, api_key=api_key, label=label
        )
        self._target_key = key
        return self._target

    def _mock_url(self, cache: str) -> str:
        from auditkit.mock import MockServer

        server = self._mocks.get(cache)
        if server is None or not server.running:
            server = MockServer(MockConfig.model_validate({"cache": cache})).start()
            self._mocks[cache] = server
        return str(server.url)

    # --- running probes ---------------------------------------------------------------------

    def _click_handler(self, name: str) -> Callable[[w.Button], None]:
        def handler(_button: w.Button) -> None:
            self.run(name)

        return handler

    def run(self, name: str) -> bool:
        """Start probe `name` in the worker thread; False if one is running or setup failed."""
        if self.busy:
            self._set_status("a probe is already running; press Stop first")
            return False
        self._set_status(f"connecting for {PROBE_BUTTONS[name]}…")
        try:
            target = self.target()
        except AuditkitError as exc:
            self.errors.append(exc.one_line())
            self._set_status(exc.one_line(), error=True)
            return False
        self._stop = probes.StopFlag()
        self._set_buttons(running=True)
        self._set_status(f"running {PROBE_BUTTONS[name]} against {target.label}, k={self.k.value}")
        self._thread = threading.Thread(
            target=self._work, args=(name, target, self.k.value, self._stop), daemon=True
        )
        self._thread.start()
        return True

    def _work(self, name: str, target: probes.ProbeTarget, k: int, stop: probes.StopFlag) -> None:
        started = time.monotonic()
        done = threading.Event()
        renderer = threading.Thread(target=self._render_loop, args=(done,), daemon=True)
        renderer.start()
        try:
            result = probes.PROBES[name](target, k, on_update=self._live, stop=stop)
            done.set()
            renderer.join()
            self._render(result)
            self.results[name] = result
            self.diagnosis.value = (
                f"<b>Diagnosis so far:</b> {html.escape(probes.diagnose(self.results))}"
            )
            took = time.monotonic() - started
            state = "stopped" if stop.is_set() else "done"
            self._set_status(f"{PROBE_BUTTONS[name]}: {state} in {took:.1f} s ({target.label})")
        except AuditkitError as exc:
            self.errors.append(exc.one_line())
            self._set_status(exc.one_line(), error=True)
        except Exception as exc:  # shown in the UI: a worker thread has no cell to raise into
            self.errors.append(traceback.format_exc())
            self._set_status(f"probe failed: {type(exc).__name__}: {exc}", error=True)
        finally:
            done.set()
            self._set_buttons(running=False)

    def _live(self, result: probes.ProbeResult) -> None:
        # called on auditkit's loop thread: only hand the result over, never draw here
        with self._pending_lock:
            self._pending = result
        self._wake.set()

    def _render_loop(self, done: threading.Event) -> None:
        while not done.is_set():
            self._wake.wait(RENDER_INTERVAL_S)
            self._wake.clear()
            with self._pending_lock:
                result, self._pending = self._pending, None
            if result is not None and not done.is_set():
                self._render(result)
            done.wait(RENDER_INTERVAL_S)

    def _render(self, result: probes.ProbeResult) -> None:
        fig = plots.probe_figure(result.records, title=result.title)
        self.image.value = plots.figure_png(fig)
        self.table.value = result.table.to_html(
            na_rep="—", float_format=lambda x: f"{x:.3g}", index_names=False
        )
        self.finding.value = f"<b>{html.escape(result.title)}:</b> {html.escape(result.finding)}"

    def stop(self) -> None:
        """Ask the running probe to stop (it records what completed)."""
        if self._stop is not None:
            self._stop.set()

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

"""Browser check of the caching-investigation UI in a real JupyterLab (`make ui-check`).

Starts JupyterLab headless on 127.0.0.1 (no token, own port) over a *copy* of the notebooks
(so autosave never writes outputs into the committed ones), opens investigate_caching.ipynb in
headless Chromium, runs all cells (the notebook's example cell runs probe (a)), clicks probe
(b)'s button, waits for it to finish and saves a screenshot of the two probes' results side by
side to out/ui_check.png. Exit 0 when both result cards (plot, finding, table) showed beside
the growing results table.

`--report PATH.html` checks an HTML report instead (`auditkit notebook test04 --html`): it
opens the file in headless Chromium at each `--sizes` (default 1280x800 and 1920x1080), saves
the first screen and the whole page as PNGs beside `--out`, and exits 0 when the verdict panel
is on the first screen and the parameters are folded (not shown) there.

Needs Debian's `chromium` and `chromium-driver` packages and `pip install -e '.[ui]'`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "investigate_caching.ipynb"
FIRST = "(a) back-to-back repeats"  # the notebook's example cell runs it
BUTTON = "(b) interleaved repeats"
CHROME_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1800,2200",
)


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_lab(root: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """JupyterLab on 127.0.0.1:port, token-less, app exposed for scripted commands."""
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers often run as root
        cmd.append("--allow-root")
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=root)


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    """Poll until `url` answers 200 (fail fast if the server process exits)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ui-check: JupyterLab exited ({proc.returncode}); see its log")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"ui-check: JupyterLab did not answer {url} within {timeout_s:g} s")


def chromium_paths() -> tuple[str, str]:
    """(browser, driver) binaries from the Debian packages."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        raise SystemExit(
            "ui-check: needs chromium and chromedriver (apt-get install chromium chromium-driver)"
        )
    return browser, driver


def run(out: Path, timeout_s: float) -> int:
    """The whole check; returns the exit code."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = chromium_paths()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="auditkit-ui-"))
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, work / NOTEBOOK)
    port = free_port()
    lab = start_lab(work, port, out / "ui_check_lab.log")
    driver = None
    try:
        wait_http(f"http://127.0.0.1:{port}/api/status", 60, lab)
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in CHROME_FLAGS:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        wait = WebDriverWait(driver, timeout_s)
        driver.get(f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?reset")
        wait.until(lambda d: d.execute_script(
            "const a = window.jupyterapp; const w = a && a.shell.currentWidget;"
            "return !!(w && w.sessionContext && w.sessionContext.session"
            " && w.sessionContext.session.kernel"
            " && w.sessionContext.session.kernel.status === 'idle');"
        ))  # fmt: skip
        print("ui-check: notebook open, kernel idle; running all cells")
        # the file browser off: the notebook gets the window's width for two cards abreast
        driver.execute_script("window.jupyterapp.commands.execute('application:toggle-left-area')")
        driver.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        button_xpath = f"//button[contains(@class,'widget-button') and contains(., '{BUTTON}')]"
        button = wait.until(ec.element_to_be_clickable((By.XPATH, button_xpath)))
        # the notebook's own example cell runs probe (a); wait for it before clicking (b)
        wait.until(lambda d: f"{FIRST}: done" in d.page_source)
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", button)
        button.click()
        print(f"ui-check: clicked {BUTTON!r}")
        wait.until(lambda d: f"{BUTTON}: done" in d.page_source)
        time.sleep(0.5)  # let the last image update paint
        # show the buttons, the results table and the two cards side by side
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", button)
        time.sleep(0.3)
        shot = out / "ui_check.png"
        driver.save_screenshot(str(shot))
        images = driver.find_elements(By.CSS_SELECTOR, ".widget-image")
        tables = driver.find_elements(By.CSS_SELECTOR, ".widget-html table")
        tops = {round(i.location["y"]) for i in images}
        side_by_side = len(images) >= 2 and len(tops) < len(images)
        print(
            f"ui-check: screenshot {shot} (plot images: {len(images)}, tables: {len(tables)}, "
            f"side by side: {side_by_side})"
        )
        return 0 if side_by_side and len(tables) >= 3 else 1
    finally:
        if driver is not None:
            driver.quit()
        lab.terminate()
        try:
            lab.wait(15)
        except subprocess.TimeoutExpired:
            lab.kill()
        shutil.rmtree(work, ignore_errors=True)


def report(html: Path, out: Path, sizes: list[tuple[int, int]]) -> int:
    """Screenshots of an HTML report (first screen and whole page) at each size; 0 when the
    verdict panel starts on the first screen and no parameters cell shows above it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    browser, driver_path = chromium_paths()
    out.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    ok = True
    try:
        for width, height in sizes:
            driver.set_window_size(width, height)
            driver.get(html.resolve().as_uri())
            time.sleep(0.5)
            inner = driver.execute_script("return window.innerHeight")
            panel = driver.find_element(By.CSS_SELECTOR, ".auditkit-verdict")
            top = panel.location["y"]
            first = out / f"report_{width}x{height}_first_screen.png"
            driver.save_screenshot(str(first))
            full_height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(width, min(int(full_height) + 200, 16000))
            time.sleep(0.3)
            whole = out / f"report_{width}x{height}_full_page.png"
            driver.save_screenshot(str(whole))
            folded = driver.find_elements(By.CSS_SELECTOR, "details")
            shown = [d for d in folded if d.get_attribute("open")]
            print(
                f"ui-check: {width}x{height}: verdict panel at y={top} of a {inner}-px screen, "
                f"page {full_height} px, {len(folded)} folded blocks ({len(shown)} open); "
                f"{first.name}, {whole.name}"
            )
            ok = ok and top < inner and not shown and len(folded) >= 2
    finally:
        driver.quit()
    return 0 if ok else 1


def main() -> int:
    """Parse flags and run the check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-step timeout (s)")
    parser.add_argument("--report", type=Path, help="check this HTML report instead")
    parser.add_argument(
        "--sizes", default="1280x800,1920x1080", help="window sizes for --report (WxH,...)"
    )
    args = parser.parse_args()
    if args.report is not None:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
        return report(args.report, args.out, sizes)  # type: ignore[arg-type]
    return run(args.out, args.timeout)


if __name__ == "__main__":
    sys.exit(main())

"""The pre-save hook as Jupyter loads it: a real Jupyter Server started from the venv with the
shipped config (`jupyter/jupyter_server_config.d/auditkit.json`, what `make` and the package
install into the venv's etc/jupyter), a notebook with outputs saved through its contents API
over 127.0.0.1, and the file on disk read back."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nbformat
import pytest

from auditkit.resources import notebooks_dir

pytest.importorskip("jupyter_server")  # the dev extra installs it

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "auditkit-hook-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("jupyter-home")
    port = _free_port()
    env = {
        **os.environ,
        # the shipped config folder on Jupyter's config path, nothing from the user's own
        "JUPYTER_CONFIG_PATH": str(ROOT / "jupyter"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "PYTHONWARNINGS": "ignore",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={TOKEN}", "--ServerApp.root_dir=/", "--allow-root",
         # checkpoints in the temporary folder, not beside the shipped notebooks
         f"--FileCheckpoints.checkpoint_dir={home / 'checkpoints'}"],
        env=env, stdout=subprocess.DEVNULL, stderr=(home / "server.log").open("w"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/api/status", params={"token": TOKEN}).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail((home / "server.log").read_text()[-2000:])
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    log = (home / "server.log").read_text()
    assert "auditkit: shipped notebooks are saved without outputs" in log, log[-2000:]


def _with_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
            cell.execution_count = 3
    return nb


def _save(url: str, path: Path, nb: nbformat.NotebookNode) -> None:
    reply = httpx.put(
        f"{url}/api/contents/{str(path.resolve()).lstrip('/')}",
        params={"token": TOKEN},
        json={"type": "notebook", "format": "json", "content": nb},
        timeout=30,
    )
    assert reply.status_code in (200, 201), reply.text


@pytest.mark.slow
def test_saving_a_shipped_notebook_through_jupyter_strips_it(server: str) -> None:
    shipped = notebooks_dir() / "investigate_caching.ipynb"
    before = shipped.read_bytes()
    try:
        _save(server, shipped, _with_outputs(nbformat.reads(before.decode(), as_version=4)))
        saved = nbformat.read(str(shipped), as_version=4)
        assert all(c.outputs == [] for c in saved.cells if c.cell_type == "code")
        assert all(c.execution_count is None for c in saved.cells if c.cell_type == "code")
        assert "widgets" not in saved.metadata
    finally:
        shipped.write_bytes(before)  # the template as it was, whatever the server wrote
    assert not (shipped.parent / ".ipynb_checkpoints").exists()


@pytest.mark.slow
def test_a_users_own_notebook_keeps_its_outputs(server: str, tmp_path: Path) -> None:
    mine = tmp_path / "mine.ipynb"
    shipped = nbformat.read(str(notebooks_dir() / "investigate_caching.ipynb"), as_version=4)
    _save(server, mine, _with_outputs(shipped))
    saved = nbformat.read(str(mine), as_version=4)
    assert any(c.outputs for c in saved.cells if c.cell_type == "code")

"""The runner's kernels: each on sockets of its own, so notebooks started together never
talk to each other's kernels."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from auditkit.notebook_runner.kernel import kernel_manager_class


def test_each_run_binds_its_sockets_in_its_own_directory(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    managers = [kernel_manager_class(d)(kernel_name="python3") for d in (first, second)]
    assert [m.ip for m in managers] == [str(first / "kernel"), str(second / "kernel")]


@pytest.mark.slow
def test_two_kernels_started_together_from_one_directory_each_answer_their_own_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # jupyter_client's default IPC path is relative to the working directory: this is the
    # race that made two xdist workers' notebooks fail with "Invalid Signature"
    monkeypatch.chdir(tmp_path)

    async def start_and_ask(name: str) -> str:
        socket_dir = tmp_path / name
        socket_dir.mkdir()
        manager = kernel_manager_class(socket_dir)(kernel_name="python3")
        await manager.start_kernel()
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            return str(manager.connection_file)
        finally:
            client.stop_channels()
            await manager.shutdown_kernel(now=True)

    async def both() -> list[str]:
        return list(await asyncio.gather(start_and_ask("a"), start_and_ask("b")))

    connection_files = asyncio.run(both())
    assert len(set(connection_files)) == 2
    assert not [p for p in os.listdir(tmp_path) if p.startswith("kernel-ipc")]

"""The prefix-cache audit against a real llama.cpp server (xllamacpp) over HTTP on 127.0.0.1:
prompt cache on FAILs on every kind of evidence, off PASSes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("xllamacpp")
pytest.importorskip("gguf")

from auditkit.audits import load_config
from auditkit.runner import run_audit
from tests.llama_server import llama_server, make_gguf

pytestmark = [pytest.mark.timing, pytest.mark.slow]


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(scope="session", params=["on", "off"])
def llama_url(request: pytest.FixtureRequest, tiny_gguf: Path) -> Iterator[tuple[str, str]]:
    with llama_server(tiny_gguf, cache_prompt=request.param == "on") as url:
        yield request.param, url


def test_prompt_cache_on_fails_off_passes(llama_url: tuple[str, str], tmp_path: Path) -> None:
    cache, url = llama_url
    cfg = load_config(
        None,
        {
            "endpoint": {"url": url, "api": "openai-completions"},
            "output_dir": str(tmp_path),
            "prefix_cache": {"prompt_tokens": 128, "probes_per_arm": 20},
        },
    )
    run = run_audit(cfg, "prefix_cache")
    ev = run.result.evidence
    assert ev is not None, (run.result.verdict, run.result.reason)
    if cache == "on":
        assert run.result.verdict == "FAIL", run.result.reason
        # the metadata settles it at the first look (5 probes per arm), before timing can
        assert {"cached_tokens", "prometheus"} <= set(ev.same_client.fired)
        assert ev.metrics_read
    else:
        # PASS on a quiet machine; beside other CPU work 25 probes per arm may not narrow the
        # interval enough (INCONCLUSIVE), but nothing may ever show reuse
        assert run.result.verdict in ("PASS", "INCONCLUSIVE"), run.result.reason
        assert ev.same_client.fired == () and ev.same_client.hit_cached_tokens == 0

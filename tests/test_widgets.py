"""widgets.py headless: trait assignment and .click() drive real probes against the mock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from auditkit.widgets import CachingInvestigator


@pytest.fixture
def inv() -> Iterator[CachingInvestigator]:
    ui = CachingInvestigator(k=6)
    yield ui
    ui.close()


def test_click_runs_probe_and_fills_plot_and_table(inv: CachingInvestigator) -> None:
    inv.cache.value = "output"
    inv.buttons["cold_vs_warm"].click()
    assert inv.stop_button.disabled is False or inv.results  # running, or already done
    assert inv.wait(30)
    assert "cold_vs_warm" in inv.results, inv.errors
    assert bytes(inv.image.value).startswith(b"\x89PNG")
    assert "warm" in inv.table.value and "<table" in inv.table.value
    assert "output" in inv.finding.value and "done" in inv.status.value
    assert "response" in inv.diagnosis.value
    assert not any(b.disabled for b in inv.buttons.values())


def test_changing_cache_mode_probes_another_mock(inv: CachingInvestigator) -> None:
    inv.cache.value = "prefix"
    inv.k.value = 5
    inv.buttons["output_identity"].click()
    assert inv.wait(30)
    assert inv.results["output_identity"].signals["identical"] is False
    assert len(inv.results["output_identity"].records) == 5


def test_url_disables_mock_cache_and_bad_url_is_one_line(inv: CachingInvestigator) -> None:
    inv.url.value = "ftp://nowhere"
    assert inv.cache.disabled
    inv.buttons["repeat_vs_distinct"].click()
    assert inv.wait(5)
    assert "url must start with http" in inv.status.value
    assert "\n" not in inv.errors[-1]
    inv.url.value = ""
    assert not inv.cache.disabled


def test_missing_key_env_is_reported(
    inv: CachingInvestigator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUDITKIT_TEST_NO_SUCH_KEY", raising=False)
    inv.key_env.value = "AUDITKIT_TEST_NO_SUCH_KEY"
    assert inv.run("cold_vs_warm") is False
    assert "AUDITKIT_TEST_NO_SUCH_KEY" in inv.status.value


def test_unreachable_endpoint_is_reported(inv: CachingInvestigator) -> None:
    inv.url.value = "http://127.0.0.1:9"
    assert inv.run("cold_vs_warm") is False
    assert "unreachable" in inv.status.value

"""widgets.py headless: trait assignment and .click() drive real probes against the mock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from auditkit import probes
from auditkit.widgets import IDLE, RUNNING, CachingInvestigator


@pytest.fixture
def inv(tmp_path: Path) -> Iterator[CachingInvestigator]:
    ui = CachingInvestigator(k=6, output_dir=str(tmp_path))
    yield ui
    ui.close()


def test_buttons_come_from_the_catalogue(inv: CachingInvestigator) -> None:
    assert list(inv.buttons) == list(probes.CATALOGUE)
    assert [b.description for b in inv.buttons.values()] == [
        p.label for p in probes.CATALOGUE.values()
    ]


def test_idle_state_is_clear(inv: CachingInvestigator) -> None:
    assert inv.stop_button.disabled and inv.state.value == IDLE
    assert inv.export_button.disabled  # nothing to export yet


@pytest.mark.slow
def test_two_probes_stay_on_screen_side_by_side_and_export(inv: CachingInvestigator) -> None:
    inv.cache.value = "response cache"
    inv.buttons["back_to_back"].click()
    assert inv.state.value == RUNNING or inv.history  # running, or already done
    assert inv.wait(30)
    inv.buttons["output_identity"].click()
    assert inv.wait(30), inv.errors
    assert [r.name for r in inv.history] == ["back_to_back", "output_identity"], inv.errors
    assert len(inv.grid.children) == 2  # both cards, in a wrapping row
    assert all(bytes(c.image.value).startswith(b"\x89PNG") for c in inv.cards)
    assert inv.table.value.count("<tr") == 1 + 2  # header + one row per run
    assert "response" in inv.diagnosis.value and "done" in inv.status.value
    assert inv.state.value == IDLE and inv.stop_button.disabled
    assert not any(b.disabled for b in inv.buttons.values())

    inv.export_button.click()
    assert inv.exported is not None
    records = pd.read_csv(inv.exported / "records.csv")
    assert set(records["run"]) == {1, 2} and len(records) == len(inv.history[0].records) + len(
        inv.history[1].records
    )
    assert len(pd.read_csv(inv.exported / "results.csv")) == 2


def test_url_disables_mock_menu_and_bad_url_is_one_line(inv: CachingInvestigator) -> None:
    inv.url.value = "ftp://nowhere"
    assert inv.cache.disabled
    inv.buttons["interleaved"].click()
    assert inv.wait(5)
    assert "url must start with http" in inv.status.value
    assert "\n" not in inv.errors[-1]
    assert inv.state.value == IDLE and not inv.grid.children
    inv.url.value = ""
    assert not inv.cache.disabled


def test_missing_key_env_is_reported(
    inv: CachingInvestigator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUDITKIT_TEST_NO_SUCH_KEY", raising=False)
    inv.key_env.value = "AUDITKIT_TEST_NO_SUCH_KEY"
    assert inv.run("back_to_back") is False
    assert "AUDITKIT_TEST_NO_SUCH_KEY" in inv.status.value


def test_unreachable_endpoint_is_reported(inv: CachingInvestigator) -> None:
    inv.url.value = "http://127.0.0.1:9"
    assert inv.run("back_to_back") is False
    assert "unreachable" in inv.status.value

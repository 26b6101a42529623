"""The prefix-cache audit on the simulated mock (virtual clock): no cache PASSes; a block
prefix cache FAILs, shared across users or per client as it is; lying metadata still FAILs
on timing; the files land in the suite's layout."""

from __future__ import annotations

import json

import pytest

from auditkit.audits.prefix_cache.decision import decide, min_ks_p, shift_interval
from auditkit.audits.prefix_cache.metadata import counter_deltas, reuse_counters
from tests.audits.conftest import SimulatedAudit

SMALL = {"prompt_tokens": 256}


def test_no_cache_passes_and_writes_its_files(simulated_audit: SimulatedAudit) -> None:
    run = simulated_audit("prefix_cache", **SMALL)
    assert run.result.verdict == "PASS", run.result.reason
    ev = run.result.evidence
    assert ev is not None and ev.same_client.fired == () and ev.alpha == 1e-8
    assert (run.folder / "verify_prefix_cache.txt").read_text().rstrip().endswith("TEST PASS")
    record = json.loads((run.folder.parent / "audit" / "audit_prefix_cache_test.json").read_text())
    assert record["test"] == "prefix_cache_test" and record["passed"] is True


@pytest.mark.parametrize(
    ("scope", "shared"), [("shared", True), ("per-client", False)], ids=["shared", "per-client"]
)
@pytest.mark.parametrize("clients", ["two API keys", "two users"])
def test_cache_fails_and_scope_says_whether_it_is_shared(
    simulated_audit: SimulatedAudit,
    monkeypatch: pytest.MonkeyPatch,
    scope: str,
    shared: bool,
    clients: str,
) -> None:
    mock = {"cache": "kv-prefix", "behaviour": {"kv_scope": scope}}
    if clients == "two API keys":
        monkeypatch.setenv("PC_KEY_A", "key-a")
        monkeypatch.setenv("PC_KEY_B", "key-b")
        two = {"second_api_key_env": "PC_KEY_B"}
        endpoint = {"api_key_env": "PC_KEY_A"}
    else:
        two, endpoint = {"second_user": True}, None
    run = simulated_audit("prefix_cache", mock=mock, endpoint=endpoint, **two, **SMALL)
    ev = run.result.evidence
    assert run.result.verdict == "FAIL" and ev is not None
    assert ev.shared_across_users is shared
    assert ("SHARED ACROSS USERS" in run.result.reason) is shared
    assert "cached_tokens" in ev.same_client.fired


def test_lying_metadata_is_caught_by_timing(simulated_audit: SimulatedAudit) -> None:
    mock = {"cache": "kv-prefix", "behaviour": {"kv_hide_cached": True}}
    run = simulated_audit("prefix_cache", mock=mock, **SMALL)
    ev = run.result.evidence
    assert run.result.verdict == "FAIL" and ev is not None
    assert ev.same_client.fired == ("timing",)
    assert ev.same_client.ks_p <= ev.same_client.alpha_per_look


def test_decision_rules() -> None:
    fast, slow = [0.010 + i * 1e-5 for i in range(20)], [0.100 + i * 1e-4 for i in range(20)]
    kw = {"alpha": 1e-8, "confidence": 0.99, "looks": 4, "min_effect": 0.1}
    assert decide(fast, slow, last=False, **kw).call == "FAIL"
    same = decide(slow, list(reversed(slow)), last=True, **kw)
    assert same.call == "PASS" and same.ratio_low > 0.9
    noisy = decide([1.0, 3.0, 0.5, 2.0, 1.5], [1.2, 2.5, 0.7, 1.8, 1.1], last=True, **kw)
    assert noisy.call == "INCONCLUSIVE" and noisy.needed_per_arm is not None
    assert min_ks_p(14) > 1e-8 > min_ks_p(15)  # alpha 1e-8 needs 15 per arm
    est, low, high = shift_interval(fast, slow, 0.99)
    assert low <= est <= high < 0


def test_prometheus_counters_are_read_with_the_text_parser() -> None:
    before = "# TYPE llamacpp:prompt_tokens_cached counter\nllamacpp:prompt_tokens_cached 10\n"
    after = before.replace(" 10", " 96")
    assert reuse_counters(after) == {"llamacpp:prompt_tokens_cached": 96.0}
    assert counter_deltas([(3, before, after), (4, "", "")]) == {3: 86.0}
    assert reuse_counters("not prometheus {") == {}

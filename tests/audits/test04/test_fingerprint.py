"""Cache-type fingerprints against the mock's three cache modes (streamed, T > 0), on a virtual
clock (the mock's latency model through the in-memory transport)."""

import pytest

from auditkit.audits import build_config
from auditkit.audits.test04.fingerprint import fingerprint
from auditkit.config import MockConfig
from auditkit.loadgen.fake import FakeTransport, SimulatedSUT
from auditkit.runner import run_audit


@pytest.mark.parametrize(
    ("cache", "kind"), [("none", "none"), ("output", "response cache"), ("prefix", "prefix cache")]
)
def test_fingerprint_names_the_cache(tmp_path: object, cache: str, kind: str) -> None:
    cfg = build_config(
        {
            "output_dir": str(tmp_path),
            "endpoint": {"api": "openai-chat", "stream": True, "temperature": 1.0},
            "load": {"scenario": "single-stream"},
            "test04": {"samples": 128},
        }
    )
    sut = SimulatedSUT(MockConfig(cache=cache, prefill_us_per_token=60.0))  # type: ignore[arg-type]
    run = run_audit(cfg, transport=FakeTransport(sut))
    phases = {p.name: p for p in run.phases}
    fp = fingerprint(phases["reference"].records, phases["audit"].records, temperature=1.0)
    assert fp.kind == kind, fp.evidence
    if kind == "prefix cache":
        assert fp.ttft_ratio is not None and fp.ttft_ratio < 0.75
        assert fp.decode_per_token_ratio is not None and fp.decode_per_token_ratio > 0.75
    if kind == "response cache":
        assert fp.identical_outputs is True

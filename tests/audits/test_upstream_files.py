"""`auditkit verify test01|test06|test09` on LoadGen-format files built here prints upstream's
lines for the edge cases of upstream's rules, and a run's folder has the files the v6.1
submission checker requires.

The expected lines were checked against upstream's own scripts (mlcommons/inference b66003e1:
compliance/TEST01/verify_accuracy.py and verify_performance.py, compliance/TEST06/ and
compliance/TEST09/run_verification.py) run on the same files; they are encoded here so the
tests need no copy of upstream.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from auditkit.audits.kit.accuracy_log import AccuracyEntry, render
from auditkit.audits.kit.tokens import int32_bytes
from auditkit.cli import main
from tests.audits.conftest import SimulatedAudit


def detail(**values: Any) -> str:
    """A mlperf_log_detail.txt as LoadGen writes its lines."""
    meta = {"is_error": False, "is_warning": False, "file": "logging.cc", "line_no": 1}
    return "".join(
        ":::MLLOG "
        + json.dumps(
            {
                "key": k,
                "value": v,
                "time_ms": 0.0,
                "namespace": "mlperf::logging",
                "event_type": "POINT_IN_TIME",
                "metadata": meta,
            }
        )
        + "\n"
        for k, v in values.items()
    )


def run_dir(root: Path, name: str, entries: list[AccuracyEntry] | None = None,
            **values: Any) -> Path:  # fmt: skip
    folder = root / name
    folder.mkdir(parents=True)
    if entries is not None:
        (folder / "mlperf_log_accuracy.json").write_text(render(entries))
    if values:
        (folder / "mlperf_log_detail.txt").write_text(detail(**values))
    return folder


E = AccuracyEntry
VALID = {"result_validity": "VALID"}


def offline(score: float, validity: str = "VALID") -> dict[str, Any]:
    return {"effective_scenario": "Offline", "result_samples_per_second": score,
            "result_validity": validity}  # fmt: skip


def single(latency_ns: int) -> dict[str, Any]:
    return {"effective_scenario": "SingleStream", "early_stopping_latency_ss": latency_ns, **VALID}


def verify01(
    tmp_path: Path, ref: list[AccuracyEntry], test: list[AccuracyEntry],
    ref_values: dict[str, Any], test_values: dict[str, Any],
) -> tuple[int, str, str, dict[str, Any]]:  # fmt: skip
    acc = run_dir(tmp_path, "accuracy", ref)
    perf = run_dir(tmp_path, "performance", None, **ref_values)
    comp = run_dir(tmp_path, "compliance", test, **test_values)
    out = tmp_path / "out"
    code = main(["verify", "test01", "--reference-accuracy", str(acc), "--reference", str(perf),
                 "--test", str(comp), "--output-dir", str(out)])  # fmt: skip
    folder = out / "TEST01"
    record = json.loads((out / "audit" / "audit_accuracy_in_performance_test.json").read_text())
    return (code, (folder / "verify_accuracy.txt").read_text(),
            (folder / "verify_performance.txt").read_text(), record)  # fmt: skip


def counters(acc: int, dup: int, acc_mismatch: int, perf: int, match: int, mismatch: int,
             missing: int, verdict: str) -> str:  # fmt: skip
    return (
        "Verifying accuracy. This might take a while...\nReading accuracy mode results...\n"
        "Reading performance mode results...\n"
        f"num_acc_log_entries = {acc}\nnum_acc_log_duplicate_keys = {dup}\n"
        f"num_acc_log_data_mismatch = {acc_mismatch}\nnum_perf_log_entries = {perf}\n"
        f"num_perf_log_qsl_idx_match = {match}\nnum_perf_log_data_mismatch = {mismatch}\n"
        f"num_missing_qsl_idxs = {missing}\n{verdict}\n\n"
    )


def test_test01_first_byte_differs_fails(tmp_path: Path) -> None:
    code, acc, _, record = verify01(
        tmp_path, [E(0, 1, b"Hello"), E(1, 2, b"x")], [E(0, 1, b"Jello")],
        offline(100.0), offline(100.0),
    )  # fmt: skip
    assert acc.startswith(counters(2, 0, 0, 1, 1, 1, 0, "TEST FAIL"))
    assert code == 1 and record["passed"] is False


def test_test01_only_the_last_word_differs_passes_upstream(tmp_path: Path) -> None:
    # verify_accuracy.py's default (byte) mode compares data[0] only
    code, acc, _, record = verify01(
        tmp_path, [E(0, 1, b"Hello world")], [E(0, 1, b"Hello there")],
        offline(100.0), offline(100.0),
    )  # fmt: skip
    assert acc.startswith(counters(1, 0, 0, 1, 1, 0, 0, "TEST PASS"))
    assert "auditkit: upstream compares the first byte of each answer only: 1 answers" in acc
    assert code == 0 and record["passed"] is True


def test_test01_duplicate_entries_are_counted_as_upstream_counts_them(tmp_path: Path) -> None:
    ref = [E(0, 1, b"A"), E(1, 1, b"B"), E(2, 3, b"")]
    test = [E(0, 1, b"A"), E(1, 1, b"B"), E(2, 3, b""), E(3, 9, b"Z")]
    _, acc, _, _ = verify01(tmp_path, ref, test, offline(1.0), offline(1.0))
    # qsl 1 is stored as "A"; the second perf entry is compared with the first perf entry
    assert acc.startswith(counters(3, 1, 1, 4, 3, 1, 1, "TEST FAIL"))


def test_test01_full_precision_scores(tmp_path: Path) -> None:
    _, _, perf, record = verify01(
        tmp_path, [E(0, 1, b"a")], [E(0, 1, b"a")],
        offline(342.82322753889775), offline(377.1),
    )  # fmt: skip
    assert perf.startswith(
        "Verifying performance.\nReference score = 342.82322753889775\nTest score = 377.1\n"
        "TEST PASS\n"
    )
    assert record["passed"] is True


@pytest.mark.parametrize("invalid", ["reference", "test"])
def test_test01_an_invalid_run_fails_with_upstreams_line(tmp_path: Path, invalid: str) -> None:
    ref = offline(100.0, "INVALID" if invalid == "reference" else "VALID")
    test = offline(100.0, "INVALID" if invalid == "test" else "VALID")
    code, _, perf, record = verify01(tmp_path, [E(0, 1, b"a")], [E(0, 1, b"a")], ref, test)
    folder = "performance" if invalid == "reference" else "compliance"
    path = tmp_path / folder / "mlperf_log_detail.txt"
    assert perf.startswith(f"Verifying performance.\nTEST FAIL: Invalid results in {path}\n")
    assert code == 1 and record["passed"] is False


@pytest.mark.parametrize(
    ("ref_ns", "test_ns", "line"),
    [
        (200_000, 240_000, "TEST PASS"),  # 0.20 at <= 200000 ns, bounds inclusive
        (200_000, 240_001, "TEST FAIL: Test score invalid"),
        (200_001, 220_001, "TEST PASS"),  # 0.10 above it
        (200_001, 220_002, "TEST FAIL: Test score invalid"),
    ],
)
def test_test01_threshold_boundaries_in_ns(
    tmp_path: Path, ref_ns: int, test_ns: int, line: str
) -> None:
    _, _, perf, record = verify01(tmp_path, [E(0, 1, b"a")], [E(0, 1, b"a")], single(ref_ns),
                                single(test_ns))  # fmt: skip
    assert perf.startswith(
        f"Verifying performance.\nReference score = {float(ref_ns)}\n"
        f"Test score = {float(test_ns)}\n{line}\n"
    )
    assert record["passed"] is (line == "TEST PASS")


def ids(*tokens: int) -> bytes:
    return int32_bytes(tokens)


def verify06(tmp_path: Path, entries: list[AccuracyEntry], scenario: str) -> tuple[int, str]:
    comp = run_dir(tmp_path, "compliance", entries, effective_scenario=scenario, **VALID)
    out = tmp_path / "out"
    code = main(["verify", "test06", "--test", str(comp), "--output-dir", str(out)])
    return code, (out / "TEST06" / "verify_accuracy.txt").read_text()


def lines06(first: str, eos: bool, length: bool) -> str:
    ok = first != "False" and eos and length
    return (
        f"First token check pass: {first}\nEOS check pass: {eos}\n"
        f"Sample length check pass: {length}\n"
        f"TEST06 verification {'complete' if ok else 'failed'}\n"
    )


@pytest.mark.parametrize(
    ("entry", "scenario", "expected"),
    [
        (E(0, 1, ids(2, 2), 2, ids(2)), "Server", lines06("True", True, True)),  # EOS at index 0
        (E(0, 1, ids(5, 2, 2), 3, ids(5)), "Server", lines06("True", False, True)),  # two EOS
        (E(0, 1, ids(5, 7, 2), 3, ids(5)), "Server", lines06("True", True, True)),
        (E(0, 1, ids(5, 7, 2), 3, ids(6)), "Server", lines06("False", True, True)),
        (E(0, 1, ids(5, 7, 2), 3, ids(6)), "Offline", lines06("Skipped", True, True)),
        (E(0, 1, ids(5, 7), 3, ids(5)), "SingleStream", lines06("True", True, False)),
        (E(0, 1, ids(5, 7), 2), "Server", lines06("False", True, True)),  # no token_data
    ],
)
def test_test06_prints_upstreams_lines(
    tmp_path: Path, entry: AccuracyEntry, scenario: str, expected: str
) -> None:
    code, text = verify06(tmp_path, [entry], scenario)
    assert text.startswith(expected)
    assert code == (0 if "complete" in expected else 1)
    record = json.loads((tmp_path / "out" / "audit" / "audit_consistency_output_test.json")
                        .read_text())  # fmt: skip
    assert record["passed"] is ("complete" in expected)


def verify09(tmp_path: Path, entries: list[AccuracyEntry], lo: str, hi: str) -> tuple[int, str]:
    comp = run_dir(tmp_path, "compliance", entries)
    out = tmp_path / "out"
    code = main(["verify", "test09", "--test", str(comp), "--min-output-tokens", lo,
                 "--max-output-tokens", hi, "--output-dir", str(out)])  # fmt: skip
    return code, (out / "TEST09" / "verify_output_len.txt").read_text()


def test_test09_bounds_are_inclusive(tmp_path: Path) -> None:
    code, text = verify09(tmp_path, [E(0, 1, ids(*[1] * 10)), E(1, 2, ids(*[1] * 20))], "15", "20")
    assert "Mean output tokens: 15.00\nMin threshold: 15.0\nMax threshold: 20.0\n" in text
    assert "Min check pass: True\nMax check pass: True\n\nTEST PASS\n" in text and code == 0


def test_test09_counts_whole_int32s_and_fails_below_the_bound(tmp_path: Path) -> None:
    # 10 ids and a trailing 2 bytes (dropped), and an empty answer (0)
    code, text = verify09(tmp_path, [E(0, 1, ids(*[1] * 10) + b"\x01\x02"), E(1, 2, b"")], "5.01",
                        "9")  # fmt: skip
    assert "Total samples: 2\nMean output tokens: 5.00\nMin output tokens: 0\n" in text
    assert "Min check pass: False\nMax check pass: True\n\nTEST FAIL\n" in text and code == 1


def test_verify_help_shows_each_audits_call(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["verify", "--help"])
    text = capsys.readouterr().out
    assert "auditkit verify test01 --reference-accuracy PATH --reference PATH --test PATH" in text
    assert "auditkit verify test06 --test PATH" in text
    with pytest.raises(SystemExit):
        main(["verify", "test06", "--help"])
    flags = capsys.readouterr().out
    assert "--eos-token-id" in flags and "--warmup" not in flags and "--samples" not in flags


#: the v6.1 submission checker's required files (tools/submission/submission_checker/
#: constants.py REQUIRED_COMP_PER_FILES; checks/compliance_check.py for the verify files)
REQUIRED_COMP_PER_FILES = {"mlperf_log_summary.txt", "mlperf_log_detail.txt"}
OPTIONAL_IN_RUN_1 = {"mlperf_log_accuracy.json", "mlperf_log_trace.json", "results.json"}
CHECKER_FILES = {
    "test01": (
        "TEST01",
        [
            "verify_accuracy.txt",
            "verify_performance.txt",
            "performance/run_1/mlperf_log_detail.txt",
        ],
        "accuracy_in_performance_test",
    ),
    "test06": ("TEST06", ["verify_accuracy.txt"], "consistency_output_test"),
    "test09": ("TEST09", ["verify_output_len.txt"], None),
}


@pytest.mark.parametrize("key", sorted(CHECKER_FILES))
def test_a_run_folder_has_the_checkers_files(
    simulated_audit: SimulatedAudit, tmp_path: Path, key: str
) -> None:
    run = simulated_audit(key)
    folder, files, name = CHECKER_FILES[key]
    for f in files:
        assert (tmp_path / folder / f).is_file(), f
    run_1 = tmp_path / folder / "performance" / "run_1"
    if key == "test01":
        listed = {p.name for p in run_1.iterdir()}
        assert not listed.symmetric_difference(REQUIRED_COMP_PER_FILES) - OPTIONAL_IN_RUN_1
    if name is not None:
        record = json.loads((tmp_path / "audit" / f"audit_{name}.json").read_text())
        assert record["test"] == name
        assert record["passed"] is (run.result.upstream_verdict == "PASS")


def test_a_run_is_reverified_from_its_own_files(
    simulated_audit: SimulatedAudit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = simulated_audit("test01", out=tmp_path / "run")
    t = tmp_path / "run" / "TEST01"
    code = main(["verify", "test01", "--reference-accuracy", str(t / "accuracy"),
                 "--reference", str(t / "performance"), "--test", str(t / "audit")])  # fmt: skip
    assert code == (0 if run.result.upstream_verdict == "PASS" else 1)
    assert "TEST01" in capsys.readouterr().out


def test_answers_are_kept_and_read_back(simulated_audit: SimulatedAudit, tmp_path: Path) -> None:
    from auditkit.records_io import read_outputs

    run = simulated_audit("test06")
    streamed = next(p for p in run.phases if p.name == "streamed")
    assert read_outputs(tmp_path / "TEST06" / "streamed") == streamed.outputs
    assert read_outputs(tmp_path / "TEST06" / "warmup") == ()


def tiny_tokenizer(folder: Path) -> Path:
    """A word-level tokenizer.json built here (nothing downloaded): "</s>" is id 2."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "</s>": 2, "The": 5, "Th": 6, "answer": 7}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    path = folder / "tokenizer.json"
    tok.save(str(path))
    return path


def test_a_tokenizer_gives_the_token_ids(tmp_path: Path) -> None:
    from auditkit.audits.kit.tokens import TokenSource, load_tokenizer
    from auditkit.results import LoggedOutput

    source = TokenSource(["</s>"], load_tokenizer(str(tiny_tokenizer(tmp_path))))
    out = LoggedOutput(0, 0, "main", "The answer </s> </s>", 4, first_chunk="Th", chunks=1)
    t = source.tokens(out)
    assert t.ids == (5, 7, 2, 2) and t.first == 6 and t.source == "tokenizer"
    assert source.eos_id() == 2


def test_test06_with_a_tokenizer_counts_its_tokens(
    simulated_audit: SimulatedAudit, tmp_path: Path
) -> None:
    path = tiny_tokenizer(tmp_path)
    run = simulated_audit("test06", out=tmp_path / "run", tokenizer=str(path))
    ev = run.result.evidence
    assert ev is not None and ev.count_source == "tokenizer"
    assert run.result.verdict == "PASS", run.result.reason


@pytest.mark.parametrize("key", ["test06", "test09"])
def test_a_missing_tokenizer_is_refused_before_any_request(
    simulated_audit: SimulatedAudit, tmp_path: Path, key: str
) -> None:
    from auditkit.errors import InputError

    with pytest.raises(InputError, match=r"no tokenizer\.json there"):
        simulated_audit(key, tokenizer=str(tmp_path / "nowhere"))

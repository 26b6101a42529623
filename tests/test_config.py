"""Config: strict validation, YAML loading, overrides, one-line errors, redaction."""

from pathlib import Path

import pytest

from auditkit.audits import build_config, load_config
from auditkit.errors import InputError


def test_defaults_run_against_the_mock() -> None:
    cfg = build_config({})
    assert cfg.endpoint.url is None
    assert cfg.test04.sample_index == 3
    assert cfg.test04.effective_audit_samples == cfg.test04.samples


def test_yaml_with_flag_overrides(tmp_path: Path) -> None:
    path = tmp_path / "audit.yaml"
    path.write_text("endpoint:\n  url: http://127.0.0.1:9/\nload:\n  scenario: single-stream\n")
    cfg = load_config(path, {"test04": {"samples": 64}, "load": {"max_concurrency": 4}})
    assert cfg.endpoint.url == "http://127.0.0.1:9"
    assert cfg.load.scenario == "single-stream"
    assert cfg.load.max_concurrency == 4
    assert cfg.test04.samples == 64


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"endpoint": {"bogus": 1}}, "endpoint.bogus: unknown key"),
        ({"test04": {"samples": -1}}, "test04.samples"),
        ({"test04": {"threshold": 5}}, "test04.threshold"),
        ({"endpoint": {"api": "grpc"}}, "endpoint.api"),
        ({"endpoint": {"url": "ftp://x"}}, "http:// or https://"),
        ({"endpoint": {"api_key_env": "sk-abc123 secret"}}, "NAME of an environment variable"),
        ({"load": {"scenario": "server"}}, "target_qps"),
        ({"endpoint": {"api": "json"}}, "body_template"),
    ],
)
def test_bad_values_give_one_line_naming_the_field(data: dict, needle: str) -> None:
    with pytest.raises(InputError) as info:
        build_config(data)
    line = info.value.one_line()
    assert needle in line
    assert "\n" not in line


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("endpoint:\n  url: [unclosed\n")
    with pytest.raises(InputError, match=r"bad.yaml: line \d+"):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_secret_headers_are_redacted() -> None:
    cfg = build_config(
        {
            "endpoint": {
                "headers": {"Authorization": "Bearer sk-live", "X-Api-Key": "k", "X-Ok": "1"}
            }
        }
    )
    headers = cfg.redacted()["endpoint"]["headers"]
    assert headers["X-Ok"] == "1"
    assert "sk-live" not in str(headers) and headers["X-Api-Key"] != "k"


@pytest.mark.parametrize(
    ("url", "base", "api"),
    [
        ("http://host:8000/v1/chat/completions", "http://host:8000", "openai-chat"),
        ("https://host/openai/v1/completions/", "https://host/openai", "openai-completions"),
        ("http://host/v1/models", "http://host", "openai-completions"),
    ],
)
def test_a_full_endpoint_url_names_the_base_url_and_api(url: str, base: str, api: str) -> None:
    with pytest.raises(InputError) as err:
        build_config({"endpoint": {"url": url}})
    assert f"--url {base} --api {api}" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("endpoint", "streams"),
    [
        ({}, True),  # the OpenAI APIs stream by default: first-token and decode time
        ({"api": "openai-chat"}, True),
        ({"stream": False}, False),  # an explicit false still turns it off
        ({"api": "json", "body_template": {"p": "{prompt}"}}, False),  # json never streams
    ],
)
def test_stream_defaults_by_api(endpoint: dict, streams: bool) -> None:
    from auditkit.endpoints import make_adapter

    cfg = build_config({"endpoint": endpoint})
    assert cfg.endpoint.streams is streams
    assert make_adapter(cfg.endpoint, "m").stream is streams
    # the written config keeps what the user said (unset stays unset, resolved by api again)
    assert cfg.redacted()["endpoint"]["stream"] == endpoint.get("stream")


def test_stream_true_with_the_json_api_is_bad_input() -> None:
    with pytest.raises(InputError, match="stream: true is not supported with api json"):
        build_config({"endpoint": {"api": "json", "stream": True, "body_template": {"p": "x"}}})

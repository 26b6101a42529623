"""A credential nested inside a notebook parameter (the suite's `settings`, an audit's `headers`)
is refused before papermill writes it into the executed notebook: one line, exit 2, no key echoed,
no notebook written."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditkit.cli import main

KEY = "sk-nested-4b1d9e"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("suite", ["-p", "settings", '{"headers": {"Authorization": "Bearer ' + KEY + '"}}']),
        ("test04", ["-p", "headers", '{"X-Api-Key": "' + KEY + '"}']),
        ("test01", ["-p", "headers", '{"authorization": "Bearer ' + KEY + '"}']),  # generic
        ("suite", ["-p", "settings", '{"nested": [{"access_token": "' + KEY + '"}]}']),
    ],
)
def test_nested_secret_is_refused_before_any_kernel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, params: list[str]
) -> None:
    out = tmp_path / "out"
    code = main(["notebook", name, *params, "--output-dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "never notebook parameters" in err
    assert "environment variable" in err and "api_key_env" in err and "--api-key-env" in err
    assert KEY not in err
    assert not out.exists() or not any(out.rglob("*.ipynb"))


def test_settings_named_like_tokens_are_not_secrets() -> None:
    from auditkit.notebook_runner.params import refuse_secrets

    refuse_secrets({"max_tokens": "64", "headers": '{"X-Trace": "1"}'})
    refuse_secrets({"settings": {"max_tokens": 8, "mock_fake_first_token": True}})
    refuse_secrets({"api_key_env": "OPENAI_API_KEY"})

"""Which audits, with which thresholds, the MLPerf v6.1 submission checker requires of a model
submitted over the endpoints path (`auditkit run suite --mlperf-model NAME`). Pure.

Read from mlcommons/inference at b66003e10e2db4b8c36a448b0545ec90fcc6e9e9:
`tools/submission/submission_checker/constants.py` (`MODEL_CONFIG["v6.1"]["models_TEST01"]`,
`...TEST04`, `...TEST06`, `...TEST07`, `...TEST08`, `...TEST09`; `ENDPOINTS_ALLOWED_MODELS`;
`ENDPOINTS_COMPLIANCE_MAPPING`; `TEST09_LOW = 1150.38`, `TEST09_HIGH = 1406.02`) and
`tools/submission/submission_checker/checks/compliance_check.py` (`get_test_list`,
`compliance_endpoints_check`: an endpoints submission is checked only on the tests of its list
that have an `audit/audit_<name>.json` name, plus TEST09 from the run's `mean_output_tokens`).

| model (endpoints)  | checker's list | what auditkit runs (thresholds)                     |
|--------------------|----------------|-----------------------------------------------------|
| gpt-oss-120b       | TEST07, TEST09 | test07 (>= 60.698), test09 (1150.38 to 1406.02)     |
| llama3.1-8b        | TEST06         | test06                                              |
| deepseek-r1        | TEST06         | test06                                              |
| wan-2.2-t2v-a14b   | TEST04         | test04 (the one audit file the checker requires)    |
| llama3.1-8b-edge   | (none)         | nothing required                                    |
| qwen3-vl-235b-a22b | (none)         | nothing required                                    |
| qwen3.6-27b        | (none)         | nothing required                                    |

TEST08 (dlrm-v3) is not an endpoints model in v6.1; TEST05 left the checker in November 2024.

Beside the checker's list, the LLMs also get auditkit's `prefix_cache` audit (`Requirement.own`):
MLPerf's rules forbid reusing work across queries ("cross-query prefix caching is not allowed",
mlcommons/inference #2445) but no compliance test checks it; its file is auditkit's own, and
the checker reads no `audit_prefix_cache_test.json`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auditkit.errors import InputError

#: where the table was read
SOURCE = (
    "mlcommons/inference b66003e1, tools/submission/submission_checker/constants.py "
    "(MODEL_CONFIG v6.1 models_TEST0x, ENDPOINTS_ALLOWED_MODELS) and checks/compliance_check.py"
)
#: the checker's TEST09 bounds on mean output tokens (constants.py TEST09_LOW, TEST09_HIGH)
TEST09_BOUNDS = (1150.38, 1406.02)


@dataclass(frozen=True)
class Requirement:
    """The checker's compliance tests for one model and the audit settings they fix."""

    tests: tuple[str, ...]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: auditkit's own audits of what MLPerf forbids but does not test
    own: tuple[str, ...] = ()


#: what every LLM also gets: no cross-query KV reuse (auditkit's own audit)
LLM_OWN = ("prefix_cache",)

#: the v6.1 checker, endpoints path (see the module docstring)
V61_ENDPOINTS: dict[str, Requirement] = {
    "gpt-oss-120b": Requirement(
        ("test07", "test09"),
        {
            "test07": {"mlperf_model": "gpt-oss-120b"},
            "test09": {
                "min_output_tokens": TEST09_BOUNDS[0],
                "max_output_tokens": TEST09_BOUNDS[1],
            },
        },
        own=LLM_OWN,
    ),
    "llama3.1-8b": Requirement(("test06",), own=LLM_OWN),
    "deepseek-r1": Requirement(("test06",), own=LLM_OWN),
    "wan-2.2-t2v-a14b": Requirement(("test04",)),
    "llama3.1-8b-edge": Requirement(()),
    "qwen3-vl-235b-a22b": Requirement(()),
    "qwen3.6-27b": Requirement(()),
}


def model_name(name: str) -> str:
    """The checker's model name for `name` (exact, or a prefix of one model only)."""
    if name in V61_ENDPOINTS:
        return name
    matches = [m for m in V61_ENDPOINTS if m.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(V61_ENDPOINTS)
    if matches:
        raise InputError(f"--mlperf-model {name!r} names several models ({', '.join(matches)})")
    raise InputError(
        f"--mlperf-model {name!r} is not a v6.1 endpoints model (the checker allows: {known})"
    )


def requirement(name: str) -> tuple[str, Requirement]:
    """(the checker's model name, its requirement); InputError for an unknown model or one the
    checker requires no compliance audit of."""
    model = model_name(name)
    req = V61_ENDPOINTS[model]
    if not req.tests:
        raise InputError(
            f"the v6.1 submission checker requires no compliance audit of {model} over the "
            "endpoints path; `auditkit run suite` without --mlperf-model runs auditkit's checks"
        )
    return model, req


def skipped_reasons(model: str, req: Requirement, suite: tuple[str, ...]) -> dict[str, str]:
    """Each audit of the suite that the model does not need → why it is skipped."""
    return {
        key: f"not required of {model} by the v6.1 submission checker (endpoints path)"
        for key in suite
        if key not in req.tests + req.own
    }

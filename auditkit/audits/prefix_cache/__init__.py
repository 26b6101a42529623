"""Prefix cache: does the endpoint reuse one query's prompt work (KV cache) for another?

MLPerf's rules forbid it for LLMs ("Caching of any other queries, query parameters, or
intermediate results is prohibited"; the KV-cache exemption "does not apply across queries",
mlcommons/inference_policies inference_rules.adoc, mlcommons/inference#2445), and no compliance
test checks it. The audit follows Gu et al., "Auditing Prompt Caching in Language Model APIs"
(ICML 2025): prompts synthesised at run time from a seeded generator and a secret nonce; a hit
procedure (a victim prompt, then a probe sharing `prefix_fraction` of its prefix) and a miss
procedure (a fresh prompt of the same length) in shuffled order; `max_tokens` 1, timed by the
first token when the endpoint streams, else by latency; a one-sided two-sample KS test with an
effect size and its interval, looked at every `look_every` probes per arm (decision.py).
Metadata stands beside timing (metadata.py). With a second client (`second_api_key_env`, or
`second_user`) a third arm sends the victim from the first client and the probe from the
second: reuse there is a cache shared across users, a privacy finding.

Phases: `preflight` (one probe-length prompt: is it accepted, how many tokens is a word), then
`look_1`, `look_2`, … planned one at a time while the decision is not settled.
"""

from __future__ import annotations

import math
import os
import secrets
from typing import ClassVar

import pandas as pd

from auditkit.audits.base import AuditTest
from auditkit.audits.kit.phases import one_at_a_time, phase_problem
from auditkit.audits.kit.results import base_fields, invalid
from auditkit.audits.prefix_cache.decision import Timing, decide, min_ks_p
from auditkit.audits.prefix_cache.evidence import ArmTiming, PrefixCacheEvidence
from auditkit.audits.prefix_cache.metadata import counter_deltas, reuse_shown
from auditkit.audits.prefix_cache.prompts import (
    HIT_CROSS,
    HIT_SAME,
    MISS,
    ProbeDesign,
    look_exchanges,
    words,
)
from auditkit.audits.prefix_cache.settings import PrefixCacheConfig
from auditkit.config import AuditConfig
from auditkit.data import Dataset, SampleOrder
from auditkit.errors import InputError
from auditkit.plan import Exchanges, RunSpec
from auditkit.results import AuditResult, PhaseResult

PREFLIGHT = "preflight"
SIZED = "preflight_size"
#: words of the pre-flight's first prompt, which measures the server's tokens per word
CALIBRATION_WORDS = 64
VERIFY_FILE = "verify_prefix_cache.txt"
USERS = ("auditkit-user-a", "auditkit-user-b")


def _looks(s: PrefixCacheConfig) -> int:
    return math.ceil(s.probes_per_arm / s.look_every)


def _cross(s: PrefixCacheConfig) -> bool:
    return s.second_api_key_env is not None or s.second_user


def _metrics_url(cfg: AuditConfig, s: PrefixCacheConfig) -> str | None:
    if s.metrics_url is not None:
        return s.metrics_url
    if not cfg.endpoint.url:
        return None
    return cfg.endpoint.url.rstrip("/").removesuffix("/v1") + "/metrics"


def _times(records: pd.DataFrame, variant: str, stream: bool) -> list[float]:
    """Arm `variant`'s probe times in s: first token when streamed, else latency.

    Raw times, not each divided by its victim's: measured here on a loaded 2-core machine the
    ratio's interval came out wider that way (the noise is per request, not a slow drift)."""
    rows = records[(records["variant"] == variant) & (records["status"] == "ok")]
    column = "ttft_ns" if stream and rows["ttft_ns"].notna().all() else "latency_ns"
    return [float(v) / 1e9 for v in rows[column]]


class PrefixCache(AuditTest[PrefixCacheConfig, PrefixCacheEvidence]):
    """The prefix-cache audit as a plug-in."""

    id: ClassVar[str] = "PREFIX_CACHE"
    key: ClassVar[str] = "prefix_cache"
    title: ClassVar[str] = "Cross-query prefix (KV) cache"
    summary: ClassVar[str] = "does the endpoint reuse one query's prompt work for another?"
    settings_model = PrefixCacheConfig
    evidence_model = PrefixCacheEvidence
    submission_name: ClassVar[str | None] = "prefix_cache_test"
    panel_label: ClassVar[str | None] = "prefix cache"

    def applies(self, cfg: AuditConfig) -> str | None:
        if cfg.endpoint.api == "json":
            return "sends max_tokens and reads usage: needs an OpenAI-compatible api"
        return None

    def resolve(self, cfg: AuditConfig, dataset: Dataset) -> AuditConfig:  # noqa: ARG002 (hook signature)
        """A secret nonce for this run's prompts (recorded once the run is over)."""
        s = self.settings(cfg)
        if s.nonce is not None:
            return cfg
        block = s.model_copy(update={"nonce": secrets.token_hex(8)})
        return cfg.model_copy(update={self.key: block})

    def validate(self, cfg: AuditConfig, dataset: Dataset) -> None:  # noqa: ARG002 (hook signature)
        s = self.settings(cfg)
        if cfg.endpoint.api == "json":
            raise InputError("prefix_cache needs an OpenAI-compatible endpoint.api (max_tokens)")
        if s.second_api_key_env is not None and s.second_user:
            raise InputError("prefix_cache: give second_api_key_env or second_user, not both")
        if s.second_api_key_env is not None and not os.environ.get(s.second_api_key_env):
            raise InputError(
                f"environment variable {s.second_api_key_env} (prefix_cache.second_api_key_env) "
                "is not set; export it with the second API key"
            )
        if s.look_every > s.probes_per_arm:
            raise InputError("prefix_cache.look_every exceeds prefix_cache.probes_per_arm")
        per_look = s.alpha / _looks(s) / (2 if _cross(s) else 1)
        if per_look < min_ks_p(s.probes_per_arm):
            raise InputError(
                f"prefix_cache.alpha {s.alpha:g} split over {_looks(s)} looks is below what a "
                f"KS test of {s.probes_per_arm} probes per arm can reach: raise probes_per_arm"
            )

    def _exchanges(self, cfg: AuditConfig, texts: list[str], variant: str) -> Exchanges:
        s = self.settings(cfg)
        n = len(texts)
        return Exchanges(
            tuple(texts),
            (variant,) * n,
            (0,) * n,
            tuple(range(-n, 0)),
            second_key_env=s.second_api_key_env,
            metrics_url=None,
            max_tokens=1,
        )

    def plan(self, cfg: AuditConfig, dataset: Dataset) -> list[RunSpec]:  # noqa: ARG002 (hook signature)
        """The pre-flight's first step: a short fresh prompt (the server's tokens per word);
        its second (a fresh prompt of the probes' length: does the server accept it?) and the
        looks follow from `extend`."""
        s = self.settings(cfg)
        text = " ".join(words(f"{s.seed}:{s.nonce}:preflight", CALIBRATION_WORDS))
        ex = self._exchanges(cfg, [text], PREFLIGHT)
        return [self._spec(PREFLIGHT, ex, s, role="warmup")]

    def _spec(self, name: str, ex: Exchanges, s: PrefixCacheConfig, **kw: object) -> RunSpec:
        return RunSpec(
            name,
            SampleOrder.single(0),
            len(ex.texts),
            one_at_a_time(s.seed),
            exchanges=ex,
            **kw,  # type: ignore[arg-type]
        )

    def _design(self, cfg: AuditConfig, phases: list[PhaseResult]) -> ProbeDesign:
        s = self.settings(cfg)
        pre = next(p for p in phases if p.name == PREFLIGHT)
        reported = pre.columns("prompt_tokens")["prompt_tokens"].dropna()
        per_word = float(reported.iloc[0]) / CALIBRATION_WORDS if len(reported) else 1.0
        n = max(8, round(s.prompt_tokens / max(per_word, 1e-3)))
        arms = (HIT_SAME, HIT_CROSS, MISS) if _cross(s) else (HIT_SAME, MISS)
        return ProbeDesign(s.nonce or "", s.seed, n, round(s.prefix_fraction * n), arms)

    def extend(
        self,
        cfg: AuditConfig,
        dataset: Dataset,  # noqa: ARG002 (hook signature)
        phases: list[PhaseResult],
    ) -> list[RunSpec]:
        s = self.settings(cfg)
        done = sum(1 for p in phases if p.name.startswith("look_"))
        names = {p.name: p for p in phases}
        if PREFLIGHT not in names or names[PREFLIGHT].summary.failed:
            return []
        if SIZED not in names:
            n = self._design(cfg, phases).prompt_words
            text = " ".join(words(f"{s.seed}:{s.nonce}:preflight-size", n))
            return [self._spec(SIZED, self._exchanges(cfg, [text], SIZED), s, role="warmup")]
        if names[SIZED].summary.failed or done >= _looks(s):
            return []
        look = done + 1
        per_arm = min(s.look_every, s.probes_per_arm - done * s.look_every)
        ex = look_exchanges(
            self._design(cfg, phases),
            look,
            per_arm,
            second_key_env=s.second_api_key_env,
            users=USERS if s.second_user else None,
            metrics_url=_metrics_url(cfg, s),
            gap_s=s.delay_ms / 1e3,
        )
        return [self._spec(f"look_{look}", ex, s, round=look)]

    def verify(
        self, phases: list[PhaseResult], cfg: AuditConfig
    ) -> AuditResult[PrefixCacheEvidence]:
        s = self.settings(cfg)
        base = base_fields(self.id, cfg, phases)
        names = {p.name: p for p in phases}
        for step in (PREFLIGHT, SIZED):
            if step in names and names[step].summary.failed:
                error = str(names[step].columns("error")["error"].iloc[0])
                fix = (
                    "lower prefix_cache.prompt_tokens to fit its context window"
                    if step == SIZED
                    else "check the endpoint answers a short completion"
                )
                size = s.prompt_tokens if step == SIZED else CALIBRATION_WORDS
                return invalid(
                    self.result_model,
                    base,
                    f"pre-flight: the endpoint refused a {size}-token probe prompt ({error}); "
                    f"{fix}",
                )
        looks = [p for p in phases if p.name.startswith("look_")]
        if not looks:
            return self.result_model(
                verdict="INCONCLUSIVE", reason="pre-flight not finished; no probes yet", **base
            )
        problem = phase_problem(looks)
        if problem is not None:
            return invalid(self.result_model, base, problem)
        design = self._design(cfg, phases)
        records = pd.concat([p.records for p in looks], ignore_index=True)
        stream = cfg.endpoint.streams
        cross = _cross(s)
        split = 2 if cross else 1
        last = len(looks) >= _looks(s)
        kw = {
            "alpha": s.alpha / split,
            "confidence": 1 - (1 - s.confidence) / split,
            "looks": _looks(s),
            "last": last,
            "min_effect": s.min_effect,
        }
        miss = _times(records, MISS, stream)
        same = decide(_times(records, HIT_SAME, stream), miss, **kw)  # type: ignore[arg-type]
        across = None
        if cross:
            across = decide(_times(records, HIT_CROSS, stream), miss, **kw)  # type: ignore[arg-type]
        # the probes' own prompt tokens as the server counted them (the design's words if not)
        probe_tokens = records.loc[records["variant"] != MISS, "prompt_tokens"].dropna()
        tokens = float(probe_tokens.median()) if len(probe_tokens) else design.prompt_words
        shared_tokens = s.prefix_fraction * tokens
        scrapes = [sc for p in looks for sc in p.scrapes]
        cached, metrics_read = _metadata(records, shared_tokens, scrapes)
        evidence = PrefixCacheEvidence(
            measure="ttft" if stream else "latency (max_tokens 1)",
            prompt_tokens=s.prompt_tokens,
            prompt_words=design.prompt_words,
            shared_words=design.shared_words,
            looks=len(looks),
            planned_looks=_looks(s),
            alpha=s.alpha,
            scope="cross-client" if cross else "same-client",
            same_client=_arm(same, cached["same_cached"], cached["same_counter"], s.timing_only),
            cross_client=(
                _arm(across, cached["cross_cached"], cached["cross_counter"], s.timing_only)
                if across is not None
                else None
            ),
            metrics_read=metrics_read,
        )
        return self._result(evidence, base, last, s.min_effect)

    def _result(
        self, ev: PrefixCacheEvidence, base: dict[str, object], last: bool, min_effect: float
    ) -> AuditResult[PrefixCacheEvidence]:
        same, cross = ev.same_client, ev.cross_client
        arms = [same] + ([cross] if cross is not None else [])
        reused = [a for a in arms if a.fired]
        shared: bool | None = None
        if cross is not None and cross.fired:
            shared = True
        elif cross is not None and cross.timing == "PASS":
            shared = False
        alpha = f"alpha {ev.alpha:g} over {ev.planned_looks} looks"
        if reused and shared is None and cross is not None and not last:
            # reuse is found; looking on until the cross-client arm says whether it is shared
            verdict = "INCONCLUSIVE"
            reason = (
                f"prefix reuse found at {same.per_arm} probes per arm; whether it is shared "
                "across users is not settled yet"
            )
        elif reused:
            fired = ", ".join(sorted({e for a in reused for e in a.fired}))
            who = {
                True: "SHARED ACROSS USERS (a privacy finding): ",
                False: "per client, not shared across users: ",
                None: "" if cross is None else "(shared across users: not settled) ",
            }[shared]
            if any("timing" in a.fired for a in reused):
                timing_note = ""
            elif same.timing == "PASS":
                timing_note = " (metadata shows reuse while timing does not)"
            else:
                timing_note = f" (timing not settled at {same.per_arm} probes per arm)"
            verdict = "FAIL"
            reason = (
                f"prefix cache {who}one query's prompt work is reused by another "
                f"(evidence: {fired}){timing_note}; hit/miss {same.ratio:.3f} "
                f"[{same.ratio_low:.3f}, {same.ratio_high:.3f}], KS p {same.ks_p:.2g}, {alpha}"
            )
        elif all(a.timing == "PASS" for a in arms):
            verdict = "PASS"
            reason = (
                f"no prefix reuse: hit/miss {same.ratio:.3f}, interval [{same.ratio_low:.3f}, "
                f"{same.ratio_high:.3f}] excludes hits {min_effect:.0%} faster (min_effect); "
                f"KS p {same.ks_p:.2g}, {alpha}, {same.per_arm} probes per arm"
            )
        else:
            verdict = "INCONCLUSIVE"
            need = max((a.needed_per_arm or 0) for a in arms)
            more = f"; about {need} probes per arm would settle it" if need else ""
            reason = (
                f"not settled after {same.per_arm} probes per arm: hit/miss {same.ratio:.3f} "
                f"[{same.ratio_low:.3f}, {same.ratio_high:.3f}], KS p {same.ks_p:.2g}, {alpha}"
                f"{more if last else ''}"
            )
        ev = ev.model_copy(update={"shared_across_users": shared})
        return self.result_model(
            verdict=verdict,
            upstream_verdict=None,
            reason=reason,
            score_name="hit/miss time ratio (Hodges-Lehmann)",
            ratio=same.ratio,
            threshold=min_effect,
            rule="FAIL iff one-sided KS p <= alpha/looks or metadata shows reuse; PASS iff the "
            "ratio's interval lies above 1 - min_effect",
            evidence=ev,
            **base,
        )

    def files(self, result: AuditResult[PrefixCacheEvidence]) -> dict[str, str]:
        ev = result.evidence
        lines = [f"prefix cache audit: {result.verdict}", result.reason, ""]
        if ev is not None:
            lines += [
                f"scope: {ev.scope}; shared across users: {ev.shared_across_users}",
                f"measure: {ev.measure}; prompts {ev.prompt_tokens} tokens "
                f"({ev.prompt_words} words, {ev.shared_words} shared)",
                f"looks: {ev.looks} of {ev.planned_looks}; alpha {ev.alpha:g}",
            ]
            for name, arm in (("same client", ev.same_client), ("cross client", ev.cross_client)):
                if arm is None:
                    continue
                lines.append(
                    f"{name}: timing {arm.timing}, KS D {arm.ks_statistic:.3f} p {arm.ks_p:.3g} "
                    f"(alpha per look {arm.alpha_per_look:.3g}), hit/miss {arm.ratio:.4f} "
                    f"[{arm.ratio_low:.4f}, {arm.ratio_high:.4f}], medians {arm.hit_median_ms:.2f}"
                    f" / {arm.miss_median_ms:.2f} ms, {arm.per_arm} per arm, cached tokens "
                    f"{arm.hit_cached_tokens} / {arm.miss_cached_tokens}, counters "
                    f"{arm.hit_counter_delta} / {arm.miss_counter_delta}, evidence "
                    f"{', '.join(arm.fired) or 'none'}"
                )
        lines += ["", "TEST PASS" if result.verdict == "PASS" else "TEST FAIL"]
        return {VERIFY_FILE: "\n".join(lines) + "\n"}

    def advice(self, result: AuditResult[PrefixCacheEvidence]) -> str:
        if result.verdict == "FAIL":
            return (
                "turn the prefix cache off for the submission (vLLM/SGLang: no "
                "--enable-prefix-caching / --disable-radix-cache; llama.cpp: cache_prompt false), "
                "then rerun with --overwrite"
            )
        if result.verdict == "INCONCLUSIVE":
            return "rerun with more probes (raise --prefix-cache-probes-per-arm) and --overwrite"
        return super().advice(result)

    def summary_lines(self, result: AuditResult[PrefixCacheEvidence]) -> list[str]:
        ev = result.evidence
        if ev is None:
            return []
        out = []
        for name, arm in (("same client", ev.same_client), ("cross client", ev.cross_client)):
            if arm is not None:
                out.append(
                    f"{name}: hit/miss {arm.ratio:.3f} [{arm.ratio_low:.3f}, {arm.ratio_high:.3f}]"
                    f", KS p {arm.ks_p:.2g}, {arm.per_arm} per arm, evidence "
                    f"{', '.join(arm.fired) or 'none'}"
                )
        return out


def _median(values: list[float]) -> float | None:
    return float(pd.Series(values).median()) if values else None


#: (hits' numbers, misses' numbers, shared prefix tokens) for `reuse_shown`
Reuse = tuple[list[float], list[float], float]


def _metadata(
    records: pd.DataFrame, shared_tokens: float, scrapes: list[tuple[int, str, str]]
) -> tuple[dict[str, Reuse], bool]:
    """Per arm: cached tokens the probes reported and the counters' rise per procedure."""
    ok = records[records["status"] == "ok"]

    def cached(variant: str) -> list[float]:
        return [float(v) for v in ok.loc[ok["variant"] == variant, "cached_tokens"].dropna()]

    deltas = counter_deltas(scrapes)
    probes = ok[ok["variant"].isin([HIT_SAME, HIT_CROSS, MISS])]
    arm_of = dict(zip(probes["query_id"], probes["variant"], strict=True))

    def counter(variant: str) -> list[float]:
        return [d for g, d in deltas.items() if arm_of.get(g) == variant]

    reuse = {
        "same_cached": (cached(HIT_SAME), cached(MISS), shared_tokens),
        "cross_cached": (cached(HIT_CROSS), cached(MISS), shared_tokens),
        "same_counter": (counter(HIT_SAME), counter(MISS), shared_tokens),
        "cross_counter": (counter(HIT_CROSS), counter(MISS), shared_tokens),
    }
    return reuse, bool(deltas)


def _arm(t: Timing, cached: Reuse, counter: Reuse, timing_only: bool) -> ArmTiming:
    hit_c, miss_c, shared = cached
    hit_d, miss_d, _ = counter
    fired = []
    if t.call == "FAIL":
        fired.append("timing")
    if reuse_shown(hit_c, miss_c, shared) and not timing_only:
        fired.append("cached_tokens")
    if reuse_shown(hit_d, miss_d, shared) and not timing_only:
        fired.append("prometheus")
    return ArmTiming(
        timing=t.call,
        ks_statistic=t.ks_statistic,
        ks_p=t.ks_p,
        alpha_per_look=t.alpha_per_look,
        ratio=t.ratio,
        ratio_low=t.ratio_low,
        ratio_high=t.ratio_high,
        hit_median_ms=t.hit_median_ms,
        miss_median_ms=t.miss_median_ms,
        per_arm=t.per_arm,
        needed_per_arm=t.needed_per_arm,
        hit_cached_tokens=_median(hit_c),
        miss_cached_tokens=_median(miss_c),
        hit_counter_delta=_median(hit_d),
        miss_counter_delta=_median(miss_d),
        fired=tuple(fired),
    )

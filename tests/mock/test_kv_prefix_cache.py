"""The mock's block prefix cache (cache: kv-prefix): whole blocks, per client or shared, LRU
eviction, and metadata that lies."""

from __future__ import annotations

from auditkit.config import BehaviourConfig, MockConfig
from auditkit.loadgen.fake import FakeTransport, SimulatedSUT
from auditkit.mock.caches import BlockPrefixCache, cache_policy
from auditkit.mock.protocol import Job, parse_job


def _job(words: list[str], user: str | None = None) -> Job:
    body = {"prompt": " ".join(words), "max_tokens": 1}
    if user is not None:
        body["user"] = user
    return parse_job("completions", body, "m")


def _words(tag: str, n: int) -> list[str]:
    return [f"{tag}{i}" for i in range(n)]


def test_only_whole_blocks_of_the_shared_prefix_hit() -> None:
    cache = BlockPrefixCache(block=16)
    victim = _words("v", 100)
    cache.prefilled(_job(victim))
    probe = victim[:95] + _words("p", 5)
    assert cache.reused_tokens(_job(probe)) == 80  # 95 shared → 5 whole blocks
    assert cache.reused_tokens(_job(_words("x", 100))) == 0
    assert not cache.prefix(_job(probe))
    assert cache.prefix(_job(victim[:96]))  # 6 whole blocks: the whole prompt


def test_per_client_cache_is_isolated_shared_is_not() -> None:
    victim = _words("v", 64)
    for per_client, expected in ((True, 0), (False, 64)):
        cache = BlockPrefixCache(block=16, per_client=per_client)
        cache.prefilled(_job(victim, user="alice"))
        assert cache.reused_tokens(_job(victim, user="bob")) == expected
        assert cache.reused_tokens(_job(victim, user="alice")) == 64


def test_lru_eviction_under_pressure() -> None:
    cache = BlockPrefixCache(block=16, capacity_tokens=64)  # one 64-token prompt
    first, second = _words("a", 64), _words("b", 64)
    cache.prefilled(_job(first))
    cache.prefilled(_job(second))
    assert cache.reused_tokens(_job(first)) == 0
    assert cache.reused_tokens(_job(second)) == 64


def test_policy_from_config_and_lying_metadata() -> None:
    options = BehaviourConfig(kv_scope="per-client", kv_block_tokens=64, kv_hide_cached=True)
    cache = cache_policy("kv-prefix", options)
    assert isinstance(cache, BlockPrefixCache)
    assert cache.block == 64 and cache.per_client and not cache.reports_reuse()


async def _post(transport: FakeTransport, key: str, prompt: str) -> dict[str, object]:
    import json

    from auditkit.loadgen.target import HttpTarget

    target = HttpTarget("http://sut.invalid", {"Authorization": f"Bearer {key}"})
    body = json.dumps({"model": "mock-llm", "prompt": prompt, "max_tokens": 1}).encode()
    async with transport.session(target, pool_size=1, warm=0) as session:
        url = target.base_url + "/v1/completions"
        async with session.post(url, body) as resp:
            data: dict[str, object] = json.loads(await resp.read())
            return data


def test_served_cache_keys_clients_by_api_key_and_reports_cached_tokens() -> None:
    import asyncio

    prompt = " ".join(_words("w", 128))
    for scope, lie, expected in (
        ("per-client", False, 0),
        ("shared", False, 128),
        ("shared", True, 0),
    ):
        behaviour = BehaviourConfig(kv_scope=scope, kv_hide_cached=lie)
        transport = FakeTransport(SimulatedSUT(MockConfig(cache="kv-prefix", behaviour=behaviour)))

        async def both(t: FakeTransport = transport) -> dict[str, object]:
            await _post(t, "key-a", prompt)
            return await _post(t, "key-b", prompt)

        with asyncio.Runner(loop_factory=transport.loop_factory) as runner:
            usage = runner.run(both())["usage"]
        assert isinstance(usage, dict)
        assert usage["prompt_tokens_details"]["cached_tokens"] == expected, (scope, lie)

"""Probe prompts nobody can have seen: words from a seeded generator keyed by the run's secret
nonce, and the procedures' order (hit and miss shuffled). Pure."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from auditkit.plan import Exchanges

#: short, common English words: about one token each in the usual BPE vocabularies, so a
#: prompt's length in tokens follows its length in words (the pre-flight measures the ratio)
_WORD_TEXT = """
time year people way day man thing woman life child world school state family student group
country problem hand part place case week company system program question work government
number night point home water room mother area money story fact month lot right study book
eye job word business issue side kind head house service friend father power hour game line
end member law car city name team minute idea kid body back parent face others level office
door health person art war history party result change morning reason research girl guy
moment air teacher force education foot boy age policy music market sense nation plan
college interest death experience effect use class control care field development role
effort rate heart drug show leader light voice wife police mind price report decision son
view relationship town road arm difference value building action model season society tax
director position player record paper space ground form event official matter center couple
site project activity star table need court oil situation cost industry figure street image
phone data picture practice piece land product doctor wall patient worker news test movie
north love support technology step baby computer type attention film tree source
organization hair window evidence population site camera
"""
WORDS = tuple(_WORD_TEXT.split())

HIT_SAME, HIT_CROSS, MISS = "hit", "hit_cross", "miss"
VICTIM, VICTIM_CROSS = "victim", "victim_cross"


def words(key: str, n: int) -> list[str]:
    """`n` words drawn by a generator seeded from `key` (the nonce is part of every key)."""
    rng = random.Random(hashlib.sha256(key.encode()).digest())
    return rng.choices(WORDS, k=n)


@dataclass(frozen=True)
class ProbeDesign:
    """What one look sends: its arms, probes per arm, prompt words and shared words."""

    nonce: str
    seed: int
    prompt_words: int
    shared_words: int
    arms: tuple[str, ...]


def look_exchanges(
    design: ProbeDesign,
    look: int,
    per_arm: int,
    *,
    second_key_env: str | None,
    users: tuple[str, str] | None,
    metrics_url: str | None,
    gap_s: float,
) -> Exchanges:
    """Look `look`'s procedures, shuffled: a hit is a victim prompt then a probe starting with
    its first `shared_words` (same client, or the other client for `hit_cross`); a miss is a
    victim prompt then a probe sharing nothing with it (Gu et al. send the miss alone; the
    victim before it keeps the arms alike in everything but the shared prefix). Probes come
    from client 1, victims from client 0 (the same client for `hit` and `miss`: client 1).
    Group numbers run on across looks."""
    n, k = design.prompt_words, design.shared_words
    procs = [arm for arm in design.arms for _ in range(per_arm)]
    random.Random(f"{design.seed}:{design.nonce}:order:{look}").shuffle(procs)
    texts: list[str] = []
    variants: list[str] = []
    clients: list[int] = []
    groups: list[int] = []
    first = (look - 1) * per_arm * len(design.arms)
    for i, arm in enumerate(procs):
        group = first + i
        key = f"{design.seed}:{design.nonce}:{group}"
        if arm == MISS:
            # a fresh prompt before the miss too: both arms' probes follow a victim-sized
            # request by the same client, so only the shared prefix differs between them
            sends = [(VICTIM, 1, words(f"{key}:victim", n)), (MISS, 1, words(f"{key}:miss", n))]
        else:
            victim = words(f"{key}:victim", n)
            probe = victim[:k] + words(f"{key}:tail", n - k)
            victim_client = 0 if arm == HIT_CROSS else 1
            role = VICTIM_CROSS if arm == HIT_CROSS else VICTIM
            sends = [(role, victim_client, victim), (arm, 1, probe)]
        for variant, client, text in sends:
            texts.append(" ".join(text))
            variants.append(variant)
            clients.append(client)
            groups.append(group)
    return Exchanges(
        tuple(texts),
        tuple(variants),
        tuple(clients),
        tuple(groups),
        second_key_env=second_key_env,
        metrics_url=metrics_url,
        gap_s=gap_s,
        max_tokens=1,
        users=users,
    )

"""Dishonest serving on request (`MockConfig.misbehaviour`): what the suite's audits must catch.

| option               | what the mock does                                     | caught by |
|----------------------|--------------------------------------------------------|-----------|
| change_under_load    | under load, temperature-0 answers come out different   | TEST01    |
| inflate_tokens       | usage.completion_tokens over-reports the tokens sent   | TEST06    |
| fake_first_token     | a stream opens with a filler token, not the answer's   | TEST06    |
| repeat_stop          | answers end with repeated stop markers (`</s></s>`)     | TEST06    |
| truncate_under_load  | under load, answers are cut short (and report it)      | TEST09    |
| wrong_under_load     | under load, a share of multiple-choice answers change letter | TEST07 |
| fast_order_seed      | prompts arriving in that seed's order are served faster | TEST05    |

"Under load" means another request was being computed when this one arrived: a one-at-a-time
phase never sees it, a concurrent phase nearly always does. Pure apart from reading the order
dataset at start: the engine asks, and keeps sleeping and rendering to itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from auditkit.config import MisbehaviourConfig
from auditkit.mock import answers
from auditkit.mock.latency import Timing, generate_words
from auditkit.mock.protocol import Job

#: what `repeat_stop` appends (Llama 2's end-of-sequence text)
STOP_MARKER = "</s>"
#: the filler a `fake_first_token` stream opens with
FILLER = "Sure,"
#: how far ahead of its position in the official order a prompt still counts as "in order"
ORDER_WINDOW = 16


def order_keys(texts: Sequence[str]) -> list[tuple[str, ...]]:
    """How the mock recognises a dataset row in a request: its completions prompt, or a chat
    with it as the one user message (the job's seed text)."""
    return [(t, f"user\x1f{t}") for t in texts]


class OrderPredictor:
    """Knows the official sample order and serves a prompt faster when it follows the previous
    one in that order (within ORDER_WINDOW either way: concurrent requests arrive slightly
    shuffled): a server tuned to, or prefetching along, the order a benchmark issues. Any known
    prompt resyncs it, so a later block of the official order is recognised after one request."""

    def __init__(self, keys: Sequence[tuple[str, ...]]) -> None:
        self.size = len(keys)
        self.position = {k: i for i, ks in enumerate(keys) for k in ks}
        self.last: int | None = None

    def in_order(self, seed_text: str) -> bool:
        """Whether this prompt comes right after the previous one in the order."""
        pos = self.position.get(seed_text)
        if pos is None:
            return False
        last, self.last = self.last, pos
        if last is None:
            return False
        step = (pos - last) % self.size
        return 0 < step <= ORDER_WINDOW or self.size - step < ORDER_WINDOW


def official_order(cfg: MisbehaviourConfig) -> OrderPredictor | None:
    """The predictor `fast_order_seed` asks for (None when off); reads the dataset once."""
    if cfg.fast_order_seed is None:
        return None
    # imported here: pandas comes with the dataset reader, and only this option needs it
    from auditkit.config import DatasetConfig
    from auditkit.data import SampleOrder, load_dataset

    dataset = load_dataset(DatasetConfig(path=cfg.order_dataset))
    rows = SampleOrder.without_replacement(cfg.fast_order_seed).indices(len(dataset), len(dataset))
    return OrderPredictor(order_keys([dataset.samples[i].text for i in rows]))


class Misbehaviour:
    """The configured misbehaviours of one mock server (a no-op when all are off)."""

    def __init__(self, cfg: MisbehaviourConfig) -> None:
        self.cfg = cfg
        self.order = official_order(cfg)
        self.active = cfg != MisbehaviourConfig()

    def answer(self, job: Job, words: list[str], in_flight: int, seq: int) -> tuple[Job, list[str]]:
        """The words to send and the job to render them with (its `output_tokens` is what
        usage reports). `seq` varies a changed answer from request to request."""
        if not self.active:
            return job, words
        cfg = self.cfg
        loaded = in_flight > 0
        n = len(words)
        if cfg.change_under_load and loaded:
            words = generate_words(job.seed_text, n, nonce=seq)
            # a multiple-choice answer changes too: its letter is drawn again
            words = answers.answer(job.seed_text, words, nonce=seq)
        if cfg.wrong_under_load and loaded:
            stem = answers.stem(answers.question(job.seed_text))
            if stem is not None and answers.share(stem, seq) < cfg.wrong_under_load:
                words = answers.answer(job.seed_text, words, wrong=True)
        if cfg.truncate_under_load and loaded:
            words = words[: max(1, round(n * (1.0 - cfg.truncate_under_load)))]
        if cfg.repeat_stop:
            k = min(cfg.repeat_stop, len(words))
            words = words[: len(words) - k] + [STOP_MARKER] * k
        if cfg.fake_first_token and job.stream:
            words = [FILLER, *words[:-1]]
        reported = len(words) + cfg.inflate_tokens
        if reported != job.output_tokens:
            job = dataclasses.replace(job, output_tokens=reported)
        return job, words

    def timing(self, job: Job, timing: Timing) -> Timing:
        """A prompt that comes in the official order is served `order_speedup` times faster."""
        if self.order is None or not self.order.in_order(job.seed_text):
            return timing
        f = 1.0 / self.cfg.order_speedup
        return dataclasses.replace(
            timing,
            base_s=timing.base_s * f,
            prefill_s=timing.prefill_s * f,
            decode_per_token_s=timing.decode_per_token_s * f,
        )

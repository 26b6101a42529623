"""A real llama.cpp server for tests: a tiny random-weight GGUF made with the `gguf` package,
served by xllamacpp (llama.cpp's own OpenAI-compatible HTTP server) in its own process.

The model has random weights (its answers are noise) and a character-level vocabulary, so it
is a few hundred kB and a probe takes milliseconds, while prefill still dominates a request
with max_tokens 1: what the prefix-cache audit measures.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

EMBD, LAYERS, HEADS, FF, CTX = 64, 2, 4, 128, 4096
CHARS = "abcdefghijklmnopqrstuvwxyz"


def make_gguf(path: Path, seed: int = 0) -> Path:
    """Write a random llama-architecture GGUF with an SPM vocabulary of characters."""
    import gguf

    rng = np.random.default_rng(seed)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256  # unknown, control, control, byte
    tokens += ["▁", *CHARS, *(f"▁{c}" for c in CHARS)]
    types += [1] * (1 + 2 * len(CHARS))
    scores = [0.0] * len(tokens)
    vocab = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("auditkit-tiny-random")
    w.add_context_length(CTX)
    w.add_embedding_length(EMBD)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_rope_dimension_count(EMBD // HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(0)  # all f32
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)

    def t(name: str, *shape: int) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    t("token_embd.weight", vocab, EMBD)
    w.add_tensor("output_norm.weight", np.ones(EMBD, np.float32))
    t("output.weight", vocab, EMBD)
    for i in range(LAYERS):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(EMBD, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(EMBD, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            t(f"blk.{i}.{name}.weight", EMBD, EMBD)
        t(f"blk.{i}.ffn_gate.weight", FF, EMBD)
        t(f"blk.{i}.ffn_up.weight", FF, EMBD)
        t(f"blk.{i}.ffn_down.weight", EMBD, FF)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


SERVE = """
import sys, time, xllamacpp as xlc
p = xlc.CommonParams()
p.model.path = sys.argv[1]
p.port = int(sys.argv[2])
p.cache_prompt = sys.argv[3] == "on"
p.endpoint_metrics = True
p.n_parallel = 1
p.n_ctx = 4096
p.cpuparams.n_threads = 1
p.cpuparams_batch.n_threads = 1
server = xlc.Server(p)
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def llama_server(model: Path, cache_prompt: bool) -> Iterator[str]:
    """llama.cpp's server on 127.0.0.1 in its own process; yields its base URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(model), str(port), "on" if cache_prompt else "off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                    if json.loads(resp.read()).get("status") == "ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("llama.cpp server did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

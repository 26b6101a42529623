"""Token ids for the audits that count or compare tokens (TEST06, TEST09), from the best source
there is, never from stream chunks (a server may send several tokens per chunk):

| source        | ids                                                         | exact?      |
|---------------|-------------------------------------------------------------|-------------|
| `tokenizer`   | the model's tokenizer.json (`tokenizers`, read locally)     | yes         |
| `logprobs`    | the tokens the endpoint listed in `logprobs`                | counts yes  |
| `approximate` | words and punctuation of the text                           | no          |

Stand-in ids (logprobs, approximate): `STAND_IN_EOS` for any stop marker, the others numbered
from `STAND_IN_EOS + 1` in the order they are first seen in a run, so equal tokens get equal
ids in every phase. Pure, except `load_tokenizer`, which reads the file once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from auditkit.errors import InputError
from auditkit.results import LoggedOutput

#: the id every stop marker gets among stand-in ids (upstream TEST06's default --eos_token_id)
STAND_IN_EOS = 2
TOKENIZER = "tokenizer"
LOGPROBS = "logprobs"
APPROXIMATE = "approximate"
HOW = {
    TOKENIZER: "the model's tokenizer (text re-encoded)",
    LOGPROBS: "the endpoint's logprobs (counts exact; ids are stand-ins numbered by first sight)",
    APPROXIMATE: "approximate: no tokenizer and no logprobs, so words and punctuation stand in "
    "for tokens (a word may be several tokens; give --tokenizer for exact counts)",
}

Encoder = Callable[[str], list[int]]


def load_tokenizer(path: str) -> Encoder:
    """A local tokenizer.json (a file, or a folder holding one, e.g. a Hugging Face cache
    snapshot) as text → ids; InputError naming the fix when it cannot be read. Nothing is
    downloaded."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "tokenizer.json"
    if not p.is_file():
        raise InputError(f"tokenizer {path}: no tokenizer.json there (give the file's path)")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise InputError(
            "--tokenizer needs the tokenizers library: pip install tokenizers"
        ) from None
    try:
        tok = Tokenizer.from_file(str(p))
    except Exception as exc:  # the library raises its own untyped errors
        raise InputError(f"tokenizer {p}: not a tokenizer.json ({exc})") from None

    def encode(text: str) -> list[int]:
        return list(tok.encode(text, add_special_tokens=False).ids)

    return encode


@dataclass(frozen=True)
class Tokens:
    """One output as token ids, its first streamed token, and where they came from."""

    ids: tuple[int, ...]
    #: the first streamed chunk's first token (None: not streamed)
    first: int | None
    source: str


@dataclass
class TokenSource:
    """Turns logged outputs into token ids (one instance per run: stand-in ids are shared)."""

    stop_markers: Sequence[str] = ()
    encoder: Encoder | None = None
    vocab: dict[str, int] = field(default_factory=dict)

    def _stand_in(self, piece: str) -> int:
        if piece.strip() and piece.strip() in self.stop_markers:
            return STAND_IN_EOS
        return self.vocab.setdefault(piece, STAND_IN_EOS + 1 + len(self.vocab))

    def _pieces(self, text: str) -> list[str]:
        markers = "|".join(re.escape(m) for m in sorted(self.stop_markers, key=len, reverse=True))
        pattern = (rf"\s*(?:{markers})|" if markers else "") + r"\s*\w+|\s*[^\w\s]"
        return re.findall(pattern, text)

    def tokens(self, o: LoggedOutput) -> Tokens:
        """The ids of `o`'s text and of its first streamed token."""
        if self.encoder is not None:
            ids = tuple(self.encoder(o.text))
            first = self.encoder(o.first_chunk)[:1] if o.first_chunk else []
            return Tokens(ids, first[0] if first else None, TOKENIZER)
        if o.logprob_texts is not None:
            ids = tuple(self._stand_in(t) for t in o.logprob_texts)
            # the first chunk's logprobs open the list: its first token is the stream's first
            streamed = o.first_chunk is not None and bool(ids)
            return Tokens(ids, ids[0] if streamed else None, LOGPROBS)
        ids = tuple(self._stand_in(p) for p in self._pieces(o.text))
        first = [self._stand_in(p) for p in self._pieces(o.first_chunk or "")][:1]
        return Tokens(ids, first[0] if first else None, APPROXIMATE)

    def eos_id(self, marker: str | None = None) -> int:
        """The EOS id the EOS check looks for: the tokenizer's id of the first stop marker
        that is one token, else the stand-in id."""
        if self.encoder is None:
            return STAND_IN_EOS
        for m in [marker] if marker else self.stop_markers:
            ids = self.encoder(m)
            if len(ids) == 1:
                return ids[0]
        return STAND_IN_EOS


def int32_bytes(ids: Sequence[int]) -> bytes:
    """Token ids as LoadGen's LLM harnesses log them: int32, little-endian."""
    return b"".join(int(i).to_bytes(4, "little", signed=True) for i in ids)


def combined_source(sources: set[str]) -> str:
    """One word for the sources a run used ("logprobs+approximate" when they mixed)."""
    return "+".join(sorted(sources)) or "none"

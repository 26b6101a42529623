"""How the mock answers a multiple-choice question: the end of its output is a gpt-oss-style
final section, `<|channel|>final<|message|>Answer: X`, with the letter it believes.

A prompt is a multiple-choice question when it lists options `(A)` to `(D)` on lines of their
own. The mock's belief is a pure function of the question's stem (the text before `(A)`), so it
is the same one at a time and under load, for a completion and for a one-message chat. The
shipped compliance set (`datasets/choices.jsonl`, written by scripts/make_choices.py) holds the
true answers; the mock believes the true one for 3 rows in 4, so an honest mock scores about
75 % (gpt-oss-120b's TEST07 threshold is 60.698). Any other prompt is answered as before.
Pure: text in, words out.
"""

from __future__ import annotations

import hashlib
import re

LETTERS = "ABCD"
#: the option lines that make a prompt a multiple-choice question
_OPTIONS = re.compile(r"^\(A\) .*^\(B\) .*^\(C\) .*^\(D\) ", re.MULTILINE | re.DOTALL)
#: the words a multiple-choice answer ends with, before the letter
FINAL = "<|channel|>final<|message|>Answer:"


def question(seed_text: str) -> str:
    """The prompt text of a job's seed (a chat's contents without their roles)."""
    return "\n".join(part.split("\x1f", 1)[-1] for part in seed_text.split("\x1e"))


def stem(text: str) -> str | None:
    """The question before its options, or None when `text` is not a multiple-choice question."""
    match = _OPTIONS.search(text)
    return None if match is None else text[: match.start()]


def _draw(text: str, nonce: int, salt: bytes) -> int:
    digest = hashlib.sha256(salt + nonce.to_bytes(8, "big") + text.encode("utf-8", "surrogatepass"))
    return int.from_bytes(digest.digest()[:8], "big")


def belief(question_stem: str, nonce: int = 0) -> str:
    """The letter the mock answers for a stem (nonce 0: its greedy answer; another nonce: an
    answer that changed)."""
    return LETTERS[_draw(question_stem, nonce, b"belief") % len(LETTERS)]


def other_letter(letter: str, question_stem: str) -> str:
    """A letter other than `letter`, chosen by the stem."""
    rest = [c for c in LETTERS if c != letter]
    return rest[_draw(question_stem, 0, b"other") % len(rest)]


def share(question_stem: str, nonce: int) -> float:
    """A uniform draw in [0, 1) for (stem, nonce): which answers a misbehaviour touches."""
    return _draw(question_stem, nonce, b"share") / 2**64


def with_letter(words: list[str], letter: str) -> list[str]:
    """`words` ending in the final section that answers `letter` (same number of words)."""
    if len(words) < 2:
        return [letter][: len(words)]
    return [*words[:-2], FINAL, letter]


def answer(seed_text: str, words: list[str], nonce: int = 0, wrong: bool = False) -> list[str]:
    """The words the mock sends: a multiple-choice question's answer ends with its letter
    (`wrong`: a letter other than its belief); any other prompt's words as they are."""
    s = stem(question(seed_text))
    if s is None:
        return words
    letter = belief(s, nonce)
    return with_letter(words, other_letter(letter, s) if wrong else letter)

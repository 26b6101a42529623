"""Generate the shipped TEST07 compliance set, ``auditkit/datasets/choices.jsonl``.

200 multiple-choice arithmetic questions (options (A) to (D), one true), each with its true
letter in ``answer``: TEST07's exact-match metric scores an output against it. The embedded
mock answers a multiple-choice question with the letter it believes
(``auditkit.mock.answers.belief`` of the question's stem); the true value is placed at that
letter for 3 rows in 4 (rows whose index is not 3 mod 4) and at another letter otherwise, so an
honest mock scores exactly 75.000 % and a mock whose answers degrade under load scores less.

Deterministic (``random.Random(20261207)``, no network): ``--check`` verifies that the committed
file matches the generator.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

from auditkit.mock.answers import LETTERS, belief, other_letter

ROWS = 200
OUT = Path(__file__).resolve().parent.parent / "auditkit" / "datasets" / "choices.jsonl"
OPS = (("sum", "+"), ("difference", "-"), ("product", "*"))


def row(i: int, rng: random.Random) -> dict[str, str]:
    name, op = OPS[i % len(OPS)]
    a, b = rng.randint(12, 99), rng.randint(2, 40)
    value = a + b if op == "+" else a - b if op == "-" else a * b
    stem = f"Question {i + 1}: what is the {name} of {a} and {b}?\n\n"
    letter = belief(stem)
    if i % 4 == 3:
        letter = other_letter(letter, stem)
    wrong = rng.sample([value + d for d in (-11, -10, -2, -1, 1, 2, 10, 11)], 3)
    options = iter(wrong)
    lines = [f"({c}) {value if c == letter else next(options)}" for c in LETTERS]
    prompt = stem + "\n".join(lines) + "\n\nGive the letter of the correct option."
    return {"id": f"q{i:04d}", "prompt": prompt, "answer": letter}


def text() -> str:
    rng = random.Random(20261207)
    return "".join(json.dumps(row(i, rng)) + "\n" for i in range(ROWS))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file differs")
    args = parser.parse_args()
    if args.check:
        same = OUT.is_file() and OUT.read_text(encoding="utf-8") == text()
        print(f"{OUT}: {'up to date' if same else 'differs from the generator'}")
        return 0 if same else 1
    OUT.write_text(text(), encoding="utf-8")
    print(f"wrote {ROWS} rows to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

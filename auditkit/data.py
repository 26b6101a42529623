"""Datasets (JSONL, CSV, Parquet) and the sample orders that phases draw from them."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from auditkit.config import DatasetConfig
from auditkit.errors import InputError
from auditkit.resources import datasets_dir, default_dataset

SUPPORTED_SUFFIXES = (".jsonl", ".csv", ".parquet")
MAX_LINE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Sample:
    """One dataset row: a prompt string, or chat messages, or both."""

    index: int
    prompt: str | None
    messages: tuple[dict[str, Any], ...] | None = None
    #: the row's reference answer (`dataset.answer_column`), None when the dataset has none
    answer: str | None = None

    @property
    def text(self) -> str:
        """The prompt as plain text (messages joined) — for token estimates and prefix probes."""
        if self.prompt is not None:
            return self.prompt
        return "\n".join(str(m.get("content", "")) for m in self.messages or ())

    def salted(self, prefix: str) -> Sample:
        """The sample with `prefix + " "` in front of its prompt text.

        The prompt string gets it, and so does the first user message (the first message when
        there is none): string content, or the first text part of a list of parts (a text part
        is inserted when there is none). Completions and the JSON template send the prompt text,
        so the prefix lands inside `{prompt}`; chat sends the messages, leaving a system prompt
        as it is. Nothing is changed in place.

        Why a short prefix leaves the workload's cost about unchanged: it adds a few prompt
        tokens to every query of both phases alike, and the audit scores the ratio of the phases,
        not either one's absolute cost. At the front it makes the whole prompt new to any
        exact-match or prefix cache filled before the run, while two queries with the same
        sample and prefix stay byte-identical (the audit sample still repeats exactly).
        """
        lead = prefix + " "
        prompt = lead + self.prompt if self.prompt is not None else None
        messages = _salted_messages(self.messages, lead) if self.messages is not None else None
        return Sample(self.index, prompt, messages, self.answer)


def _salted_messages(messages: tuple[dict[str, Any], ...], lead: str) -> tuple[dict[str, Any], ...]:
    """`messages` with `lead` in front of the first user message's text (copies, not edits)."""
    if not messages:
        return messages
    roles = [m.get("role") for m in messages]
    at = roles.index("user") if "user" in roles else 0
    target = dict(messages[at])
    content = target.get("content")
    if isinstance(content, str):
        target["content"] = lead + content
    elif isinstance(content, list):
        parts = list(content)
        for i, part in enumerate(parts):
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts[i] = {**part, "text": lead + part["text"]}
                break
        else:
            parts.insert(0, {"type": "text", "text": lead.rstrip()})
        target["content"] = parts
    else:
        # no text to prefix: the salt must still land somewhere, or the prompt stays cacheable
        target["content"] = lead.rstrip()
    return (*messages[:at], target, *messages[at + 1 :])


@dataclass(frozen=True)
class Dataset:
    """The loaded samples, in file order (sample_index addresses these rows)."""

    path: str
    samples: tuple[Sample, ...]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]

    def prompt_lengths(self) -> list[int]:
        """Whitespace word counts per row: a tokenizer-free proxy for prompt cost."""
        return [len(s.text.split()) for s in self.samples]


def resolve_path(path: str | Path | None) -> Path:
    """Resolve a data path the same way under JupyterLab, papermill, nbval and the CLI.

    None is the dataset shipped with auditkit. Absolute paths stay; relative paths are tried
    against the working directory, then, for a shipped file's name (`prompts.jsonl`, or the
    repository spelling `data/prompts.jsonl`), the package's datasets folder: nbval starts
    kernels in notebooks/, papermill in the caller's directory, a wheel has no repository.
    """
    if path is None:
        return default_dataset()
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    if p.parent in (Path(), Path("data")):
        shipped = datasets_dir() / p.name
        if shipped.exists():
            return shipped
    return p


def load_dataset(cfg: DatasetConfig) -> Dataset:
    """Load and check the dataset named by cfg; InputError names file (and line) on failure."""
    path = resolve_path(cfg.path)
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"{cfg.path or path}: unsupported dataset format {path.suffix or '(no extension)'!r}; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not path.is_file():
        raise InputError(f"{cfg.path or path}: dataset file not found (looked in {Path.cwd()})")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = _read_jsonl(path)
        frame = pd.DataFrame(rows)
    elif suffix == ".csv":
        frame = _read_csv(path)
    else:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:
            raise InputError(
                f"{path}: not a readable Parquet file ({type(exc).__name__})"
            ) from None
    if len(frame) == 0:
        raise InputError(f"{path}: dataset is empty; it needs at least one row")
    return Dataset(str(path), _samples_from_frame(frame, cfg, path))


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(
                    f"{path}:{lineno}: line is {len(raw)} bytes, over the {MAX_LINE_BYTES} limit"
                )
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{path}:{lineno}: not valid UTF-8") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise InputError(f"{path}:{lineno}: each line must be a JSON object")
            rows.append(obj)
    return rows


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, encoding="utf-8", dtype=str, keep_default_na=False)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not valid UTF-8") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: dataset is empty; it needs a header and rows") from None
    except pd.errors.ParserError as exc:
        raise InputError(f"{path}: malformed CSV ({' '.join(str(exc).split())})") from None


def _samples_from_frame(frame: pd.DataFrame, cfg: DatasetConfig, path: Path) -> tuple[Sample, ...]:
    has_prompt = cfg.prompt_column in frame.columns
    has_messages = cfg.messages_column in frame.columns
    if not has_prompt and not has_messages:
        cols = ", ".join(map(str, frame.columns[:8]))
        raise InputError(
            f"{path}: no {cfg.prompt_column!r} or {cfg.messages_column!r} column (found: {cols}); "
            "set dataset.prompt_column to the column holding the prompt"
        )
    if cfg.answer_column is not None and cfg.answer_column not in frame.columns:
        raise InputError(f"{path}: no {cfg.answer_column!r} column (dataset.answer_column)")
    answers = _answers(frame, cfg.answer_column)
    samples: list[Sample] = []
    prompts = frame[cfg.prompt_column].tolist() if has_prompt else [None] * len(frame)
    messages = frame[cfg.messages_column].tolist() if has_messages else [None] * len(frame)
    for i, (prompt, msgs) in enumerate(zip(prompts, messages, strict=True)):
        prompt_value = prompt if isinstance(prompt, str) and prompt != "" else None
        msgs_value = _as_messages(msgs, path, i)
        if prompt_value is None and msgs_value is None:
            raise InputError(f"{path}: row {i + 1} has an empty prompt")
        samples.append(Sample(i, prompt_value, msgs_value, answers[i]))
    return tuple(samples)


def _answers(frame: pd.DataFrame, column: str | None) -> list[str | None]:
    """Each row's reference answer as text; None without the column or for an empty cell
    (JSON numbers count: `42` is the answer "42")."""
    if column is None:
        return [None] * len(frame)
    out: list[str | None] = []
    for value in frame[column].tolist():
        missing = value is None or (isinstance(value, float) and value != value) or value == ""
        out.append(None if missing else str(value))
    return out


def _as_messages(value: Any, path: Path, row: int) -> tuple[dict[str, Any], ...] | None:
    if value is None or (isinstance(value, float) and value != value) or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise InputError(f"{path}: row {row + 1}: messages is not valid JSON") from None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise InputError(f"{path}: row {row + 1}: messages must be a list of {{role, content}}")
    return tuple(value)


OrderKind = Literal[
    "without_replacement", "with_replacement", "single", "block", "salted", "interleaved"
]


@dataclass(frozen=True)
class SampleOrder:
    """Which dataset rows a phase issues, in what order (declarative; see `indices`)."""

    kind: OrderKind
    seed: int = 0
    index: int = 0
    block: int = 1
    offset: int = 0
    #: rows a without-replacement order never issues (the audit sample, in reference blocks
    #: that follow an audit block: a cache filled by the audit phase would answer them)
    exclude: tuple[int, ...] = ()

    @classmethod
    def without_replacement(cls, seed: int) -> SampleOrder:
        return cls("without_replacement", seed=seed)

    @classmethod
    def with_replacement(cls, seed: int) -> SampleOrder:
        return cls("with_replacement", seed=seed)

    @classmethod
    def single(cls, index: int) -> SampleOrder:
        return cls("single", index=index)

    @classmethod
    def salted(cls, seed: int) -> SampleOrder:
        """Seeded rows, each sent with a random prefix (warm-up that cannot prime a cache)."""
        return cls("salted", seed=seed)

    def skip(self, offset: int) -> SampleOrder:
        """The same order, starting `offset` rows later (the second reference block)."""
        return dataclasses.replace(self, offset=self.offset + offset)

    def excluding(self, rows: Iterable[int]) -> SampleOrder:
        """The same order without these rows."""
        return dataclasses.replace(self, exclude=tuple(sorted({*self.exclude, *rows})))

    @classmethod
    def interleaved(cls, seed: int, index: int) -> SampleOrder:
        """Fresh rows and row `index` by turns (fresh, index, fresh, index, ...). The fresh rows
        are the seeded permutation of `without_replacement(seed)` read from its end, so they
        are the last rows that order would issue (exclude `index` with `excluding`)."""
        return cls("interleaved", seed=seed, index=index)

    @classmethod
    def repeated_block(cls, index: int, block: int) -> SampleOrder:
        """The rows index, index+1, …, index+block-1 repeated (multi-stream audit phase)."""
        return cls("block", index=index, block=block)

    def describe(self) -> str:
        skip = f", offset={self.offset}" if self.offset else ""
        if self.exclude:
            skip += f", excluding={list(self.exclude)}"
        if self.kind == "single":
            return f"single(index={self.index})"
        if self.kind == "block":
            return f"block(index={self.index}, size={self.block})"
        if self.kind == "interleaved":
            return f"interleaved(seed={self.seed}, index={self.index}{skip})"
        return f"{self.kind}(seed={self.seed}{skip})"

    def indices(self, n: int, dataset_size: int) -> list[int]:
        """The first n dataset rows this order issues."""
        return list(itertools.islice(self.stream(dataset_size), n))

    def stream(self, dataset_size: int) -> Iterator[int]:
        """The rows this order issues, without end (a min_duration phase may outrun `samples`).

        without_replacement continues with fresh permutations once the dataset is used up, so
        samples repeat from then on; the phase summary reports that (a cache could serve them).
        """
        if self.offset:
            yield from itertools.islice(self._rows(dataset_size), self.offset, None)
        else:
            yield from self._rows(dataset_size)

    def _rows(self, dataset_size: int) -> Iterator[int]:
        if self.kind == "single":
            yield from itertools.repeat(self.index)
        elif self.kind == "block":
            for i in itertools.count():
                yield (self.index + i % self.block) % dataset_size
        elif self.kind == "interleaved":
            rows = list(range(dataset_size))
            random.Random(self.seed).shuffle(rows)
            fresh = [r for r in reversed(rows) if r not in set(self.exclude)] or [self.index]
            for i in itertools.count():
                yield fresh[i % len(fresh)]
                yield self.index
        else:
            rng = random.Random(self.seed)
            if self.kind in ("with_replacement", "salted"):
                while True:
                    yield rng.randrange(dataset_size)
            # filtered after the shuffle: the order is a subsequence of the unexcluded one, so
            # `skip(n)` past rows issued by an unexcluded block never issues them again
            excluded = set(self.exclude)
            rows = list(range(dataset_size))
            while len(excluded) < dataset_size:
                rng.shuffle(rows)
                yield from [r for r in rows if r not in excluded]


#: the words a synthesised control prompt is drawn from: common English words, each one token
#: in the usual BPE vocabularies (with its leading space), so a prompt of N of them is about N
#: tokens on a real server and exactly N on the mock (which counts whitespace words)
CONTROL_WORDS: tuple[str, ...] = tuple(
    """
    time year people way day man thing woman life child world school state family student
    group country problem hand part place case week company system program question work
    government number night point home water room mother area money story fact month lot right
    study book eye job word business issue side kind head house service friend father power
    hour game line end member law car city name president team minute idea kid body
    information back parent face others level office door health person art war history party
    result change morning reason research girl guy moment air teacher force education foot boy
    age policy music market sense nation plan college interest death experience effect class
    control care field development role effort rate heart drug show leader light voice wife
    police mind price report decision son view relationship town road arm difference value
    building action model season society tax director position player record paper space
    ground form event official matter center couple site project activity star table need
    court oil situation cost industry figure street image phone data picture practice piece
    land product doctor wall patient worker news test movie north love support technology step
    baby computer type attention film tree source window
    """.split()  # noqa: SIM905 (a word list reads best as text)
)


def synthetic_prompt(key: str, words: int) -> str:
    """A prompt of `words` words drawn at random (seeded by `key`) from CONTROL_WORDS: a
    prompt no one can have sent before this run (the key holds the run's nonce), with no tag
    to strip and no words of a dataset prompt in their order. Pure: the same key, the same
    prompt."""
    rng = random.Random(hashlib.sha256(key.encode()).digest())
    return " ".join(rng.choices(CONTROL_WORDS, k=max(1, words)))


def median_cost_index(dataset: Dataset) -> int:
    """The row whose prompt length is closest to the dataset median (ties → lowest index)."""
    lengths = dataset.prompt_lengths()
    ordered = sorted(lengths)
    median = ordered[len(ordered) // 2]
    return min(range(len(lengths)), key=lambda i: (abs(lengths[i] - median), i))

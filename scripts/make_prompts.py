"""Generate the shipped prompt dataset, ``data/prompts.jsonl``, deterministically.

The dataset feeds TEST04-style audits (does an inference endpoint cache results?). The
reference phase sends many *distinct* rows; the audit phase sends one row, dataset row 3
(0-based), over and over. A server that caches answers serves the repeated row much faster,
and the audit flags it when the audit phase is clearly faster than the reference phase.

That comparison is only fair if row 3 costs about what any other row costs. If row 3 were
much shorter than a typical row, an honest server would look "faster" on the audit phase and
fail the audit; if it were much longer, a caching server could hide. So every prompt is built
to a word budget (whitespace words: the same tokenizer-free cost proxy as
``auditkit.data.Dataset.prompt_lengths``):

* every row is within +/-10% of the median word count (targets are drawn from 90..102 words,
  so the median sits near 96), and
* row 3 is pinned to exactly 96 words, within +/-3% of the median.

Prompts are padded with generated context sentences of an exact length, so the budget is met
without truncating a sentence. Two more properties keep the reference phase honest: every
prompt text is distinct, and no two prompts share their first 8 words, so an exact-match or
prefix (KV) cache cannot accidentally hit between distinct rows.

The text comes from templates and word lists across ten task categories (summarize, question
answering, translate, code, sentiment, entity extraction, style rewrite, math word problem,
email drafting, topic classification), drawn with ``random.Random(20261128)``. No network, no
third-party packages: running the script twice yields byte-identical output, and ``--check``
lets CI verify that the committed file matches the generator.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SEED = 20261128
DEFAULT_ROWS = 1024
TARGET_WORDS = 96  # median aim; row AUDIT_ROW is built to exactly this many words
TARGET_SPREAD = 6  # other rows aim at TARGET_WORDS +/- TARGET_SPREAD (+/-6.25%)
AUDIT_ROW = 3  # the row TEST04's audit phase repeats
BAND = 0.10  # every row within +/-10% of the median
AUDIT_BAND = 0.03  # row AUDIT_ROW within +/-3% of the median
PREFIX_WORDS = 8  # no two rows share their first PREFIX_WORDS words
MIN_SENTENCE = 6  # generated context sentences are MIN_SENTENCE..MAX_SENTENCE words
MAX_SENTENCE = 18
MAX_ATTEMPTS = 500  # per row, before giving up on a distinct prompt

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "data" / "prompts.jsonl"
CONTEXT = "<<CONTEXT>>"  # where generated context sentences go in a prompt template

# --------------------------------------------------------------------------- word lists

TOPICS: tuple[tuple[str, str], ...] = (
    ("urban beekeeping", "environment"),
    ("coastal erosion", "environment"),
    ("river cleanup efforts", "environment"),
    ("community solar gardens", "environment"),
    ("wildfire prevention", "environment"),
    ("plastic recycling", "environment"),
    ("wetland restoration", "environment"),
    ("air quality monitoring", "environment"),
    ("open source software", "technology"),
    ("battery storage", "technology"),
    ("rural broadband", "technology"),
    ("data center cooling", "technology"),
    ("password managers", "technology"),
    ("satellite internet", "technology"),
    ("warehouse robotics", "technology"),
    ("hospital staffing", "health"),
    ("childhood vaccination", "health"),
    ("telemedicine visits", "health"),
    ("sleep research", "health"),
    ("mental health apps", "health"),
    ("blood donation drives", "health"),
    ("small business loans", "finance"),
    ("pension reform", "finance"),
    ("housing prices", "finance"),
    ("credit card fees", "finance"),
    ("microfinance", "finance"),
    ("municipal bonds", "finance"),
    ("grocery inflation", "finance"),
    ("adult literacy classes", "education"),
    ("teacher shortages", "education"),
    ("school lunch programs", "education"),
    ("online degree programs", "education"),
    ("library funding", "education"),
    ("coding bootcamps", "education"),
    ("electric scooters", "transport"),
    ("bike lane expansion", "transport"),
    ("night bus routes", "transport"),
    ("high speed rail", "transport"),
    ("airport noise", "transport"),
    ("port congestion", "transport"),
    ("car sharing", "transport"),
    ("youth soccer leagues", "sports"),
    ("marathon training", "sports"),
    ("stadium renovations", "sports"),
    ("esports tournaments", "sports"),
    ("swimming lessons", "sports"),
    ("amateur cycling clubs", "sports"),
    ("local museums", "culture"),
    ("street art festivals", "culture"),
    ("independent bookstores", "culture"),
    ("film preservation", "culture"),
    ("community theater", "culture"),
    ("heritage buildings", "culture"),
    ("vertical farming", "agriculture"),
    ("drought resistant crops", "agriculture"),
    ("dairy cooperatives", "agriculture"),
    ("organic certification", "agriculture"),
    ("farmers markets", "agriculture"),
    ("irrigation upgrades", "agriculture"),
    ("zoning reform", "politics"),
    ("voter registration", "politics"),
    ("public records requests", "politics"),
    ("noise ordinances", "politics"),
    ("minimum wage rules", "politics"),
    ("short term rentals", "politics"),
)
LABELS: tuple[str, ...] = tuple(sorted({domain for _, domain in TOPICS}))

FIRST_NAMES = (
    "Maria", "James", "Aisha", "Kenji", "Sofia", "Daniel", "Priya", "Lucas", "Fatima", "Noah",
    "Elena", "Omar", "Hannah", "Mateo", "Grace", "Ravi", "Chloe", "Tomasz", "Amara", "Jonas",
    "Leila", "Samuel", "Yuki", "Carmen", "Felix", "Zainab", "Oliver", "Ingrid", "Diego", "Mei",
)  # fmt: skip
LAST_NAMES = (
    "Okafor", "Lindqvist", "Tanaka", "Moreau", "Haddad", "Kowalski", "Mensah", "Silva",
    "Novak", "Chen", "Ibrahim", "Fischer", "Patel", "Rossi", "Nakamura", "Osei", "Garcia",
    "Murphy", "Kaur", "Dubois", "Petrov", "Andersen", "Mwangi", "Costa", "Schmidt", "Reyes",
    "Yilmaz", "Olsen", "Banerjee", "Walsh",
)  # fmt: skip
ORGS = (
    "Northfield Water Authority", "Harbor Medical Center", "Greenway Transit Agency",
    "Brightline Analytics Group", "Cedar Valley Credit Union", "Riverside School District",
    "Summit Energy Cooperative", "Oakmont Public Library", "Meridian Research Institute",
    "Bluewater Port Authority", "Pinecrest Farmers Union", "Lakeshore Arts Council",
    "Ironbridge Freight Office", "Silverleaf Insurance Fund", "Eastgate Housing Trust",
    "Westbrook Sports Club", "Kestrel Robotics Lab", "Maple Hill Clinic", "Northstar Savings Bank",
    "Granite County Council",
)  # fmt: skip
CITIES = (
    "Lisbon", "Nairobi", "Osaka", "Toronto", "Denver", "Lyon", "Accra", "Melbourne", "Bogota",
    "Krakow", "Pune", "Tallinn", "Cork", "Porto", "Austin", "Leeds", "Valencia", "Halifax",
    "Wellington", "Cape Town", "Buenos Aires", "Kuala Lumpur", "San Diego", "Rotterdam",
    "Gothenburg",
)  # fmt: skip
ROLES = (
    "a city planner", "a nurse", "a school principal", "a data analyst", "a farmer",
    "a software engineer", "an economist", "a park ranger", "a bus driver", "a museum curator",
    "an accountant", "a librarian",
)  # fmt: skip
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
DURATIONS = ("three", "six", "nine", "twelve")

AUDIENCES = (
    "busy executives", "high school students", "new team members", "local residents",
    "a general audience", "policy makers", "first-year students", "nontechnical readers",
    "journalists", "investors",
)  # fmt: skip
SENTENCE_COUNTS = ("two", "three", "four")
SOURCES = (
    "news", "press release", "blog", "radio transcript", "newsletter", "council minutes",
    "magazine", "local paper",
)  # fmt: skip
LANGUAGES = (
    "Spanish", "French", "German", "Portuguese", "Italian", "Japanese", "Korean", "Dutch",
    "Polish", "Turkish", "Swahili", "Hindi", "Indonesian", "Vietnamese", "Swedish",
)  # fmt: skip
REGISTERS = ("formal", "neutral", "friendly", "plain", "concise")
DOCS = (
    "announcement", "paragraph", "memo", "notice", "newsletter item", "press note",
    "status update", "briefing",
)  # fmt: skip
STYLES = (
    "a children's storybook", "a formal legal notice", "a sports commentator",
    "a friendly text message", "a Victorian novel", "a tech startup pitch", "a weather forecast",
    "a museum placard", "a pirate captain", "a nature documentary narrator",
    "a corporate press release", "a plain-language leaflet",
)  # fmt: skip
PRODUCTS = (
    "wireless earbuds", "standing desk", "coffee grinder", "rice cooker", "hiking backpack",
    "e-reader", "robot vacuum", "air fryer", "yoga mat", "phone case", "electric kettle",
    "office chair", "smart thermostat", "mechanical keyboard", "camping tent", "blender",
    "running shoes", "desk lamp", "portable charger", "water bottle",
)  # fmt: skip
SITES = (
    "an online store", "a tech blog", "a shopping app", "a user forum", "a retailer website",
    "a comparison site",
)  # fmt: skip
CODE_LANGS = ("Python", "TypeScript", "Go", "Rust", "Java", "Kotlin", "C#", "Ruby")
SNAKE_CASE_LANGS = frozenset({"Python", "Rust", "Ruby"})
CODE_ITEMS = (
    "invoice lines", "sensor readings", "booking requests", "survey answers", "shipment events",
    "log entries", "payroll records", "ticket updates", "inventory counts", "route segments",
)  # fmt: skip
CODE_TASKS: tuple[tuple[str, str], ...] = (
    ("group", "groups a list of {items} by day and returns a mapping from date to list"),
    ("validate", "checks a list of {items} and returns the ones that fail validation"),
    ("merge", "merges two sorted lists of {items} into one sorted list without duplicates"),
    ("summarize", "computes the count, mean and maximum of a list of {items}"),
    ("deduplicate", "removes repeated {items} while keeping the first occurrence of each"),
    ("normalize", "normalizes the text fields of a list of {items} to lowercase"),
    ("rank", "returns the top ten {items} ordered by their numeric score"),
    ("filter", "keeps only the {items} recorded within a given date range"),
    ("parse", "parses a CSV string of {items} into a list of typed records"),
    ("aggregate", "totals the quantities in a list of {items} per category"),
)
MATH_SHOPS: tuple[tuple[str, str], ...] = (
    ("bakery", "loaves"), ("bookshop", "notebooks"), ("florist", "bouquets"),
    ("hardware store", "lamps"), ("food truck", "sandwiches"), ("bike shop", "helmets"),
    ("candle shop", "candles"), ("pet store", "bags of feed"),
)  # fmt: skip
MATH_JOBS = ("paint a fence", "sort the mail", "clean the gym", "assemble a bookshelf")
TONES = ("friendly", "formal", "apologetic", "upbeat", "concise", "diplomatic", "warm")
TEAMS = (
    "operations", "finance", "customer support", "facilities", "research", "marketing",
    "logistics", "outreach",
)  # fmt: skip


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"


def _date(rng: random.Random) -> str:
    return f"{rng.choice(MONTHS)} {rng.randint(1, 28)}"


FILLERS: Mapping[str, Callable[[random.Random], str]] = {
    "name": _name,
    "org": lambda rng: rng.choice(ORGS),
    "city": lambda rng: rng.choice(CITIES),
    "role": lambda rng: rng.choice(ROLES),
    "month": lambda rng: rng.choice(MONTHS),
    "date": _date,
    "duration": lambda rng: rng.choice(DURATIONS),
}
_SLOT = re.compile(r"\{(\w+)\}")


def fill(rng: random.Random, template: str, slots: Mapping[str, str]) -> str:
    """Replace each ``{slot}``: from ``slots`` if given there, else a fresh random filler."""

    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        return slots[key] if key in slots else FILLERS[key](rng)

    return _SLOT.sub(sub, template)


def words(text: str) -> int:
    """Whitespace word count: the cost proxy this dataset is balanced on."""
    return len(text.split())


def article(noun: str) -> str:
    return f"{'an' if noun[0].lower() in 'aeiou' else 'a'} {noun}"


# --------------------------------------------------------------------------- sentences


@dataclass(frozen=True)
class Pool:
    """Phrase templates for one kind of context sentence: subject, verb, object, tail.

    A verb written ``"has noted|have noted"`` takes its second form after a plural subject.
    """

    subjects: tuple[str, ...]
    plural_subjects: tuple[str, ...]
    verbs: tuple[str, ...]
    objects: tuple[str, ...]
    tails: tuple[str, ...]


NEWS = Pool(
    subjects=(
        "{name}", "{name}, {role},", "The {org}", "A spokesperson for the {org}",
        "The city council of {city}", "{name} of the {org}", "The director of the {org}",
    ),
    plural_subjects=(
        "Officials at the {org}", "Local residents", "Researchers in {city}",
        "Several volunteers", "Two independent analysts", "Board members of the {org}",
    ),
    verbs=(
        "reported|reported", "described|described", "questioned|questioned",
        "discussed|discussed", "highlighted|highlighted", "commented on|commented on",
        "pointed to|pointed to", "has criticized|have criticized",
        "recently reviewed|recently reviewed", "was asked about|were asked about",
        "continues to study|continue to study", "has been tracking|have been tracking",
    ),
    objects=(
        "the {topic} program", "rising costs linked to {topic}", "new guidelines on {topic}",
        "the latest survey on {topic}", "a pilot project", "the proposed budget",
        "delays in the rollout", "public interest in {topic}", "a shortage of trained staff",
        "the results of a {duration}-month trial", "funding for {topic}",
        "a partnership with the {org}", "complaints about {topic}",
    ),
    tails=(
        "", "on {date}", "in {city}", "last {month}", "earlier this year",
        "during a press briefing on {date}", "after months of debate",
        "according to a statement released on {date}", "at a meeting in {city} on {date}",
        "despite concerns from several groups", "ahead of the vote", "in a report to the {org}",
    ),
)  # fmt: skip
REVIEW = Pool(
    subjects=(
        "The {product}", "This {product}", "Overall the {product}", "My new {product}",
        "The {product} I ordered", "For me, the {product}", "Setup", "The whole experience",
    ),
    plural_subjects=(),
    verbs=("was", "felt", "seemed", "turned out to be", "is honestly", "has been"),
    objects=(
        "great", "surprisingly sturdy", "a little disappointing", "far better than expected",
        "noisier than I hoped", "easy to use", "hard to figure out", "worth every penny",
        "frustrating at times", "exactly as described", "cheaper than most alternatives",
        "a real step down", "solid but unremarkable",
    ),
    tails=(
        "", "after two weeks of daily use", "for the price", "compared to my old one",
        "once I got used to it", "according to my whole family", "during our trip to {city}",
        "since I bought it on {date}", "in the first month", "right out of the box",
        "even after the latest update", "if I am being honest",
    ),
)  # fmt: skip
CODE = Pool(
    subjects=(
        "The function", "Your implementation", "The code", "Your solution", "The final version",
        "Every code path", "The main loop",
    ),
    plural_subjects=(),
    verbs=("should", "must"),
    objects=(
        "handle empty input", "reject records with missing fields", "report duplicate identifiers",
        "convert timestamps in different time zones to UTC", "preserve the original input order",
        "treat negative quantities as errors", "log malformed {items}", "skip blank lines",
        "accept very large batches of {items}", "ignore unexpected extra columns",
    ),
    tails=(
        "", "without raising an exception", "in linear time", "without using global state",
        "and document that behavior in a comment", "using only the standard library",
        "even when the input contains thousands of rows", "for inputs of any size",
        "with a clear error message", "as described in the ticket",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Sentence:
    subject: str
    verb: str
    obj: str
    tail: str
    singular_verb: str  # the verb as it reads after "who" (for generated questions)

    @property
    def text(self) -> str:
        return " ".join(p for p in (self.subject, self.verb, self.obj, self.tail) if p) + "."


class _Retry(Exception):
    """This attempt cannot meet its word budget; the caller draws a fresh attempt."""


def make_sentence(rng: random.Random, pool: Pool, n: int, slots: Mapping[str, str]) -> Sentence:
    """One sentence of exactly ``n`` words from ``pool``."""
    subjects = [(s, False) for s in pool.subjects] + [(s, True) for s in pool.plural_subjects]
    for _ in range(100):
        subject_template, plural = rng.choice(subjects)
        subject = fill(rng, subject_template, slots)
        singular, _, plural_form = rng.choice(pool.verbs).partition("|")
        verb = plural_form if plural and plural_form else singular
        obj = fill(rng, rng.choice(pool.objects), slots)
        need = n - words(subject) - words(verb) - words(obj)
        if need < 0:
            continue
        tails = [fill(rng, t, slots) for t in pool.tails]
        fits = [t for t in tails if words(t) == need]
        if fits:
            return Sentence(subject, verb, obj, rng.choice(fits), singular)
    raise _Retry


def split_budget(rng: random.Random, budget: int) -> list[int]:
    """Split ``budget`` words into sentence lengths, each MIN_SENTENCE..MAX_SENTENCE."""
    if budget == 0:
        return []
    if budget < MIN_SENTENCE:
        raise _Retry
    sizes: list[int] = []
    while budget > MAX_SENTENCE:
        hi = min(MAX_SENTENCE, budget - MIN_SENTENCE)
        size = rng.randint(min(9, hi), hi)
        sizes.append(size)
        budget -= size
    sizes.append(budget)
    rng.shuffle(sizes)
    return sizes


def context(
    rng: random.Random, pool: Pool, budget: int, slots: Mapping[str, str]
) -> list[Sentence]:
    """Context sentences totalling exactly ``budget`` words."""
    return [make_sentence(rng, pool, n, slots) for n in split_budget(rng, budget)]


def fit(
    rng: random.Random, template: str, pool: Pool, target: int, slots: Mapping[str, str]
) -> str:
    """Fill ``template``'s CONTEXT marker with sentences so the prompt has ``target`` words."""
    budget = target - words(template.replace(CONTEXT, ""))
    text = " ".join(s.text for s in context(rng, pool, budget, slots))
    return template.replace(CONTEXT, text)


# --------------------------------------------------------------------------- categories


def _topic(rng: random.Random) -> tuple[str, str]:
    return rng.choice(TOPICS)


def build_summarize(rng: random.Random, target: int) -> str:
    topic, _ = _topic(rng)
    aud, k = rng.choice(AUDIENCES), rng.choice(SENTENCE_COUNTS)
    head = rng.choice(
        (
            f"For {aud}, summarize the following paragraph about {topic} in {k} sentences.",
            f"Summarize this paragraph on {topic} in {k} sentences that {aud} would understand.",
            f"Write a {k}-sentence summary for {aud} of the passage below about {topic}.",
            f"Give {aud} a {k}-sentence summary of the following paragraph about {topic}.",
        )
    )
    return fit(rng, f"{head}\n\nParagraph: {CONTEXT}", NEWS, target, {"topic": topic})


def build_qa(rng: random.Random, target: int) -> str:
    topic, _ = _topic(rng)
    source = rng.choice(SOURCES)
    head = rng.choice(
        (
            f"Read this {source} excerpt about {topic} and answer the question using only it.",
            f"Using only the {source} context about {topic} below, answer the question.",
            f"Based only on the {source} passage about {topic} below, answer briefly.",
        )
    )
    slots = {"topic": topic}
    key = make_sentence(rng, NEWS, rng.randint(10, 14), slots)
    question = f"According to the context, who {key.singular_verb} {key.obj}?"
    template = f"{head}\n\nContext: {CONTEXT}\n\nQuestion: {question}"
    budget = target - words(template.replace(CONTEXT, "")) - words(key.text)
    sentences = context(rng, NEWS, budget, slots)
    if any((s.singular_verb, s.obj) == (key.singular_verb, key.obj) for s in sentences):
        raise _Retry  # the question must have exactly one answer in the context
    sentences.insert(rng.randint(0, len(sentences)), key)
    return template.replace(CONTEXT, " ".join(s.text for s in sentences))


def build_translate(rng: random.Random, target: int) -> str:
    topic, _ = _topic(rng)
    reg, doc, lang = rng.choice(REGISTERS), rng.choice(DOCS), rng.choice(LANGUAGES)
    head = rng.choice(
        (
            f"Translate this {reg} {doc} about {topic} from English into {lang}, keeping names "
            "and numbers unchanged.",
            f"Please translate the following {doc} about {topic} into {lang}, using a {reg} tone.",
            f"Produce {article(reg)} {lang} translation of the {doc} below about {topic}.",
        )
    )
    return fit(rng, f"{head}\n\nText: {CONTEXT}", NEWS, target, {"topic": topic})


def build_code(rng: random.Random, target: int) -> str:
    lang = rng.choice(CODE_LANGS)
    verb, desc = rng.choice(CODE_TASKS)
    items = rng.choice(CODE_ITEMS)
    parts = [verb, *items.split()]
    if lang in SNAKE_CASE_LANGS:
        fname = "_".join(parts)
    else:
        fname = parts[0] + "".join(p.capitalize() for p in parts[1:])
    task = desc.format(items=items)
    head = rng.choice(
        (
            f"Write a {lang} function named {fname} that {task}.",
            f"In {lang}, implement {fname}, a function that {task}.",
            f"Implement a {lang} function called {fname} which {task}.",
        )
    )
    template = (
        f"{head}\n\nRequirements: {CONTEXT}\n\nInclude a short docstring and two example calls."
    )
    return fit(rng, template, CODE, target, {"items": items})


def build_sentiment(rng: random.Random, target: int) -> str:
    product, site = rng.choice(PRODUCTS), rng.choice(SITES)
    reviewer, stars = rng.choice(FIRST_NAMES), rng.randint(1, 5)
    head = rng.choice(
        (
            f"Classify the sentiment of {reviewer}'s {product} review from {site} as positive, "
            "negative, or mixed, and quote the phrase that decided it.",
            f"{reviewer} gave the {product} {stars} out of 5 stars on {site}. Is the review "
            "below positive, negative, or mixed? Give one label and a one-line reason.",
            f"Label the overall tone of this {stars}-star {product} review from {site} as "
            "positive, negative, or mixed.",
            f"This {product} review from {site} needs a sentiment label: positive, negative, "
            "or mixed.",
        )
    )
    return fit(rng, f"{head}\n\nReview: {CONTEXT}", REVIEW, target, {"product": product})


def build_entities(rng: random.Random, target: int) -> str:
    topic, _ = _topic(rng)
    source = rng.choice(SOURCES)
    head = rng.choice(
        (
            f"From this {source} excerpt about {topic}, extract every person, organization, "
            "location, and date as a JSON object with one list per type.",
            f"Using the {source} text about {topic} below, list every person, organization, "
            "place, and date it names.",
            f"For this {source} passage on {topic}, identify all named entities grouped as "
            "people, organizations, locations, and dates.",
        )
    )
    return fit(rng, f"{head}\n\nText: {CONTEXT}", NEWS, target, {"topic": topic})


def build_rewrite(rng: random.Random, target: int) -> str:
    topic, _ = _topic(rng)
    doc, style = rng.choice(DOCS), rng.choice(STYLES)
    head = rng.choice(
        (
            f"Rewrite this {doc} about {topic} so it reads like {style}, keeping every fact.",
            f"Take the {doc} below on {topic} and rewrite it in the voice of {style}.",
            f"Restyle the following {doc} about {topic} in the manner of {style}, without "
            "adding new facts.",
        )
    )
    return fit(rng, f"{head}\n\nOriginal: {CONTEXT}", NEWS, target, {"topic": topic})


def _math_problem(rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        shop, item = rng.choice(MATH_SHOPS)
        price, mon, tue = rng.randint(2, 19), rng.randint(20, 90), rng.randint(20, 90)
        refund = rng.choice((5, 10, 15, 20, 25))
        return (
            f"A {shop} in {rng.choice(CITIES)} sells {item} for {price} dollars each. On Monday "
            f"it sold {mon} of them and on Tuesday it sold {tue}. If {refund} percent of "
            f"Tuesday's sales were refunded, how much revenue did the {shop} keep over the two "
            "days?"
        )
    if kind == 1:
        a, b = _name(rng), _name(rng)
        job = rng.choice(MATH_JOBS)
        ha, hb, times = rng.randint(2, 9), rng.randint(3, 12), rng.randint(2, 5)
        return (
            f"{a} can {job} in {ha} hours, while {b} needs {hb} hours for the same job. Working "
            f"together at those rates, how many hours will it take them to {job} {times} times?"
        )
    if kind == 2:
        c1, c2 = rng.sample(CITIES, 2)
        hour, dist = rng.randint(5, 11), rng.randrange(240, 900, 10)
        v1, v2 = rng.randrange(60, 140, 5), rng.randrange(60, 140, 5)
        return (
            f"A train leaves {c1} at {hour} o'clock traveling at {v1} kilometers per hour, and "
            f"a second train leaves {c2}, {dist} kilometers away, at the same time traveling "
            f"toward it at {v2} kilometers per hour. At what time will the two trains meet?"
        )
    name = _name(rng)
    start, pct = rng.randrange(50, 400, 10), rng.choice((5, 10, 15, 20))
    month = rng.choice(MONTHS[:6])
    return (
        f"{name} saved {start} dollars in {month} and increased the amount saved by {pct} "
        f"percent every month after that. How much had {name} saved in total after four months?"
    )


def build_math(rng: random.Random, target: int) -> str:
    problem = _math_problem(rng)
    template = (
        f"{problem}\n\nExtra details, which may or may not matter: {CONTEXT}\n\n"
        "Show each step and give the final answer on its own line."
    )
    topic, _ = _topic(rng)
    return fit(rng, template, NEWS, target, {"topic": topic})


def build_email(rng: random.Random, target: int) -> str:
    topic, _ = _topic(rng)
    tone, team, name = rng.choice(TONES), rng.choice(TEAMS), _name(rng)
    org, role = rng.choice(ORGS), rng.choice(ROLES)
    head = rng.choice(
        (
            f"Draft a short, {tone} email from {name} to the {team} team at {org} that "
            "responds to the notes below.",
            f"On behalf of {name}, write {article(tone)} reply to the {team} team about "
            f"{topic}, based on these notes.",
            f"As {name}, {role} at {org}, write {article(tone)} email about {topic} using the "
            "notes below.",
        )
    )
    template = (
        f"{head}\n\nNotes: {CONTEXT}\n\nKeep it under 150 words and end with a clear next step."
    )
    return fit(rng, template, NEWS, target, {"topic": topic})


def build_classify(rng: random.Random, target: int) -> str:
    topic, domain = _topic(rng)
    labels = [domain, *rng.sample([lb for lb in LABELS if lb != domain], 3)]
    rng.shuffle(labels)
    one, two, three, four = labels
    source = rng.choice(SOURCES)
    head = rng.choice(
        (
            f"Given the labels {one}, {two}, {three}, and {four}, pick the one that best fits "
            f"this {source} snippet.",
            f"Choose one topic label from {one}, {two}, {three}, or {four} for the {source} "
            "snippet below, and explain briefly.",
        )
    )
    return fit(rng, f"{head}\n\nSnippet: {CONTEXT}", NEWS, target, {"topic": topic})


BUILDERS: Mapping[str, Callable[[random.Random, int], str]] = {
    "summarize": build_summarize,
    "qa": build_qa,
    "translate": build_translate,
    "code": build_code,
    "sentiment": build_sentiment,
    "entities": build_entities,
    "rewrite": build_rewrite,
    "math": build_math,
    "email": build_email,
    "classify": build_classify,
}

# --------------------------------------------------------------------------- dataset


def prefix(prompt: str) -> str:
    return " ".join(prompt.split()[:PREFIX_WORDS])


def generate(rows: int) -> list[dict[str, str]]:
    """The dataset rows, in file order. Row i depends only on the seed and rows before it."""
    rng = random.Random(SEED)
    categories = list(BUILDERS)
    out: list[dict[str, str]] = []
    seen_prompts: set[str] = set()
    seen_prefixes: set[str] = set()
    block: list[str] = []
    for index in range(rows):
        if not block:  # balanced categories: each block of len(BUILDERS) rows has one of each
            block = categories.copy()
            rng.shuffle(block)
        category = block.pop()
        target = (
            TARGET_WORDS
            if index == AUDIT_ROW
            else rng.randint(TARGET_WORDS - TARGET_SPREAD, TARGET_WORDS + TARGET_SPREAD)
        )
        for _ in range(MAX_ATTEMPTS):
            try:
                prompt = BUILDERS[category](rng, target)
            except _Retry:
                continue
            if words(prompt) != target:  # a template too long for its budget
                continue
            if prompt in seen_prompts or prefix(prompt) in seen_prefixes:
                continue
            break
        else:
            raise RuntimeError(f"row {index}: no distinct {category} prompt in {MAX_ATTEMPTS}")
        seen_prompts.add(prompt)
        seen_prefixes.add(prefix(prompt))
        out.append({"id": f"p{index:04d}", "prompt": prompt, "category": category})
    validate(out)
    return out


def validate(rows: Sequence[Mapping[str, str]]) -> None:
    """Raise ValueError unless the rows meet the dataset's cost and distinctness contract."""
    prompts = [r["prompt"] for r in rows]
    if len(set(prompts)) != len(prompts):
        raise ValueError("duplicate prompts")
    if len({prefix(p) for p in prompts}) != len(prompts):
        raise ValueError(f"two prompts share their first {PREFIX_WORDS} words")
    counts = [words(p) for p in prompts]
    median = statistics.median(counts)
    lo, hi = median * (1 - BAND), median * (1 + BAND)
    bad = [i for i, c in enumerate(counts) if not lo <= c <= hi]
    if bad:
        raise ValueError(f"rows {bad[:5]} outside +/-{BAND:.0%} of median {median}")
    if len(counts) > AUDIT_ROW and abs(counts[AUDIT_ROW] - median) > AUDIT_BAND * median:
        raise ValueError(f"row {AUDIT_ROW} has {counts[AUDIT_ROW]} words, median {median}")


def render(rows: Sequence[Mapping[str, str]]) -> bytes:
    """JSONL bytes: one object per line, fixed key order, UTF-8, trailing newline."""
    lines = (json.dumps(dict(r), ensure_ascii=False) + "\n" for r in rows)
    return "".join(lines).encode("utf-8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(
            "Generate the prompt dataset used by TEST04 caching audits, deterministically "
            f"(seed {SEED}). Every row is within +/-{BAND:.0%} of the median word count and "
            f"row {AUDIT_ROW}, the row the audit phase repeats, within +/-{AUDIT_BAND:.0%}."
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="JSONL file to write or check (default: data/prompts.jsonl in the repository)",
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help=(
            f"number of rows to generate (default: {DEFAULT_ROWS}; audits want at least 512; "
            "the templates run out of distinct prompts above roughly 3000)"
        ),
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if --out differs from what would be generated, else 0",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out: Path = args.out
    rows_wanted: int = args.rows
    if rows_wanted < 1:
        parser.error("--rows must be at least 1")
    try:
        rows = generate(rows_wanted)
    except (RuntimeError, ValueError) as exc:
        print(f"make_prompts: cannot generate {rows_wanted} rows: {exc}", file=sys.stderr)
        return 2
    data = render(rows)
    if args.check:
        if not out.is_file():
            print(f"{out}: missing; run python scripts/make_prompts.py", file=sys.stderr)
            return 1
        if out.read_bytes() != data:
            print(f"{out}: out of date; run python scripts/make_prompts.py", file=sys.stderr)
            return 1
        print(f"{out}: up to date ({len(rows)} rows)")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    counts = [words(r["prompt"]) for r in rows]
    print(
        f"wrote {out}: {len(rows)} rows, median {statistics.median(counts)} words "
        f"(min {min(counts)}, max {max(counts)})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

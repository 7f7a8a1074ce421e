"""Recall of the scrubber on adversarial notes, per Safe Harbor category, and fail-closed.

The notes come from :mod:`tests.client.deid.adversarial` (built apart from the
scrubber: Faker locales, its own templates and Unicode variants). An
identifier counts as caught when none of its identifying tokens (letters or
digits, folded) is left in the scrubbed note. Every note that still holds
one must be flagged by the independent residual check, so that no file with
a known miss is ever written.
"""

from collections import Counter

import pandas as pd
import pyarrow as pa
import pytest

from hospfed.client.deid import deidentify, scan_residual_identifiers
from hospfed.client.deid.scan import scanner
from tests.client.deid.adversarial import (
    CATEGORIES,
    LOCALES,
    adversarial_export,
    kept_filler,
    leak_probes,
    notes,
    recall,
    seeded_faker,
    survived,
    tokens,
)
from tests.client.deid.exports import NOTES_SCHEMA, SECRETS

NOTES = 2000
TARGET = 0.995
PRECISION = 0.90
"""Share of clinical filler tokens kept (measured 0.92 at seed 0)."""


@pytest.fixture(scope="module")
def scrubbed():
    raw, notes = adversarial_export(NOTES, seed=0)
    NOTES_SCHEMA.validate(raw)
    frame, _ = deidentify(raw, NOTES_SCHEMA, SECRETS, k=1)
    texts = [None if pd.isna(v) else str(v) for v in frame["note"]]
    return raw, frame, notes, texts


@pytest.mark.parametrize("category", CATEGORIES)
def test_recall_per_category(scrubbed, category):
    _, _, notes, texts = scrubbed
    caught, planted = recall(notes, texts)[category]
    assert planted >= 200
    assert caught / planted >= TARGET, f"{category}: {caught}/{planted}"


def test_precision_on_clinical_filler(scrubbed):
    _, _, notes, texts = scrubbed
    kept = [kept_filler(n, t) for n, t in zip(notes, texts, strict=True)]
    share = sum(k for k, _ in kept) / sum(t for _, t in kept)
    assert share >= PRECISION


def test_every_note_with_a_miss_is_flagged(scrubbed):
    raw, frame, notes, texts = scrubbed
    missed = [
        row
        for row, (note, text) in enumerate(zip(notes, texts, strict=True))
        if survived(note, text)
    ]
    check = scanner()
    unflagged = [row for row in missed if check.free_text(texts[row] or "") is None]
    for row in list(unflagged):
        rows = frame.iloc[[row]]
        if scan_residual_identifiers(
            rows, NOTES_SCHEMA, raw_identifier_values=raw.iloc[[row]]
        ):
            unflagged.remove(row)
    assert not unflagged, f"{len(unflagged)} notes with a miss pass the check"


def _scrub(texts):
    from hospfed.client.deid import scrub_free_text

    return scrub_free_text(pa.array(texts))[0].to_pylist()


def test_the_residual_check_flags_an_identifier_left_whole():
    """Apart from the scrubber: every kind of identifier, if it were missed."""
    made, _ = notes(1000, seed=11)
    check = scanner()
    flagged: Counter[str] = Counter()
    planted: Counter[str] = Counter()
    for category, text in leak_probes(made, _scrub):
        planted[category] += 1
        flagged[category] += check.free_text(text) is not None
    assert sum(flagged.values()) / sum(planted.values()) >= TARGET
    for category in CATEGORIES:
        assert flagged[category] / planted[category] >= 0.98, category
    # and does not flag what the scrubber left when nothing was missed
    texts = _scrub([n.text for n in made])
    clean = [t for n, t in zip(made, texts, strict=True) if not survived(n, t)]
    alarms = [t for t in clean if t is not None and check.free_text(t)]
    assert len(alarms) <= 0.01 * len(clean)


def test_generator_is_seeded_and_records_exact_spans():
    _, first = adversarial_export(50, seed=7)
    _, again = adversarial_export(50, seed=7)
    assert [n.text for n in first] == [n.text for n in again]
    for note in first:
        for planted in note.planted:
            assert note.text[planted.start : planted.end] == planted.value
            assert planted.category in CATEGORIES
            assert planted.key


def test_an_unscrubbed_note_counts_as_missed():
    _, notes = adversarial_export(20, seed=3)
    for note in notes:
        assert survived(note, note.text) == note.planted


def test_spellings_found_by_the_generator_are_scrubbed():
    from hospfed.client.deid import scrub_free_text

    notes = [
        "Fax 660-3965 x73 today, then x2 daily.",  # "x2" has no leading number
        "plate 5WLL 467; MRN#7251 356.",
        "NOK: Cherry (brother). Furosemide 40 mg IV.",
        "from South Billtown; Cherry County resident.",
        "email gilles87 at dias dot com or sylvie @ pages . com",
        "Pt is a ninety-three-year-old widow.",
    ]
    scrubbed, _ = scrub_free_text(pa.array(notes))
    text = " ".join(scrubbed.to_pylist())
    for leaked in ("73", "467", "356", "Cherry", "Billtown", "dias", "pages", "ninety"):
        assert leaked not in text
    for kept in ("x2 daily", "Furosemide 40 mg IV"):
        assert kept in text


_CUES = ("lives in ", "born in ", "from ", "grew up in ", "native of ", "moved to ")
_PARTICLES = frozenset(("in", "de", "di", "da", "del", "der", "la", "le", "am", "an"))
_PARTICLES |= {"ob", "im", "sur", "en"}


@pytest.mark.parametrize("locale", LOCALES)
def test_a_place_after_a_residence_cue_goes_whole(locale):
    """Every locale's cities, even those made of safe words ("Aprica", "Acqui Terme")."""
    from hospfed.client.deid import scrub_free_text

    fake = seeded_faker(locale, 7)
    cities = sorted({fake.city() for _ in range(400)})
    planted = [
        (city, f"BP 120/80. {cue}{city}, seen today.")
        for cue in _CUES
        for city in cities
    ]
    out = scrub_free_text(pa.array([text for _, text in planted]))[0].to_pylist()
    check = scanner()
    left = []
    for (city, _), text in zip(planted, out, strict=True):
        words = {w for w in tokens(city) if len(w) > 1 and w not in _PARTICLES}
        if words & set(tokens(text)):
            left.append(text)
            assert check.free_text(text), f"a miss the check does not flag: {text!r}"
    assert len(left) <= 0.005 * len(planted), left[:5]


def test_the_notes_do_not_depend_on_string_hashing():
    """Faker builds some lists from sets: the notes must not change with the hash seed."""
    import subprocess
    import sys

    code = (
        "import hashlib; from tests.client.deid.adversarial import notes; "
        "made, _ = notes(2000, seed=0); "
        "print(hashlib.sha256('|'.join(n.text for n in made).encode()).hexdigest())"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            capture_output=True,
            text=True,
            check=True,
            cwd=__file__.rsplit("/tests/", 1)[0],
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(seen) == 1

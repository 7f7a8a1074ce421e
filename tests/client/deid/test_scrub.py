"""Tests of hospfed.client.deid.scrub: the allowlist scrub of kept free text."""

import pyarrow as pa
import pytest

from hospfed.client.deid import scrub_free_text
from hospfed.client.deid.scan import scanner


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("SSN 123-45-6789 on file", "[SSN]"),
        ("SSN 123456789 on file", "[SSN]"),
        ("call (555)123-4567 today", "[PHONE]"),
        ("call 555.123.4567x89 today", "[ID]"),
        ("call +1-555-123-4567 today", "[PHONE]"),
        ("mail jane.roe@example.com now", "[EMAIL]"),
        ("see https://example.org/x?id=1 now", "[URL]"),
        ("from 192.168.10.20 today", "[IP]"),
        ("MRN 00123456 noted", "[ID]"),
        ("plan HP0123456789 noted", "[PHONE]"),
        ("seen 2021-03-04 today", "[DATE]"),
        ("seen 03/04/2021 today", "[DATE]"),
        ("seen March 4, 2021 today", "[DATE]"),
        ("seen 4 March 2021 today", "[DATE]"),
        ("a 92-year-old man", "[AGE>89]"),
        ("lives at 12 Elm Street Apt. 4 alone", "[LOCATION]"),
        ("seen by Dr. Do today", "[NAME]"),
        ("came with Rose and her son", "[NAME]"),
        ("moved to Salt Lake City recently", "[LOCATION]"),
    ],
)
def test_identifiers_are_replaced_by_their_tag(text, tag):
    scrubbed, counts = scrub_free_text(pa.array([text]))
    out = scrubbed[0].as_py()
    assert tag in out
    assert counts[tag] >= 1
    assert not any(ch.isdigit() for ch in out.replace("[AGE>89]", ""))
    assert scanner().free_text(out) is None


def test_missing_notes_stay_missing_and_do_not_shift_their_neighbours():
    notes = pa.array(["SSN 123-45-6789", None, "", "call 555-867-5309 now", None])
    scrubbed, _ = scrub_free_text(notes)
    assert scrubbed.to_pylist() == ["SSN [SSN]", None, "", "call [PHONE] now", None]


def test_clinical_text_is_left_alone():
    text = "bp 120/80, chol 240 mg/dl, 3 tablets daily; a 45-year-old patient."
    scrubbed, counts = scrub_free_text(pa.array([text, None]))
    assert scrubbed.to_pylist() == [text, None]
    assert not counts


@pytest.mark.parametrize(
    "text",
    [
        "Will return in 2 weeks; will call if worse.",
        "Do not resuscitate. Pain rose to 7 of 10 overnight.",
        "May consider 3-4 times daily.",
        "long history of hypertension, on metoprolol 25mg bid.",
    ],
)
def test_safe_words_that_are_also_names_are_kept_where_context_allows(text):
    scrubbed, counts = scrub_free_text(pa.array([text]))
    assert scrubbed[0].as_py() == text
    assert not counts


def test_text_is_normalised_before_matching():
    wide = str.maketrans(
        "0123456789@", "".join(chr(0xFF10 + i) for i in range(10)) + "\uff20"
    )
    text = "SSN 123\u201145\u20116789, call 555\u00a0123\u200b4567, jo@x.org"
    text = text.translate(wide)
    scrubbed, _ = scrub_free_text(pa.array([text]))
    out = scrubbed[0].as_py()
    assert not any(ch.isdigit() for ch in out)
    assert "@" not in out and "x.org" not in out

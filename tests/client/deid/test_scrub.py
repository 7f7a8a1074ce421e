"""Tests of hospfed.client.deid.scrub: identifier patterns in free text."""

import pyarrow as pa
import pytest

from hospfed.client.deid import scrub_free_text


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("SSN 123-45-6789 on file", "[SSN]"),
        ("SSN 123456789 on file", "[SSN]"),
        ("call (555)123-4567 today", "[PHONE]"),
        ("call 555.123.4567x89 today", "[PHONE]"),
        ("call +1-555-123-4567 today", "[PHONE]"),
        ("mail jane.roe@example.com now", "[EMAIL]"),
        ("see https://example.org/x?id=1 now", "[URL]"),
        ("from 192.168.10.20 today", "[IP]"),
        ("MRN 00123456 noted", "[MRN]"),
        ("plan HP0123456789 noted", "[MRN]"),
        ("seen 2021-03-04 today", "[DATE]"),
        ("seen 03/04/2021 today", "[DATE]"),
        ("seen March 4, 2021 today", "[DATE]"),
        ("seen 4 March 2021 today", "[DATE]"),
        ("a 92-year-old man", "[AGE>89]"),
        ("lives at 12 Elm Street Apt. 4 alone", "[ADDRESS]"),
    ],
)
def test_free_text_patterns_are_replaced_by_their_tag(text, tag):
    scrubbed, counts = scrub_free_text(pa.array([text]))
    assert tag in scrubbed[0].as_py()
    assert counts[tag] == 1
    assert not any(ch.isdigit() for ch in scrubbed[0].as_py().replace("[AGE>89]", ""))


def test_missing_notes_stay_missing_and_do_not_shift_their_neighbours():
    notes = pa.array(["SSN 123-45-6789", None, "", "call 555-867-5309 now", None])
    scrubbed, _ = scrub_free_text(notes)
    assert scrubbed.to_pylist() == ["SSN [SSN]", None, "", "call [PHONE] now", None]


def test_clinical_text_is_left_alone():
    text = "bp 120/80, chol 240 mg/dl, 3 tablets daily; a 45-year-old patient."
    scrubbed, counts = scrub_free_text(pa.array([text, None]))
    assert scrubbed.to_pylist() == [text, None]
    assert not counts

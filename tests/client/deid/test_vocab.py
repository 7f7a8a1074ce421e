"""Known answers for the baked word lists of hospfed.client.deid.vocab.

The files are built by ``client/deid/vocab/build_vocab.py`` from pinned
packages; a rebuild that changes them must change these hashes knowingly.
"""

import hashlib

import pytest

from hospfed.client.deid.lexicon import NAME, PLACE, SAFE, lexicon
from hospfed.client.deid.scan import scanner
from hospfed.client.deid.vocab import HERE, VOCAB_FILES, word_list

HASHES = {
    "names": "4f603aadeb484021d9866041ada12d7ad1fdbc33521d94395ec3041168bad9a1",
    "place_phrases": "cb7fbf896f957aafb1bac49db9a54a0c4895ac06caa6e420038273700bb3cea6",
    "places": "8a228506c9fd318be4d79c7057e2eea3059fe7c13fd0cce74dcd8ebb8ea536e8",
    "safe_words": "38fc631b2a28e1f5bff527dc9e32b0f0bdc5d566c1bcb149fae7829d804322f6",
}
SIZES = {"names": 259591, "place_phrases": 1554, "places": 38457, "safe_words": 195145}


@pytest.mark.parametrize("name", VOCAB_FILES)
def test_the_baked_lists_are_the_pinned_files(name):
    data = (HERE / f"{name}.txt.gz").read_bytes()
    assert hashlib.sha256(data).hexdigest() == HASHES[name]
    assert len(word_list(name)) == SIZES[name]
    assert list(word_list(name)) == sorted(word_list(name))


@pytest.mark.parametrize(
    ("word", "bits"),
    [
        ("patient", SAFE),
        ("do", SAFE | NAME),  # the surname "Do" (Faker's lists lack it)
        ("long", SAFE | NAME | PLACE),
        ("rose", SAFE | NAME),
        ("smith", NAME | PLACE),
        ("cleveland", NAME | PLACE),
        ("gmail", 0),  # internet words are not safe
    ],
)
def test_known_lookups_in_both_structures(word, bits):
    import pyarrow as pa

    found = int(lexicon().classes(pa.array([word], pa.large_string()))[0])
    assert found & (SAFE | NAME | PLACE) == bits
    check = scanner()
    assert (word in check.safe, word in check.names, word in check.places) == (
        bool(bits & SAFE),
        bool(bits & NAME),
        bool(bits & PLACE),
    )


def test_a_multi_word_place_of_safe_words_is_a_phrase():
    assert "salt lake city" in word_list("place_phrases")

"""The baked word lists of the free-text scrubber, read from the files beside this.

Each ``*.txt.gz`` file holds one lowercase ASCII entry per line after a few
``#`` lines naming its source package, version and licence; it is built by
:mod:`.build_vocab` and pinned by ``tests/client/deid/test_vocab.py``.
:func:`word_list` reads one list; :data:`VOCAB_FILES` names them.
"""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

HERE = Path(__file__).parent

VOCAB_FILES = ("safe_words", "names", "places", "place_phrases")
"""The lists: safe words, person names, place words, places of several words."""


@cache
def word_list(name: str) -> tuple[str, ...]:
    """The entries of one baked list, in file order (sorted).

    Parameters
    ----------
    name : str
        One of :data:`VOCAB_FILES`.

    Returns
    -------
    tuple of str
        Its entries, without the ``#`` header lines.

    """
    if name not in VOCAB_FILES:
        raise ValueError(f"no word list {name!r}; the lists are {VOCAB_FILES}")
    text = gzip.decompress((HERE / f"{name}.txt.gz").read_bytes()).decode("ascii")
    return tuple(line for line in text.split("\n") if line and line[0] != "#")

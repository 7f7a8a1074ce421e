"""Unicode normalisation of free text before any matching, vectorised.

This module owns :func:`normalise_text`: what the scrubber
(:mod:`~hospfed.client.deid.scrub`) does to text before it looks at a
word. Rows that are not ASCII get Unicode NFKC (full-width digits, letters
and ``@`` fold to ASCII, ligatures and compatibility forms are spelled out,
a decomposed accent is composed again), lose their zero-width and other
invisible format characters, and have every Unicode space (non-breaking,
thin, ideographic ...) made a plain space and every dash or minus made
``-``; in all rows, control characters (tabs, line breaks) become spaces.
Layout is not kept: the scrubbed text is its words joined by single spaces.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hospfed.client.deid.textbuf import TEXT, _buffers, _plain

_INVISIBLE = (
    "[\\x{00AD}\\x{034F}\\x{061C}\\x{115F}\\x{1160}\\x{17B4}\\x{17B5}\\x{180B}-"
    "\\x{180F}\\x{200B}-\\x{200F}\\x{202A}-\\x{202E}\\x{2060}-\\x{206F}\\x{3164}"
    "\\x{FE00}-\\x{FE0F}\\x{FEFF}\\x{FFA0}\\x{FFF0}-\\x{FFF8}]"
)
"""Zero-width, bidirectional, variation-selector and other invisible characters."""
_SPACES = "[\\p{Z}\\x{0085}\\x{180E}]"
"""Every Unicode separator (spaces of all widths, line and paragraph marks)."""
_DASHES = "[\\p{Pd}\\x{2212}\\x{2043}\\x{FE63}\\x{FF0D}]"
"""Every dash, hyphen and minus sign."""
_CONTROLS = "[\\x00-\\x1F\\x7F]"


def normalise_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The text with Unicode folded and invisible characters removed.

    Parameters
    ----------
    values : pyarrow.Array
        Free text, one value per row.

    Returns
    -------
    pyarrow.Array
        ``large_string``, the same length and nulls.

    """
    text = _plain(values)
    ascii_rows = pc.fill_null(pc.string_is_ascii(text), True)
    if not pc.all(ascii_rows).as_py():
        other = pc.invert(ascii_rows)
        folded = pc.utf8_normalize(text.filter(other), "NFKC")
        folded = pc.replace_substring_regex(folded, _INVISIBLE, "")
        folded = pc.replace_substring_regex(folded, _SPACES, " ")
        folded = pc.replace_substring_regex(folded, _DASHES, "-")
        text = pc.replace_with_mask(text, other, folded.cast(TEXT))
    text = text.cast(TEXT)
    if _has_controls(text):
        text = pc.replace_substring_regex(text, _CONTROLS, " ")
    return text.cast(TEXT)


def _has_controls(text: pa.Array) -> bool:
    """Whether any value holds a character of :data:`_CONTROLS`.

    One NumPy pass over the UTF-8 bytes (those bytes are never part of
    another character), where a regex search goes value by value.
    """
    _, data = _buffers(text)
    return bool(np.any((data < 0x20) | (data == 0x7F)))

"""De-identification under HIPAA Safe Harbor, driven by the schema, and its checks.

:func:`deidentify` applies each raw column's ``deid`` action (see
:class:`~hospfed.common.schema.contract.Column`): direct identifiers are dropped or
replaced by keyed pseudonyms (HMAC-SHA256 under a per-hospital secret, never
a plain hash); dates keep their year or are shifted by a secret per-patient
offset; ages over 89 become 90, and kept dates that would give such an age
away move into the "90+" band (:mod:`.ages`); ZIP codes keep 3 digits, or
``000`` in the sparsely populated areas of :data:`RESTRICTED_ZIP3`; free
text is dropped unless the schema says ``scrub``, and then scrubbed by an
allowlist (:mod:`.allowlist`: only safe words and clinical measurements
survive) and of the row's own identifier words; every kept
column is profiled on the data and refused if it looks like an identifier
(:func:`profile_kept_columns`, unless the schema says ``reviewed``); the
quasi-identifiers must be :data:`DEFAULT_K`-anonymous (else the run fails),
or, with an explicit k, rows in smaller groups are suppressed.
:func:`scan_residual_identifiers` looks for anything identifier-like left in
the result with checks built apart from the scrubber (:mod:`.scan`) and
:func:`check_residual_identifiers` fails closed on it, and
:func:`deidentify_checked` does validate, de-identify and check in one call.
The work is vectorised (pyarrow compute kernels, NumPy over Arrow's byte
buffers) and the text columns go a block of rows at a time on worker
threads, which keeps the memory peak small; only the HMAC of each distinct
value, and free text that is not ASCII, go value by value in Python. Nothing
here ever puts a patient value in a message or report.

The modules, each importing only those before it: :mod:`.settings` (the
restricted ZIP list, the secrets), :mod:`.report` (the report types),
:mod:`.textbuf` (NumPy over Arrow's text buffers), :mod:`.blocks` (blocks
of rows, worker threads), :mod:`.columns` (pseudonyms, date shifts, ZIP
codes), :mod:`.kanon` (k-anonymity), :mod:`.ages` (the "90+" date band),
:mod:`.profile` (kept columns profiled), :mod:`.needles` (each row's own
identifier values), :mod:`.names` (finding them in text), :mod:`.lexicon`
(the baked word lists of :mod:`.vocab` with their classes),
:mod:`.textnorm` (Unicode normalisation), :mod:`.chunks` (text cut into
chunks, each distinct chunk read once), :mod:`.tags` (the tags and the tag
of a code by its shape), :mod:`.neighbours` (neighbouring chunks of a
row), :mod:`.allowlist` (what survives), :mod:`.scrub` (scrubbing free
text), :mod:`.scan` (the independent check), :mod:`.residual` (the
residual-identifier check),
:mod:`.summary` (the counts and the report) and :mod:`.pipeline`
(:func:`deidentify` and :func:`deidentify_checked`).
"""

from hospfed.client.deid.columns import pseudonymise, zip3
from hospfed.client.deid.kanon import k_anonymity
from hospfed.client.deid.pipeline import deidentify, deidentify_checked
from hospfed.client.deid.profile import ColumnProfile, profile_kept_columns
from hospfed.client.deid.report import DeidReport, KAnonymity
from hospfed.client.deid.residual import (
    Finding,
    check_residual_identifiers,
    scan_residual_identifiers,
)
from hospfed.client.deid.scrub import scrub_free_text
from hospfed.client.deid.settings import (
    DEFAULT_K,
    RESTRICTED_ZIP3,
    DeidSecrets,
    RestrictedZip3,
)

__all__ = [
    "DEFAULT_K",
    "RESTRICTED_ZIP3",
    "ColumnProfile",
    "DeidReport",
    "DeidSecrets",
    "Finding",
    "KAnonymity",
    "RestrictedZip3",
    "check_residual_identifiers",
    "deidentify",
    "deidentify_checked",
    "k_anonymity",
    "profile_kept_columns",
    "pseudonymise",
    "scan_residual_identifiers",
    "scrub_free_text",
    "zip3",
]

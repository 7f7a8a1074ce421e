"""HIPAA Safe Harbor de-identification of a raw hospital export."""

from hospfed.client.deid.pipeline import (
    RESTRICTED_ZIP3,
    DeidReport,
    DeidSecrets,
    Finding,
    KAnonymity,
    RestrictedZip3,
    check_residual_identifiers,
    deidentify,
    deidentify_checked,
    k_anonymity,
    pseudonymise,
    scan_residual_identifiers,
    scrub_free_text,
    zip3,
)

__all__ = [
    "RESTRICTED_ZIP3",
    "DeidReport",
    "DeidSecrets",
    "Finding",
    "KAnonymity",
    "RestrictedZip3",
    "check_residual_identifiers",
    "deidentify",
    "deidentify_checked",
    "k_anonymity",
    "pseudonymise",
    "scan_residual_identifiers",
    "scrub_free_text",
    "zip3",
]

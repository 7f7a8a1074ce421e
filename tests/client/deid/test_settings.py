"""Tests of hospfed.client.deid.settings: the restricted ZIP list and the secrets."""

import pytest

from hospfed.client.deid import RESTRICTED_ZIP3, DeidSecrets
from hospfed.common.errors import ConfigError
from tests.client.deid.exports import SECRETS


def test_the_restricted_zip_list_is_versioned_configuration():
    assert RESTRICTED_ZIP3.version == "census-2000"
    assert "2000 Census" in RESTRICTED_ZIP3.source
    assert len(RESTRICTED_ZIP3.prefixes) == 17
    assert {
        "036",
        "059",
        "063",
        "102",
        "203",
        "556",
        "692",
        "790",
        "821",
        "823",
        "830",
        "831",
        "878",
        "879",
        "884",
        "890",
        "893",
    } == RESTRICTED_ZIP3.prefixes


def test_secrets_are_hidden_and_must_be_long_enough():
    assert "pppp" not in repr(SECRETS)
    with pytest.raises(ConfigError, match="pseudonym secret must be at least 16 bytes"):
        DeidSecrets(pseudonym=b"short", date_shift=b"d" * 32)

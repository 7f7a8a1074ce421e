"""Fixtures shared by the de-identification tests: one raw export, prepared once."""

import pytest

from hospfed.client.deid import deidentify_checked
from tests.client.deid.exports import NOTES_SCHEMA, SECRETS, raw_export


@pytest.fixture(scope="session")
def raw():
    frame = raw_export(2000)
    NOTES_SCHEMA.validate(frame)
    return frame


@pytest.fixture(scope="session")
def prepared(raw):
    return deidentify_checked(raw, NOTES_SCHEMA, SECRETS, k=1)

"""Fixtures shared by the de-identification tests: one raw export, prepared once."""

import pytest

from hospfed.client.deid import deidentify_checked
from hospfed.common.datasets.heart_schema import FED_HEART_RAW_SCHEMA
from tests.client.deid.exports import SECRETS, raw_export


@pytest.fixture(scope="session")
def raw():
    frame = raw_export(2000)
    FED_HEART_RAW_SCHEMA.validate(frame)
    return frame


@pytest.fixture(scope="session")
def prepared(raw):
    return deidentify_checked(raw, FED_HEART_RAW_SCHEMA, SECRETS)

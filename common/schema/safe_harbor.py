"""Safe Harbor's versioned tables (45 CFR 164.514(b)(2)): the restricted ZIP3 areas.

Both sides need this table: the hospital's de-identification turns these
3-digit ZIP prefixes into ``000`` (:mod:`hospfed.client.deid`), and the
built-in demo exports plant them so that the rule is exercised
(:mod:`hospfed.common.datasets.identities`). It is spelled out here once.
Safe Harbor says to use the most recent Census data: when OCR publishes a
newer list, add it beside this one as a new table and point the users at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ZIP3_CENSUS_2000", "ZIP3_CENSUS_2000_SOURCE"]

ZIP3_CENSUS_2000: Mapping[str, str] = MappingProxyType(
    {
        "036": "NH",
        "059": "VT",
        "063": "CT",
        "102": "NY",
        "203": "DC",
        "556": "MN",
        "692": "NE",
        "790": "TX",
        "821": "WY",
        "823": "WY",
        "830": "WY",
        "831": "WY",
        "878": "NM",
        "879": "NM",
        "884": "NM",
        "890": "NV",
        "893": "NV",
    }
)
"""3-digit ZIP areas of 20,000 people or fewer (2000 Census), with their state."""

ZIP3_CENSUS_2000_SOURCE = (
    "HHS OCR, Guidance Regarding Methods for De-identification (2012), section "
    "2.4: 3-digit ZIP areas with 20,000 people or fewer in the 2000 Census"
)

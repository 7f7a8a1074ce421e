"""Known answers for keyed pseudonyms and date shifts.

Pseudonyms must join across exports: a hospital that prepares next year's
export must get the same pseudonym for the same MRN. These values were
computed by the code as it stood before the layout change (commit af29042);
a change to the HMAC input, the pseudonym alphabet, the HKDF purposes or the
passphrase salt breaks them, and with them every hospital's joins.
"""

import numpy as np
import pyarrow as pa

from hospfed.client.deid import pseudonymise
from hospfed.client.deid.columns import date_offsets
from hospfed.client.prepare import deid_secrets
from hospfed.client.vault import DataKey, Passphrase

SECRET = bytes(range(32))
VALUES = pa.array(["00012345", "Jane O'Neil", "Zoë-Ann Müller"])


def test_pseudonyms_of_fixed_inputs_under_a_fixed_secret():
    assert pseudonymise(VALUES, SECRET).to_pylist() == [
        "psn-bldjomemdmpbdopjmnapbnmk",
        "psn-dfoopmboakjogagigbaodble",
        "psn-ahkdbcfnmecnofacfcicgkdi",
    ]


def test_date_offsets_of_fixed_inputs_under_a_fixed_secret():
    assert np.asarray(date_offsets(VALUES, SECRET)).tolist() == [-239, 202, -59]


def test_secrets_derived_from_a_key_file_key():
    secrets = deid_secrets(DataKey(bytes(range(32))))
    assert pseudonymise(VALUES, secrets.pseudonym).to_pylist() == [
        "psn-kmemnjllpldmplhppcpnbaea",
        "psn-cpeenpejidbkffaigeakodnn",
        "psn-bcfjndpedlebjjnkobmmmbgg",
    ]
    assert secrets.date_shift.hex()[:16] == "9fc0f8cbdc31d2c5"


def test_secrets_derived_from_a_passphrase(monkeypatch):
    monkeypatch.setenv("HOSPFED_TEST_PASS", "correct horse battery staple")
    secrets = deid_secrets(Passphrase.from_env("HOSPFED_TEST_PASS"))
    assert pseudonymise(VALUES, secrets.pseudonym).to_pylist() == [
        "psn-chpflhaekhkmhgclpodbpiba",
        "psn-jmpmnmcmcajcphdbddafpldc",
        "psn-ddififjlbbafenhiijkigijm",
    ]
    assert secrets.date_shift.hex()[:16] == "718c7690409941f5"

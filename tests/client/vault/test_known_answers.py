"""Known-answer tests of the encrypted dataset format (``.hfd``), version 1.

The files in ``vectors/`` were made once by ``vectors/make_vectors.py`` and
are checked in; these tests only read them, never re-seal. Today's code must
open them and find exactly the frame, metadata and header fields pinned
here. A change to an HKDF info string (key id, content key, header or
trailer MAC), to the header's fields, or to the associated data of a chunk
makes them fail: such a change is a new format version, with new vectors,
and version 1 files must still open.
"""

import hashlib
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hospfed.client.vault import (
    HEADER_BYTES,
    MAGIC,
    DataKey,
    KeySource,
    Passphrase,
    ScryptParams,
    load_key,
    open_encrypted,
    read_encrypted_frame,
    read_header,
)

VECTORS = Path(__file__).parent / "vectors"
KEY_FILE = "v1-test.key"
KEY_FILE_SHA256 = "dddb173397109ca9071eac9e3499d4cf5ffdbb673e98d9b2d12fa76dafd30c6f"
KEY_MATERIAL = bytes(range(32))  # 00 01 02 ... 1f, a public test key
KEY_ID = "e5f60c125e015d87"
PASSPHRASE = "correct horse battery staple"
METADATA = {"purpose": "hospfed .hfd known-answer vector", "rows": "4"}
PLAINTEXT_SIZE = 3717  # the Parquet bytes inside both files
PLAINTEXT_SHA256 = "ed05f03a8884112056cf1fd708629e4e2e590831c89e8836044d5ad00b847ae0"


@dataclass(frozen=True)
class Vector:
    sha256: str
    key_source: str
    key_id: str
    scrypt: ScryptParams | None
    file_id: str
    chunk_size: int
    chunk_count: int


VECTORS_V1 = {
    "v1-keyfile.hfd": Vector(
        sha256="0648ea88dae966988c5e65ab0503ad5932b4a1f149916f8e0519714e289a7442",
        key_source="key-file",
        key_id=KEY_ID,
        scrypt=None,
        file_id="d282f86a33c084741c1c0e7db04ec44f",
        chunk_size=1024,
        chunk_count=4,
    ),
    "v1-passphrase.hfd": Vector(
        sha256="a19bb848f52ae15d79f371dbc93f4399f62037c2a50eb7b3dce30e23f1c32241",
        key_source="passphrase",
        key_id="595a97e6773b2452",
        scrypt=ScryptParams(n=2**14, r=1, p=1),
        file_id="6b1d2887168fac0cd6dc871645da9213",
        chunk_size=1 << 20,
        chunk_count=1,
    ),
}


def expected_frame():
    return pd.DataFrame(
        {
            "age": [63.0, 41.5, np.nan, 70.25],
            "visits": np.array([3, 0, 12, 7], dtype=np.int64),
            "site": pd.array(
                ["north", "south", None, "north"], dtype="string[pyarrow]"
            ),
            "cp": pd.Categorical(
                ["typical", "atypical", "asymptomatic", "typical"],
                categories=["asymptomatic", "atypical", "typical"],
                ordered=True,
            ),
        }
    )


@pytest.fixture
def test_key(tmp_path):
    """The test key, loaded from a 0600 copy of the key file (git keeps no modes)."""
    copy = tmp_path / KEY_FILE
    shutil.copyfile(VECTORS / KEY_FILE, copy)
    copy.chmod(0o600)
    return load_key(copy)


@pytest.fixture(params=sorted(VECTORS_V1))
def vector(request, test_key):
    """(path, pinned values, what opens it) for each vector file."""
    name = request.param
    pinned = VECTORS_V1[name]
    source: KeySource = test_key if pinned.scrypt is None else Passphrase(PASSPHRASE)
    return VECTORS / name, pinned, source


def sha256_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_vector_files_are_the_checked_in_bytes():
    assert sha256_of(VECTORS / KEY_FILE) == KEY_FILE_SHA256
    for name, pinned in VECTORS_V1.items():
        assert sha256_of(VECTORS / name) == pinned.sha256, f"{name} was rewritten"


def test_the_test_key_file_holds_the_fixed_key_and_its_id(test_key):
    assert test_key.material == KEY_MATERIAL
    assert test_key.key_id == KEY_ID
    assert DataKey(KEY_MATERIAL).key_id == KEY_ID


def test_each_vector_opens_to_the_pinned_frame_and_metadata(vector):
    path, _, source = vector
    frame, metadata = read_encrypted_frame(path, source)
    pd.testing.assert_frame_equal(frame, expected_frame(), check_exact=True)
    assert metadata == METADATA


def test_each_vector_opens_to_the_pinned_plaintext_bytes(vector):
    path, _, source = vector
    plaintext = open_encrypted(path, source)
    assert len(plaintext) == PLAINTEXT_SIZE
    assert hashlib.sha256(plaintext).hexdigest() == PLAINTEXT_SHA256


def test_each_vector_has_the_pinned_header(vector):
    path, pinned, _ = vector
    header = read_header(path)
    assert header.format_version == 1
    assert header.key_source == pinned.key_source
    assert header.key_id == pinned.key_id
    assert header.scrypt == pinned.scrypt
    assert header.file_id == pinned.file_id
    assert header.chunk_size == pinned.chunk_size
    assert header.plaintext_size == PLAINTEXT_SIZE
    assert header.chunk_count == pinned.chunk_count


def test_each_vector_follows_the_documented_byte_layout(vector):
    """Parse the bytes by hand, from the format described in layout.py."""
    path, pinned, _ = vector
    data = path.read_bytes()
    fields = struct.Struct("!8sHBIQ16s8sIII16s")
    assert fields.size + 32 == HEADER_BYTES
    magic, version, source, chunk, size, file_id, key_id, n, r, p, salt = (
        fields.unpack_from(data)
    )
    assert (magic, version, source) == (
        MAGIC,
        1,
        {"key-file": 1, "passphrase": 2}[pinned.key_source],
    )
    assert (chunk, size) == (pinned.chunk_size, PLAINTEXT_SIZE)
    assert (file_id.hex(), key_id.hex()) == (pinned.file_id, pinned.key_id)
    if pinned.scrypt is None:
        assert (n, r, p, salt) == (0, 0, 0, bytes(16))
    else:
        assert (n, r, p) == (pinned.scrypt.n, pinned.scrypt.r, pinned.scrypt.p)
    overhead = pinned.chunk_count * (12 + 16)
    assert len(data) == HEADER_BYTES + overhead + PLAINTEXT_SIZE + 16 + 32
    assert data[-48:-32] == file_id  # the trailer repeats the file id

"""Make the known-answer vectors of the encrypted dataset format (``.hfd``).

Run this ONLY when deliberately making a new format version (after bumping
``FORMAT_VERSION`` in ``client/vault/layout.py``)::

    .venv/bin/python tests/client/vault/vectors/make_vectors.py

It writes, next to itself, for the current format version N:

- ``vN-test.key``: a key file holding the fixed, public test key
  00 01 02 ... 1f (never use it for anything else);
- ``vN-keyfile.hfd``: a tiny synthetic frame encrypted with that key, in
  1024-byte chunks so that it has several;
- ``vN-passphrase.hfd``: the same frame encrypted with the passphrase
  "correct horse battery staple", scrypt at the lowest cost the reader
  accepts (n=2**14, r=1, p=1), in the default 1 MiB chunks;

then prints the values ``test_known_answers.py`` pins (file hashes, key id,
file ids, sizes). It refuses to replace existing files: the vectors of a
released version are never regenerated (their file ids and nonces are
random, so a rerun gives other bytes and every pinned hash would have to
change, which is exactly what the known-answer test is there to stop).
Copy the printed values into a new known-answer test for version N, keep
the old vectors and their test for as long as hospfed reads that version.
The frame below must stay equal to ``EXPECTED_FRAME`` in that test.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
from functools import partial
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd

from hospfed.client.vault import (
    FORMAT_VERSION,
    DataKey,
    Passphrase,
    ScryptParams,
    key_id_of,
    load_key,
    open_encrypted,
    read_encrypted_frame,
    read_header,
    sealed,
    write_encrypted_frame,
)

KEY_MATERIAL = bytes(range(32))
PASSPHRASE = "correct horse battery staple"
CHEAPEST_SCRYPT = ScryptParams(n=2**14, r=1, p=1)
KEY_FILE_CHUNK = 1024
METADATA = {"purpose": "hospfed .hfd known-answer vector", "rows": "4"}


def vector_frame() -> pd.DataFrame:
    """Four synthetic rows: a float with a NaN, an int, a string, a category."""
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


def key_file_text(material: bytes) -> str:
    """The key file, written from its documented format (client/vault/keys.py)."""
    encoded = base64.b64encode(material).decode("ascii")
    return f"hospfed-key v1\nkey-id {key_id_of(material)}\n{encoded}\n"


def main() -> None:
    """Write the vectors of the current format version and print their values."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    out = parser.parse_args().out
    version = f"v{FORMAT_VERSION}"
    key_path = out / f"{version}-test.key"
    keyfile_hfd = out / f"{version}-keyfile.hfd"
    passphrase_hfd = out / f"{version}-passphrase.hfd"
    existing = [p.name for p in (key_path, keyfile_hfd, passphrase_hfd) if p.exists()]
    if existing:
        sys.exit(f"refusing to replace existing vectors {existing} in {out}")

    key_path.write_text(key_file_text(KEY_MATERIAL), encoding="ascii")
    key_path.chmod(0o600)
    key = load_key(key_path)
    assert key == DataKey(KEY_MATERIAL)
    frame = vector_frame()
    write_encrypted_frame(
        frame, keyfile_hfd, key, metadata=METADATA, chunk_size=KEY_FILE_CHUNK
    )
    # The writer always uses the default scrypt cost; the vector uses the
    # cheapest one readers accept, so that the test stays fast.
    with mock.patch.object(
        sealed, "ScryptParams", partial(ScryptParams, **vars(CHEAPEST_SCRYPT))
    ):
        write_encrypted_frame(
            frame, passphrase_hfd, Passphrase(PASSPHRASE), metadata=METADATA
        )
    assert read_header(passphrase_hfd).scrypt == CHEAPEST_SCRYPT

    for path, source in ((keyfile_hfd, key), (passphrase_hfd, Passphrase(PASSPHRASE))):
        got, metadata = read_encrypted_frame(path, source)
        pd.testing.assert_frame_equal(got, frame)
        assert metadata == METADATA
        header = read_header(path)
        plaintext = open_encrypted(path, source)
        print(f"{path.name}:")
        print(f"  sha256           {hashlib.sha256(path.read_bytes()).hexdigest()}")
        print(f"  plaintext sha256 {hashlib.sha256(plaintext).hexdigest()}")
        print(f"  {header}")
    print(f"{key_path.name}:")
    print(f"  sha256           {hashlib.sha256(key_path.read_bytes()).hexdigest()}")
    print(f"  key id           {key.key_id}")


if __name__ == "__main__":
    main()

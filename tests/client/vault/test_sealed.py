import os
import stat
import struct

import numpy as np
import pandas as pd
import pytest

from hospfed.client.vault import (
    HEADER_BYTES,
    MAGIC,
    encrypt_file,
    open_encrypted,
    read_encrypted_frame,
    read_header,
    sealed,
    write_encrypted_frame,
)
from hospfed.client.vault.keys import DataKey, Passphrase, generate_key_file
from hospfed.common.errors import ConfigError, DataError, DecryptionError

CHUNK = 64  # small chunks so that small test files have several
NONCE, TAG, TRAILER = 12, 16, 48
SCRYPT_N_OFFSET = 8 + 2 + 1 + 4 + 8 + 16 + 8  # magic .. key id


@pytest.fixture
def key():
    return DataKey(os.urandom(32))


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "age": [63.0, 41.5, np.nan, 70.25],
            "sex": np.array([1, 0, 1, 1], dtype=np.int64),
            "pseudonym": ["a1f3", "9c0d", "77aa", "e012"],
            "cp": pd.Categorical(
                ["typical", "atypical", "asymptomatic", "typical"],
                categories=["asymptomatic", "atypical", "typical"],
                ordered=True,
            ),
            "ca": pd.array([0, None, 2, 1], dtype="Int64"),
            "note": pd.array(["x", None, "z", "w"], dtype="string"),
            "fbs": pd.array([True, False, None, True], dtype="boolean"),
        },
        index=pd.Index([10, 11, 12, 14], name="row"),
    )


def write_bytes_file(tmp_path, key, data, name="plain.bin", chunk_size=CHUNK):
    src = tmp_path / name
    src.write_bytes(data)
    dst = tmp_path / f"{name}.hfd"
    encrypt_file(src, dst, key, chunk_size=chunk_size)
    src.unlink()
    return dst


def chunk_starts(header):
    """Offsets of each chunk, computed from the documented format."""
    starts, at, remaining = [], HEADER_BYTES, header.plaintext_size
    for _ in range(header.chunk_count):
        size = min(header.chunk_size, remaining)
        starts.append(at)
        at += NONCE + size + TAG
        remaining -= size
    return starts


# ---------------------------------------------------------------- round trips


def test_a_frame_round_trips_exactly_with_its_metadata(tmp_path, key, frame):
    path = tmp_path / "hospital.hfd"
    metadata = {"schema": "fed-heart-v1", "hospital": "cleveland"}
    write_encrypted_frame(frame, path, key, metadata=metadata, chunk_size=CHUNK)

    got, got_metadata = read_encrypted_frame(path, key)
    pd.testing.assert_frame_equal(got, frame, check_exact=True)
    assert list(got.columns) == list(frame.columns)
    assert got_metadata == metadata
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(tmp_path) == ["hospital.hfd"]


def test_the_file_holds_no_plaintext_and_metadata_is_encrypted(tmp_path, key, frame):
    path = tmp_path / "hospital.hfd"
    write_encrypted_frame(frame, path, key, metadata={"hospital": "cleveland"})
    raw = path.read_bytes()
    for visible in (b"cleveland", b"pseudonym", b"a1f3", b"PAR1", b"asymptomatic"):
        assert visible not in raw


def test_a_frame_without_metadata_reads_back_an_empty_mapping(tmp_path, key, frame):
    path = tmp_path / "hospital.hfd"
    write_encrypted_frame(frame, path, key)
    got, metadata = read_encrypted_frame(path, key)
    pd.testing.assert_frame_equal(got, frame)
    assert metadata == {}


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, 3 * CHUNK, 3 * CHUNK + 5])
def test_bytes_round_trip_at_every_chunk_boundary(tmp_path, key, size):
    data = os.urandom(size)
    path = write_bytes_file(tmp_path, key, data)
    assert open_encrypted(path, key) == data
    header = read_header(path)
    assert header.chunk_count == max(1, -(-size // CHUNK))
    assert os.path.getsize(path) == header.sealed_size


def test_the_default_chunk_size_is_one_mib(tmp_path, key):
    src = tmp_path / "plain.bin"
    src.write_bytes(b"x" * 10)
    encrypt_file(src, tmp_path / "p.hfd", key)
    assert read_header(tmp_path / "p.hfd").chunk_size == 1 << 20


def test_the_header_is_readable_without_a_key(tmp_path, key):
    path = write_bytes_file(tmp_path, key, os.urandom(200))
    header = read_header(path)
    assert header.format_version == 1
    assert header.key_source == "key-file"
    assert header.key_id == key.key_id
    assert header.scrypt is None
    assert header.chunk_size == CHUNK
    assert header.plaintext_size == 200
    assert header.chunk_count == 4
    assert len(header.file_id) == 32
    assert read_header(write_bytes_file(tmp_path, key, b"", "b")).file_id != (
        header.file_id
    )


def test_a_key_loaded_from_a_key_file_opens_the_file(tmp_path, frame):
    key = generate_key_file(tmp_path / "site.key")
    write_encrypted_frame(frame, tmp_path / "h.hfd", key)
    got, _ = read_encrypted_frame(tmp_path / "h.hfd", key)
    pd.testing.assert_frame_equal(got, frame)


# --------------------------------------------------------------- passphrases


def test_a_passphrase_round_trips_and_a_typo_is_a_wrong_passphrase(tmp_path, frame):
    path = tmp_path / "hospital.hfd"
    write_encrypted_frame(
        frame, path, Passphrase("correct horse battery staple"), chunk_size=CHUNK
    )
    header = read_header(path)
    assert header.key_source == "passphrase"
    assert header.scrypt is not None
    assert header.scrypt.n == 2**15

    got, _ = read_encrypted_frame(path, Passphrase("correct horse battery staple"))
    pd.testing.assert_frame_equal(got, frame)
    with pytest.raises(DecryptionError, match="wrong passphrase"):
        read_encrypted_frame(path, Passphrase("correct horse battery stapel"))


def test_key_and_passphrase_are_not_interchangeable(tmp_path, key):
    keyed = write_bytes_file(tmp_path, key, b"data", "k")
    with pytest.raises(DecryptionError, match="with a key file .* not a passphrase"):
        open_encrypted(keyed, Passphrase("anything"))

    src = tmp_path / "p.bin"
    src.write_bytes(b"data")
    encrypt_file(src, tmp_path / "p.hfd", Passphrase("vault value"))
    with pytest.raises(DecryptionError, match="with a passphrase, not a key file"):
        open_encrypted(tmp_path / "p.hfd", key)


def test_absurd_scrypt_parameters_in_a_header_are_refused_before_running(tmp_path):
    src = tmp_path / "p.bin"
    src.write_bytes(b"data")
    path = tmp_path / "p.hfd"
    encrypt_file(src, path, Passphrase("vault value"))
    raw = bytearray(path.read_bytes())
    struct.pack_into("!I", raw, SCRYPT_N_OFFSET, 2**30)
    path.write_bytes(bytes(raw))
    with pytest.raises(DecryptionError, match="refusing the header's scrypt"):
        open_encrypted(path, Passphrase("vault value"))
    with pytest.raises(DecryptionError, match="refusing the header's scrypt"):
        read_header(path)


# ------------------------------------------------------------ damaged files


@pytest.fixture
def victim(tmp_path, key):
    """An encrypted file of 5 chunks (the last one short) and its raw bytes."""
    path = write_bytes_file(tmp_path, key, os.urandom(4 * CHUNK + 10), "victim")
    return path, path.read_bytes()


def corrupt(tmp_path, raw, name="damaged.hfd"):
    path = tmp_path / name
    path.write_bytes(bytes(raw))
    return path


def test_a_wrong_key_names_both_key_ids(tmp_path, key, victim):
    path, _ = victim
    other = DataKey(os.urandom(32))
    with pytest.raises(DecryptionError, match="wrong key") as info:
        open_encrypted(path, other)
    assert f"encrypted with key id {key.key_id}" in str(info.value)
    assert f"the key given is {other.key_id}" in str(info.value)


def test_one_flipped_byte_names_the_chunk(tmp_path, key, victim):
    path, raw = victim
    starts = chunk_starts(read_header(path))
    for index in (0, 2, 4):
        for where in (3, NONCE + 5, NONCE + 10 + TAG - 1):  # nonce, body, tag
            damaged = bytearray(raw)
            damaged[starts[index] + where] ^= 0x01
            with pytest.raises(DecryptionError) as info:
                open_encrypted(corrupt(tmp_path, damaged), key)
            assert f"chunk {index} of 5 failed authentication" in str(info.value)


def test_two_swapped_chunks_are_reported_as_reordered(tmp_path, key, victim):
    path, raw = victim
    starts = chunk_starts(read_header(path))
    span = NONCE + CHUNK + TAG
    first, second = raw[starts[1] : starts[1] + span], raw[starts[2] : starts[2] + span]
    swapped = raw[: starts[1]] + second + first + raw[starts[3] :]
    assert len(swapped) == len(raw)
    with pytest.raises(DecryptionError, match="reordered") as info:
        open_encrypted(corrupt(tmp_path, swapped), key)
    assert "position 1 holds chunk 2" in str(info.value)


def test_a_dropped_final_chunk_is_truncation(tmp_path, key, victim):
    path, raw = victim
    last = chunk_starts(read_header(path))[-1]
    with pytest.raises(DecryptionError, match="truncated") as info:
        open_encrypted(corrupt(tmp_path, raw[:last]), key)
    assert "chunks 4 to 4 (the final chunk) are missing" in str(info.value)
    # also when the end-of-file marker is kept after the dropped chunk
    with pytest.raises(DecryptionError, match="truncated"):
        open_encrypted(corrupt(tmp_path, raw[:last] + raw[-TRAILER:]), key)


def test_a_file_cut_mid_chunk_is_truncation(tmp_path, key, victim):
    path, raw = victim
    starts = chunk_starts(read_header(path))
    with pytest.raises(DecryptionError, match="truncated") as info:
        open_encrypted(corrupt(tmp_path, raw[: starts[2] + 20]), key)
    assert "ends inside chunk 2 of 5" in str(info.value)
    with pytest.raises(DecryptionError, match="truncated: it ends inside its header"):
        open_encrypted(corrupt(tmp_path, raw[: HEADER_BYTES - 1]), key)


def test_a_header_from_another_file_of_the_same_key_is_named(tmp_path, key, victim):
    _, raw = victim
    for size in (4 * CHUNK + 10, 2 * CHUNK):  # same or different length
        donor = write_bytes_file(tmp_path, key, os.urandom(size), f"donor{size}")
        grafted = donor.read_bytes()[:HEADER_BYTES] + raw[HEADER_BYTES:]
        with pytest.raises(DecryptionError, match="header belongs to another file"):
            open_encrypted(corrupt(tmp_path, grafted), key)


def test_an_altered_header_field_is_caught_by_the_header_mac(tmp_path, key, victim):
    _, raw = victim
    for offset in (11, 15, 20, 30):  # chunk size, plaintext size, file id
        damaged = bytearray(raw)
        damaged[offset] ^= 0x01
        with pytest.raises(DecryptionError, match="header was altered"):
            open_encrypted(corrupt(tmp_path, damaged), key)


def test_not_a_hospfed_file_and_an_unsupported_version(tmp_path, key, victim):
    _, raw = victim
    with pytest.raises(DecryptionError, match="not a hospfed encrypted file"):
        open_encrypted(corrupt(tmp_path, b"PAR1" + raw[4:]), key)
    with pytest.raises(DecryptionError, match="not a hospfed encrypted file"):
        read_header(corrupt(tmp_path, b"HOS"))
    newer = bytearray(raw)
    struct.pack_into("!H", newer, len(MAGIC), 2)
    with pytest.raises(DecryptionError, match="unsupported format version 2"):
        open_encrypted(corrupt(tmp_path, newer), key)
    with pytest.raises(DecryptionError, match="unsupported format version 2"):
        read_header(corrupt(tmp_path, newer))


def test_extra_bytes_and_an_altered_end_marker_are_caught(tmp_path, key, victim):
    _, raw = victim
    with pytest.raises(DecryptionError, match="3 unexpected bytes after its end"):
        open_encrypted(corrupt(tmp_path, raw + b"abc"), key)
    damaged = bytearray(raw)
    damaged[-1] ^= 0x01
    with pytest.raises(DecryptionError, match="end-of-file marker was altered"):
        open_encrypted(corrupt(tmp_path, damaged), key)


def test_a_missing_file_is_reported(tmp_path, key):
    with pytest.raises(DecryptionError, match="not found"):
        open_encrypted(tmp_path / "nope.hfd", key)
    with pytest.raises(DecryptionError, match="not found"):
        read_header(tmp_path / "nope.hfd")


def test_every_failure_has_its_own_message(tmp_path, key, victim):
    """Each cause is told apart: no fragment appears in another cause's message."""
    path, raw = victim
    starts = chunk_starts(read_header(path))
    span = NONCE + CHUNK + TAG
    flipped, header, newer = bytearray(raw), bytearray(raw), bytearray(raw)
    flipped[starts[1] + 20] ^= 1
    header[20] ^= 1
    struct.pack_into("!H", newer, len(MAGIC), 2)
    donor = write_bytes_file(tmp_path, key, os.urandom(100), "donor")
    cases = {
        "wrong key": (raw, DataKey(os.urandom(32))),
        "failed authentication": (flipped, key),
        "reordered": (
            raw[: starts[0]]
            + raw[starts[1] : starts[1] + span]
            + raw[starts[0] : starts[1]]
            + raw[starts[2] :],
            key,
        ),
        "truncated": (raw[: starts[-1]], key),
        "header belongs to another file": (
            donor.read_bytes()[:HEADER_BYTES] + raw[HEADER_BYTES:],
            key,
        ),
        "header was altered": (header, key),
        "not a hospfed encrypted file": (b"\x00" * len(raw), key),
        "unsupported format version": (newer, key),
        "with a key file": (raw, Passphrase("x")),
    }
    messages = {}
    for fragment, (data, given) in cases.items():
        with pytest.raises(DecryptionError) as info:
            open_encrypted(corrupt(tmp_path, data), given)
        messages[fragment] = str(info.value)
    for fragment, message in messages.items():
        assert fragment in message
        others = [text for name, text in messages.items() if name != fragment]
        assert all(fragment not in text for text in others), fragment
        assert key.material.hex() not in message


def test_a_file_made_by_encrypt_file_is_not_a_frame(tmp_path, key):
    path = write_bytes_file(tmp_path, key, b"not parquet at all")
    with pytest.raises(DecryptionError, match="does not hold a Parquet table"):
        read_encrypted_frame(path, key)


# ------------------------------------------------------------ failed writes


def test_a_missing_destination_directory_writes_nothing(tmp_path, key, frame):
    with pytest.raises(ConfigError, match="does not exist"):
        write_encrypted_frame(frame, tmp_path / "missing" / "h.hfd", key)
    src = tmp_path / "plain.bin"
    src.write_bytes(b"data")
    with pytest.raises(ConfigError, match="does not exist"):
        encrypt_file(src, tmp_path / "missing" / "h.hfd", key)
    assert sorted(os.listdir(tmp_path)) == ["plain.bin"]


def test_a_failure_mid_encryption_leaves_nothing_behind(
    tmp_path, key, frame, monkeypatch
):
    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sealed, "_seal_chunks", explode)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_encrypted_frame(frame, tmp_path / "h.hfd", key)
    assert os.listdir(tmp_path) == []


def test_a_failure_while_writing_keeps_the_old_file_and_no_temp(
    tmp_path, key, frame, monkeypatch
):
    path = tmp_path / "h.hfd"
    write_encrypted_frame(frame, path, key)
    before = path.read_bytes()

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space left"):
        write_encrypted_frame(frame.head(1), path, key)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["h.hfd"]


def test_an_unstorable_column_is_named_without_its_values(tmp_path, key):
    mixed = pd.DataFrame({"mrn": ["MRN-0042", 7, 3.5]})
    with pytest.raises(DataError, match="column 'mrn'") as info:
        write_encrypted_frame(mixed, tmp_path / "h.hfd", key)
    assert "MRN-0042" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_a_missing_source_file_is_a_data_error(tmp_path, key):
    with pytest.raises(DataError, match="not found"):
        encrypt_file(tmp_path / "nope.bin", tmp_path / "x.hfd", key)
    assert os.listdir(tmp_path) == []


def test_metadata_must_map_str_to_str(tmp_path, key, frame):
    with pytest.raises(TypeError, match="str to str"):
        write_encrypted_frame(frame, tmp_path / "h.hfd", key, metadata={"n": 1})
    assert os.listdir(tmp_path) == []

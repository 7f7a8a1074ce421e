import base64
import os
import stat

import pytest

from hospfed.client.vault.keys import (
    KEY_BYTES,
    DataKey,
    Passphrase,
    ScryptParams,
    derive_passphrase_key,
    generate_key_file,
    key_id_of,
    load_key,
)
from hospfed.common.errors import KeyFileError


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# ---------------------------------------------------------------- key files


def test_a_generated_key_file_has_mode_0600_and_loads_back(tmp_path):
    path = tmp_path / "site.key"
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        key = generate_key_file(path)
    finally:
        os.umask(old_umask)
    assert mode_of(path) == 0o600
    assert len(key.material) == KEY_BYTES
    assert load_key(path) == key
    assert os.listdir(tmp_path) == ["site.key"]


def test_two_generated_keys_differ(tmp_path):
    first = generate_key_file(tmp_path / "a.key")
    second = generate_key_file(tmp_path / "b.key")
    assert first.material != second.material
    assert first.key_id != second.key_id


def test_the_key_file_is_versioned_text_with_the_key_id(tmp_path):
    key = generate_key_file(tmp_path / "site.key")
    lines = (tmp_path / "site.key").read_text().splitlines()
    assert lines[0] == "hospfed-key v1"
    assert lines[1] == f"key-id {key.key_id}"
    assert base64.b64decode(lines[2]) == key.material


def test_generate_refuses_to_overwrite_an_existing_file(tmp_path):
    path = tmp_path / "site.key"
    key = generate_key_file(path)
    before = path.read_bytes()
    with pytest.raises(KeyFileError, match="already exists; refusing to overwrite"):
        generate_key_file(path)
    assert path.read_bytes() == before
    assert load_key(path) == key
    assert os.listdir(tmp_path) == ["site.key"]


def test_generate_refuses_a_missing_directory(tmp_path):
    with pytest.raises(KeyFileError, match="no directory"):
        generate_key_file(tmp_path / "missing" / "site.key")
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o606])
def test_a_key_file_accessible_by_group_or_others_is_refused(tmp_path, mode):
    path = tmp_path / "site.key"
    generate_key_file(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="accessible by group or others") as info:
        load_key(path)
    assert f"chmod 600 {path}" in str(info.value)
    assert f"{mode:04o}" in str(info.value)


def test_load_reports_a_missing_key_file(tmp_path):
    with pytest.raises(KeyFileError, match="not found"):
        load_key(tmp_path / "nope.key")


def write_key_file(path, text):
    path.write_text(text)
    path.chmod(0o600)
    return path


def valid_lines(material=b"\x01" * KEY_BYTES):
    encoded = base64.b64encode(material).decode()
    return ["hospfed-key v1", f"key-id {key_id_of(material)}", encoded]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "does not start with 'hospfed-key v1'"),
        ("-----BEGIN PRIVATE KEY-----\n", "does not start with 'hospfed-key v1'"),
        ("hospfed-key v9\nkey-id 00\nAAAA\n", "unsupported version 'v9'"),
        ("hospfed-key v1\n", "expected 3 lines"),
        ("hospfed-key v1\nkey-id 00\nnot base64!\n", "not base64"),
        (
            "hospfed-key v1\nkey-id 00\n" + base64.b64encode(b"short").decode(),
            "the key is 5 bytes, expected 32",
        ),
        (
            "\n".join(
                [*valid_lines()[:1], "key-id 0000000000000000", *valid_lines()[2:]]
            ),
            "does not match its key-id line",
        ),
    ],
)
def test_a_malformed_key_file_is_refused(tmp_path, text, fragment):
    path = write_key_file(tmp_path / "site.key", text)
    with pytest.raises(KeyFileError, match="malformed|unsupported") as info:
        load_key(path)
    assert fragment in str(info.value)


def test_a_key_file_that_is_not_text_is_refused(tmp_path):
    path = tmp_path / "site.key"
    path.write_bytes(os.urandom(32) + b"\xff")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="not ASCII text"):
        load_key(path)


def test_a_well_formed_handwritten_key_file_loads(tmp_path):
    path = write_key_file(tmp_path / "site.key", "\n".join(valid_lines()) + "\n")
    assert load_key(path).material == b"\x01" * KEY_BYTES


def test_a_directory_is_not_a_key_file(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_key(folder)


# ----------------------------------------------------------------- data keys


def test_a_data_key_never_shows_its_bytes():
    key = DataKey(os.urandom(KEY_BYTES))
    shown = [repr(key), str(key), f"{key}", repr([key])]
    secrets = [key.material.hex(), base64.b64encode(key.material).decode()]
    for text in shown:
        assert key.key_id in text
        assert all(secret not in text for secret in secrets)
        assert repr(key.material) not in text


def test_the_key_id_is_16_hex_digits_derived_one_way():
    material = os.urandom(KEY_BYTES)
    key = DataKey(material)
    assert len(key.key_id) == 16
    int(key.key_id, 16)
    assert key.key_id == DataKey(material).key_id
    assert key.key_id not in material.hex()


def test_a_data_key_checks_its_length_and_its_given_id():
    with pytest.raises(KeyFileError, match="must be 32 bytes"):
        DataKey(b"too short")
    with pytest.raises(KeyFileError, match="must be bytes"):
        DataKey("x" * 32)  # type: ignore[arg-type]
    material = os.urandom(KEY_BYTES)
    assert DataKey(material, key_id_of(material)).material == material
    with pytest.raises(KeyFileError, match="does not belong to this key"):
        DataKey(material, "0" * 16)


def test_derive_gives_stable_independent_subkeys_per_purpose():
    key = DataKey(os.urandom(KEY_BYTES))
    pseudonym = key.derive("pseudonym")
    assert pseudonym == key.derive("pseudonym")
    assert len(pseudonym) == 32
    assert pseudonym != key.derive("date-shift")
    assert pseudonym != key.material
    assert len(key.derive("date-shift", 8)) == 8
    assert key.derive("pseudonym", salt=b"file") != pseudonym
    assert DataKey(os.urandom(KEY_BYTES)).derive("pseudonym") != pseudonym


def test_derive_refuses_an_empty_purpose_or_bad_length():
    key = DataKey(os.urandom(KEY_BYTES))
    with pytest.raises(ValueError, match="purpose"):
        key.derive("")
    with pytest.raises(ValueError, match="length"):
        key.derive("pseudonym", 0)


# --------------------------------------------------------------- passphrases


def test_a_passphrase_never_shows_itself():
    phrase = Passphrase("correct horse battery staple")
    for text in (repr(phrase), str(phrase), f"{phrase}", repr([phrase])):
        assert "horse" not in text


def test_an_empty_passphrase_is_refused():
    with pytest.raises(KeyFileError, match="passphrase is empty"):
        Passphrase("")


def test_a_passphrase_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("HOSPFED_TEST_PASSPHRASE", "s3cret vault value")
    assert Passphrase.from_env("HOSPFED_TEST_PASSPHRASE").encode() == (
        b"s3cret vault value"
    )
    monkeypatch.delenv("HOSPFED_TEST_PASSPHRASE")
    with pytest.raises(KeyFileError, match="HOSPFED_TEST_PASSPHRASE is unset"):
        Passphrase.from_env("HOSPFED_TEST_PASSPHRASE")


def test_a_passphrase_derives_the_same_key_however_its_unicode_is_composed():
    salt = os.urandom(16)
    params = ScryptParams()
    composed = derive_passphrase_key(Passphrase("caf\u00e9"), salt=salt, params=params)
    decomposed = derive_passphrase_key(
        Passphrase("cafe\u0301"), salt=salt, params=params
    )
    assert composed == decomposed
    other_salt = derive_passphrase_key(
        Passphrase("caf\u00e9"), salt=os.urandom(16), params=params
    )
    assert other_salt != composed


@pytest.mark.parametrize(
    ("n", "r", "p", "fragment"),
    [
        (3 * 2**14, 8, 1, "power of two"),
        (2**10, 8, 1, "power of two"),
        (2**21, 1, 1, "power of two"),
        (2**15, 0, 1, "r must be"),
        (2**15, 8, 99, "r must be"),
        (2**20, 8, 1, "MiB of memory"),
        (2**17, 8, 16, "default work"),
    ],
)
def test_scrypt_parameters_are_bounded(n, r, p, fragment):
    with pytest.raises(KeyFileError, match=fragment):
        ScryptParams(n=n, r=r, p=p)

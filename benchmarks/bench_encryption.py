"""Side-by-side: hospfed's encrypted file format vs raw AES-256-GCM.

Times, in the same run and interleaved, four ways to encrypt the same N MiB
of random bytes, and the way to decrypt them:

* raw: ``AESGCM.encrypt`` over 1 MiB chunks (one fixed nonce, no associated
  data, no header): the speed of the primitive from ``cryptography``;
* raw into: ``AESGCM.encrypt_into`` the same chunks into one preallocated
  buffer (no allocation per chunk): the fastest the primitive goes;
* sealed: ``hospfed.client.vault.sealed._seal``, the in-memory step that turns
  plaintext into the bytes of an ``.hfd`` file (per-file HKDF subkeys, a
  fresh nonce and associated data per chunk, header and trailer MACs);
* encrypt_file: the whole public call, reading a plaintext file and writing
  the ``.hfd`` atomically (fsync included) in a temporary directory on
  /dev/shm when there is one;
* open: ``_unseal``, every check and the decryption, in memory (for reference).

Prints MiB/s for each and the ratio of sealed to each raw baseline (target
>= 0.70). Each is the best of ``--repeats`` rounds. Never fails on a timing.

    .venv/bin/python benchmarks/bench_encryption.py [--mib 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hospfed.client.vault import (
    DEFAULT_CHUNK_SIZE,
    DataKey,
    encrypt_file,
)
from hospfed.client.vault.sealed import _seal, _unseal


def best_seconds(
    runs: dict[str, Callable[[], object]], repeats: int
) -> dict[str, float]:
    """Best time of each run; runs are interleaved so load hits all alike."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def raw_aesgcm(plaintext: bytes, key: bytes) -> list[bytes]:
    cipher = AESGCM(key)
    nonce = os.urandom(12)
    view = memoryview(plaintext)
    return [
        cipher.encrypt(nonce, view[start : start + DEFAULT_CHUNK_SIZE], None)
        for start in range(0, len(plaintext), DEFAULT_CHUNK_SIZE)
    ]


def raw_aesgcm_into(plaintext: bytes, key: bytes) -> bytearray:
    cipher = AESGCM(key)
    nonce = os.urandom(12)
    view = memoryview(plaintext)
    chunks = range(0, len(plaintext), DEFAULT_CHUNK_SIZE)
    out = bytearray(len(plaintext) + 16 * len(chunks))
    target = memoryview(out)
    for index, start in enumerate(chunks):
        piece = view[start : start + DEFAULT_CHUNK_SIZE]
        at = start + 16 * index
        cipher.encrypt_into(nonce, piece, None, target[at : at + len(piece) + 16])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="plaintext size")
    parser.add_argument("--repeats", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    plaintext = os.urandom(args.mib << 20)
    key = DataKey(os.urandom(32))
    mib = float(args.mib)

    sealed_bytes = bytes(_seal(plaintext, key, chunk_size=DEFAULT_CHUNK_SIZE))
    with tempfile.TemporaryDirectory(dir=_fast_tmp()) as tmp:
        src, dst = Path(tmp) / "plain.bin", Path(tmp) / "sealed.hfd"
        src.write_bytes(plaintext)
        runs: dict[str, Callable[[], object]] = {
            "raw AESGCM.encrypt": lambda: raw_aesgcm(plaintext, key.material),
            "raw AESGCM.encrypt_into": lambda: raw_aesgcm_into(plaintext, key.material),
            "sealed (in memory)": lambda: _seal(
                plaintext, key, chunk_size=DEFAULT_CHUNK_SIZE
            ),
            "encrypt_file (tmpfs)": lambda: encrypt_file(src, dst, key),
            "open (in memory)": lambda: _unseal(sealed_bytes, key, origin="bench"),
        }
        seconds = best_seconds(runs, args.repeats)

    print(f"plaintext: {args.mib} MiB in {DEFAULT_CHUNK_SIZE >> 20} MiB chunks")
    for name, taken in seconds.items():
        print(f"{name:<26}{mib / taken:8.1f} MiB/s")
    sealed_s = seconds["sealed (in memory)"]
    for baseline in ("raw AESGCM.encrypt", "raw AESGCM.encrypt_into"):
        ratio = seconds[baseline] / sealed_s
        print(f"ratio sealed / {baseline:<24}{ratio:5.2f}  (target >= 0.70)")


def _fast_tmp() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


if __name__ == "__main__":
    main()

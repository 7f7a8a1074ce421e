"""hospfed's exceptions: each says what went wrong and carries an exit code.

A user error (bad flag, bad config value, missing data, schema mismatch)
exits with code 2 and a one-line message; a run that failed (a round with too
few results) exits with code 3. No user error ever shows a traceback.
"""

from __future__ import annotations

EXIT_USAGE = 2
EXIT_RUN_FAILED = 3


class HospfedError(Exception):
    """Base class of every error hospfed raises on purpose."""

    exit_code: int = 1


class ConfigError(HospfedError, ValueError):
    """A configuration value is missing or not allowed."""

    exit_code = EXIT_USAGE


class DataError(HospfedError):
    """The data a hospital was pointed at is missing or unreadable."""

    exit_code = EXIT_USAGE


class SchemaError(DataError):
    """A dataset does not match the federation's schema contract."""


class RoundFailedError(HospfedError):
    """A training round got fewer results than its minimum.

    Parameters
    ----------
    server_round : int
        The round that failed.
    phase : str
        ``"train"`` or ``"evaluate"``.
    received : int
        How many hospitals answered successfully.
    required : int
        How many answers the round needed.
    failures : list of str
        One short description per failure.

    """

    exit_code = EXIT_RUN_FAILED

    def __init__(
        self,
        *,
        server_round: int,
        phase: str,
        received: int,
        required: int,
        failures: list[str],
    ) -> None:
        self.server_round = server_round
        self.phase = phase
        self.received = received
        self.required = required
        self.failures = failures
        detail = "; ".join(failures) if failures else "no failure reported"
        super().__init__(
            f"round {server_round} ({phase}) failed: received {received} results, "
            f"needed at least {required}; {len(failures)} failures: {detail}"
        )


class KeyFileError(HospfedError):
    """A key file or passphrase is missing, malformed, or unsafely stored."""

    exit_code = EXIT_USAGE


class DecryptionError(DataError):
    """An encrypted dataset cannot be opened: wrong key, or it was altered."""


class IdentifierLeakError(DataError):
    """De-identified data still holds something identifier-like; nothing is written."""


class PrivacyBudgetError(HospfedError):
    """A round would spend more privacy budget than the hospital allows."""

    exit_code = EXIT_RUN_FAILED


class LedgerError(DataError):
    """A privacy ledger is corrupt or belongs to other data; it is never reset."""


def raised_where(error: BaseException) -> str:
    """``TypeName at file.py:LINE``: an unexpected exception without its message.

    A library's message may quote the data it choked on (a patient value);
    its type and the line that raised it never do.
    """
    import traceback
    from pathlib import Path

    frames = traceback.extract_tb(error.__traceback__)
    last = frames[-1] if frames else None
    where = "" if last is None else f" at {Path(last.filename).name}:{last.lineno}"
    return f"{type(error).__name__}{where}"

"""The data steward's commands over the hospital's state: budget and audit log.

``hospfed-client budget show|init|raise`` reads the privacy ledger, fixes
the lifetime budget once, or raises it with a recorded reason; with the
hospital's key (``--key`` or ``--passphrase-env``) the ledger's MAC is
verified, and ``init``/``raise`` need the key to authenticate what they
write. ``hospfed-client audit verify|show`` checks the hash chain of the
audit log of everything the hospital sent, and summarises it per run.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from hospfed.client.audit import summarise_audit_log, verify_audit_log
from hospfed.client.options import (
    KeyOption,
    PassphraseOption,
    StateDirOption,
    key_source,
)
from hospfed.client.privacy import (
    PrivacyLedger,
    ledger_lock,
    ledger_mac_key,
    load_ledger,
)
from hospfed.common.errors import DataError

__all__ = ["audit_app", "budget_app"]

budget_app = typer.Typer(
    help="The hospital's lifetime privacy budget: show, init, raise.",
    no_args_is_help=True,
)
audit_app = typer.Typer(
    help="The audit log of everything this hospital sent: verify, show.",
    no_args_is_help=True,
)


def _mac_key(key: KeyOption, passphrase_env: PassphraseOption) -> bytes | None:
    if key is None and passphrase_env is None:
        return None
    return ledger_mac_key(key_source(key, passphrase_env))


@budget_app.command("show")
def budget_show(
    state_dir: StateDirOption,
    key: KeyOption = None,
    passphrase_env: PassphraseOption = None,
) -> None:
    """Print the privacy budget spent and remaining, from the ledger."""
    mac_key = _mac_key(key, passphrase_env)
    ledger = load_ledger(state_dir, mac_key=mac_key)
    spent = ledger.spent()
    table = Table(title=f"privacy budget ({ledger.path})")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("epsilon spent", f"{spent:.4f}")
    table.add_row("epsilon budget", f"{ledger.epsilon_budget:g}")
    table.add_row("epsilon remaining", f"{ledger.remaining():.4f}")
    table.add_row("delta", f"{ledger.delta:g}")
    table.add_row("DP rounds recorded", str(len(ledger.entries)))
    table.add_row("runs", str(len({entry.run for entry in ledger.entries})))
    if ledger.entries:
        last = ledger.entries[-1]
        table.add_row(
            "last round",
            f"{last.run} round {last.server_round} ({_when(last.recorded_at)})",
        )
        table.add_row(
            "noise multiplier (last)", f"{last.mechanism.noise_multiplier:.4g}"
        )
        table.add_row("clip norm (last)", f"{last.clip_norm:g}")
    for change in ledger.budget_changes:
        table.add_row(
            f"raised {_when(change.changed_at)}",
            f"{change.previous:g} -> {change.epsilon:g}: {change.reason}",
        )
    table.add_row("authenticity", "MAC verified" if mac_key else "not checked (no key)")
    table.add_row("accountant", "RDP (Opacus's analysis), Poisson-sampled Gaussian")
    Console().print(table)


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


@budget_app.command("init")
def budget_init(
    state_dir: StateDirOption,
    epsilon: float = typer.Option(..., help="The lifetime epsilon budget."),
    delta: float = typer.Option(1e-3, help="The delta it is spent at."),
    key: KeyOption = None,
    passphrase_env: PassphraseOption = None,
) -> None:
    """Fix the lifetime budget before the first DP run (once per dataset)."""
    mac_key = ledger_mac_key(key_source(key, passphrase_env))
    ledger = PrivacyLedger.init(
        state_dir, epsilon=epsilon, delta=delta, mac_key=mac_key
    )
    print(f"lifetime budget epsilon {epsilon:g} (delta {delta:g}) in {ledger.path}")


@budget_app.command("raise")
def budget_raise(
    state_dir: StateDirOption,
    epsilon: float = typer.Option(..., help="The new lifetime epsilon budget."),
    reason: str = typer.Option(..., help="Why (kept in the ledger)."),
    key: KeyOption = None,
    passphrase_env: PassphraseOption = None,
) -> None:
    """Raise the lifetime budget; the ledger records when and why."""
    mac_key = ledger_mac_key(key_source(key, passphrase_env))
    with ledger_lock(state_dir):
        ledger = load_ledger(state_dir, mac_key=mac_key)
        change = ledger.raise_budget(epsilon, reason=reason)
    print(
        f"lifetime budget raised from epsilon {change.previous:g} to "
        f"{change.epsilon:g} in {ledger.path}"
    )


@audit_app.command("verify")
def audit_verify(state_dir: StateDirOption) -> None:
    """Check the audit log's hash chain; exit 1 naming each problem."""
    problems = verify_audit_log(state_dir)
    if problems:
        for problem in problems:
            print(f"audit log: {problem}", file=sys.stderr)
        raise DataError(
            f"audit log in {state_dir} is not intact ({len(problems)} problems)"
        )
    entries = sum(run["messages"] for run in summarise_audit_log(state_dir))
    print(f"audit log intact: {entries} messages, hash chain and head verified")


@audit_app.command("show")
def audit_show(state_dir: StateDirOption) -> None:
    """Summarise what this hospital sent, per run."""
    table = Table(title=f"audit log ({state_dir})")
    for column in ("run", "messages", "rounds", "bytes of arrays", "epsilon (last)"):
        table.add_column(column, justify="right" if column != "run" else "left")
    for run in summarise_audit_log(state_dir):
        epsilon = "-" if run["epsilon"] is None else f"{run['epsilon']:.4f}"
        table.add_row(
            run["run"],
            str(run["messages"]),
            str(run["rounds"]),
            str(run["bytes"]),
            epsilon,
        )
    Console().print(table)

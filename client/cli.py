"""``hospfed-client``: the hospital side's command.

The data steward's tools: ``keygen`` makes the hospital's data key;
``demo-export`` writes a realistic raw export (synthetic identifiers on the
real Fed-Heart-Disease rows); ``prepare`` turns a raw export into an
encrypted, de-identified dataset; ``inspect`` shows what a prepared dataset
holds without showing any patient value; ``check`` loads it the way the
training client will; ``budget show`` prints the privacy budget spent and
remaining, from the hospital's ledger, ``budget init`` fixes the lifetime
budget and ``budget raise`` raises it with a recorded reason; ``hospitals``
lists the embedded federation. ``node-key`` and ``start`` join a
consortium (:mod:`hospfed.client.deploy_cli`).
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import click
import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from hospfed.client.data import (
    NodeSettings,
    check_dataset_file,
    load_hospital_data,
    open_prepared,
)
from hospfed.client.deploy_cli import register as register_deployment
from hospfed.client.options import (
    KEY_FLAGS,
    KeyOption,
    PassphraseOption,
    key_source,
)
from hospfed.client.predict import (
    RunModel,
    check_model_fits,
    evaluate_at_hospital,
    load_run_model,
    predict_rows,
    run_task,
    write_predictions,
)
from hospfed.client.prepare import DEFAULT_MIN_ROWS, prepare_export
from hospfed.client.stewardship import audit_app, budget_app
from hospfed.client.vault import (
    check_one_key,
    generate_key_file,
    read_header,
)
from hospfed.common.cli import make_app, run_app
from hospfed.common.datasets import (
    DEFAULT_RAW_SCHEMA,
    FED_HEART_TASK,
    resolve_schema,
    resolve_task,
)
from hospfed.common.datasets.heart import HOSPITALS
from hospfed.common.datasets.heart_export import hospital_raw_export, write_raw_export
from hospfed.common.errors import DataError, HospfedError, raised_where
from hospfed.common.task import LearningTask

PROG = "hospfed-client"
app = make_app("The hospital side of hospfed: runs next to the hospital's data.")


@contextlib.contextmanager
def no_patient_values(command: str) -> Iterator[None]:
    """Turn any unexpected exception into one line that cannot hold a value.

    hospfed's own errors say what is wrong without patient values, and
    pass through. Any other exception (pandas', pyarrow's, NumPy's, a bug)
    may quote the data in its message, so only its type and where it was
    raised (file and line of code) are shown. An operating system error
    (disk full, permission denied) passes through: its message is the
    system's.
    """
    try:
        yield
    except (HospfedError, click.exceptions.Exit, click.ClickException):
        raise
    except OSError as error:
        if error.errno is None:  # a library's own message, not the system's
            raise _unexpected(command, error) from None
        raise  # "[Errno 28] No space left on device: 'site.hfd'"
    except Exception as error:
        raise _unexpected(command, error) from None


def _unexpected(command: str, error: Exception) -> DataError:
    return DataError(
        f"{command} failed: unexpected {raised_where(error)} (its "
        "message is not shown: it may hold patient data); nothing was written. "
        "Please report this as a bug"
    )


@app.command()
def keygen(
    out: Annotated[Path, typer.Option(help="The key file to create (mode 0600).")],
) -> None:
    """Create the hospital's random 256-bit data key (never overwrites one)."""
    key = generate_key_file(out)
    print(
        f"wrote {out} (key id {key.key_id}, mode 0600). Back it up somewhere "
        "safe: without it the prepared data cannot be read."
    )


@app.command("demo-export")
def demo_export(
    hospital: Annotated[str, typer.Option(help=f"One of: {', '.join(HOSPITALS)}.")],
    out: Annotated[Path, typer.Option(help="Raw export to write (.csv or .parquet).")],
    seed: Annotated[int, typer.Option(min=0, help="Seed of the fake identifiers.")] = 0,
) -> None:
    """Write a raw export: real clinical rows, synthetic identifiers (Faker)."""
    frame = hospital_raw_export(hospital, seed=seed)
    write_raw_export(frame, out)
    print(f"wrote {out}: {len(frame)} patients of {hospital}, synthetic identifiers")


@app.command()
def prepare(
    raw: Annotated[Path, typer.Argument(help="Raw export (.csv or .parquet).")],
    out: Annotated[Path, typer.Option(help="Encrypted dataset to write (.hfd).")],
    schema: Annotated[
        str,
        typer.Option(help="Built-in schema name or a schema file (.toml or .json)."),
    ] = DEFAULT_RAW_SCHEMA,
    key: KeyOption = None,
    passphrase_env: PassphraseOption = None,
    k: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Without --k the data must be 5-anonymous over the "
            "quasi-identifiers or nothing is written; --k K suppresses rows in "
            "groups smaller than K instead (--k 1: no check).",
        ),
    ] = None,
    min_rows: Annotated[
        int,
        typer.Option(
            min=1,
            help="Refuse to write fewer rows than this (before or after --k).",
        ),
    ] = DEFAULT_MIN_ROWS,
) -> None:
    """De-identify a raw export and write it encrypted; nothing on failure."""
    source = key_source(key, passphrase_env)
    with no_patient_values("prepare"):
        result = prepare_export(
            raw,
            out,
            schema=resolve_schema(schema),
            key=source,
            k=k,
            min_rows=min_rows,
        )
    for line in result.report.to_lines():
        print(line)
    print(
        f"wrote {out} (encrypted, schema {result.schema.name} v{result.schema.version})"
    )


@app.command()
def inspect(
    dataset: Annotated[Path, typer.Argument(help="A prepared dataset (.hfd).")],
    key: KeyOption = None,
    passphrase_env: PassphraseOption = None,
) -> None:
    """Show a prepared dataset's schema, rows and label balance, no values."""
    source = key_source(key, passphrase_env)
    with no_patient_values("inspect"):
        check_dataset_file(dataset)
        header = read_header(dataset)
        prepared = open_prepared(dataset, source)
    table = Table(title=f"{dataset} (no patient values shown)")
    table.add_column("")
    table.add_column("value")
    table.add_row("format", f"hospfed sealed v{header.format_version}, AES-256-GCM")
    table.add_row("key", f"{header.key_source} (key id {header.key_id})")
    table.add_row("chunks", f"{header.chunk_count} x {header.chunk_size:,} bytes")
    table.add_row("schema", f"{prepared.schema.name} v{prepared.schema.version}")
    table.add_row("fingerprint", prepared.schema.fingerprint()[:16])
    table.add_row("prepared at", prepared.prepared_at)
    table.add_row("rows", f"{len(prepared.frame):,}")
    table.add_row("columns", ", ".join(prepared.frame.columns))
    counts = prepared.frame[prepared.schema.label].value_counts(dropna=False)
    table.add_row(
        f"label {prepared.schema.label!r}",
        ", ".join(f"{value}: {n:,}" for value, n in sorted(counts.items())),
    )
    Console().print(table)


@app.command()
def hospitals() -> None:
    """List the hospitals of the embedded Fed-Heart-Disease federation."""
    for name in HOSPITALS:
        print(name)


@app.command()
def check(
    dataset: Annotated[Path, typer.Argument(help="A prepared dataset (.hfd).")],
    key: KeyOption = None,
    passphrase_env: PassphraseOption = None,
    hospital: Annotated[
        str | None, typer.Option(help="Name reported to the coordinator.")
    ] = None,
    task: Annotated[
        str, typer.Option(help="The learning task (built-in name or task file).")
    ] = FED_HEART_TASK.name,
) -> None:
    """Load a prepared dataset exactly as training will; print counts only."""
    check_one_key(key, passphrase_env, names=KEY_FLAGS)
    settings = NodeSettings(
        hospital=hospital or dataset.stem,
        data=dataset,
        key_file=key,
        passphrase_env=passphrase_env,
    )
    learning_task = resolve_task(task)
    if learning_task.standardise == "federation":  # statistics come with a run
        learning_task = replace(learning_task, standardise="none")
    with no_patient_values("check"):
        data = load_hospital_data(settings).inputs(learning_task)
    binary = learning_task.label.kind == "binary"
    table = Table(title=f"{data.hospital}: model inputs (no patient values shown)")
    for column in (
        "split",
        "rows",
        "features",
        "label 1 share" if binary else "label mean",
    ):
        table.add_column(column)
    for split, x, y in (
        ("train", data.x_train, data.y_train),
        ("test", data.x_test, data.y_test),
    ):
        table.add_row(split, str(len(y)), str(x.shape[1]), f"{float(np.mean(y)):.2f}")
    Console().print(table)


ModelOption = Annotated[
    Path,
    typer.Option(
        "--model", help="A run's results directory (metrics.json, model.npz)."
    ),
]
TaskOption = Annotated[
    str | None,
    typer.Option(
        help="The learning task the run trained (built-in name or file) "
        "[default: the task the run recorded in its metrics.json]."
    ),
]


@app.command()
def evaluate(
    dataset: Annotated[Path, typer.Argument(help="A prepared dataset (.hfd).")],
    model: ModelOption,
    key: KeyOption = None,
    passphrase_env: PassphraseOption = None,
    task: TaskOption = None,
) -> None:
    """Score a run's model on this hospital's own test split (metrics only)."""
    run_model = load_run_model(model)
    with no_patient_values("evaluate"):
        prepared = open_prepared(dataset, key_source(key, passphrase_env))
        result = evaluate_at_hospital(
            run_model, prepared, _task(run_model, task), dataset.stem
        )
    table = Table(title=f"{dataset.stem}: the run's model on this hospital's test set")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ("accuracy", "auc", "macro_f1", "rmse", "mae", "loss"):
        value = getattr(result, name)
        if not math.isnan(value):  # NaN: does not apply to this label kind
            table.add_row(name.replace("_", "-"), f"{value:.4f}")
    table.add_row("test rows", str(result.num_examples))
    if run_model.status != "complete":
        table.add_row("run status", f"{run_model.status} (not a finished run)")
    Console().print(table)


@app.command()
def predict(
    dataset: Annotated[Path, typer.Argument(help="A prepared dataset (.hfd).")],
    model: ModelOption,
    out: Annotated[Path, typer.Option(help="Predictions CSV to write (mode 0600).")],
    key: KeyOption = None,
    passphrase_env: PassphraseOption = None,
    task: TaskOption = None,
) -> None:
    """Apply a run's model to every complete row, keyed by pseudonym."""
    run_model = load_run_model(model)
    with no_patient_values("predict"):
        prepared = open_prepared(dataset, key_source(key, passphrase_env))
        table, left_out = predict_rows(
            run_model, prepared, _task(run_model, task), dataset.stem
        )
    write_predictions(table, out)
    print(
        f"{len(table)} predictions written to {out} ({left_out} rows left out: a "
        "value the task needs is missing)"
    )


@app.command("privacy-check")
def privacy_check(
    dataset: Annotated[Path, typer.Argument(help="A prepared dataset (.hfd).")],
    model: ModelOption,
    key: KeyOption = None,
    passphrase_env: PassphraseOption = None,
    task: TaskOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Also write the result as JSON here (mode 0600)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
) -> None:
    """Membership-inference audit of a run's model on this hospital's data (local)."""
    from hospfed.client.features import encode_rows
    from hospfed.client.membership import membership_audit, write_audit

    run_model = load_run_model(model)
    learning_task = _task(run_model, task)
    with no_patient_values("privacy-check"):
        prepared = open_prepared(dataset, key_source(key, passphrase_env))
        check_model_fits(run_model, learning_task)
        rows = encode_rows(
            prepared.frame, learning_task, dataset.stem, run_model.scaling
        )
        audit = membership_audit(
            run_model.spec,
            run_model.weights,
            rows.hospital_data(dataset.stem),
            seed=seed,
        )
    table = Table(title=f"{dataset.stem}: membership-inference audit (stays here)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("95% CI", justify="right")
    table.add_row("members (training rows)", str(audit.members), "")
    table.add_row("non-members (held-out rows)", str(audit.non_members), "")
    table.add_row("attack ROC AUC", f"{audit.auc:.3f}", _interval(audit.auc_ci))
    table.add_row(
        "attack advantage", f"{audit.advantage:.3f}", _interval(audit.advantage_ci)
    )
    Console().print(table)
    print(audit.verdict)
    if out is not None:
        write_audit(audit, out)
        print(f"written to {out}")


def _task(model: RunModel, task: str | None) -> LearningTask:
    """``--task`` if given, else the task the run recorded."""
    return run_task(model, None if task is None else resolve_task(task))


def _interval(bounds: tuple[float, float]) -> str:
    return f"{bounds[0]:.3f}-{bounds[1]:.3f}"


app.add_typer(budget_app, name="budget")
app.add_typer(audit_app, name="audit")
register_deployment(app)


def main(argv: list[str] | None = None) -> None:
    """Console entry point of ``hospfed-client``."""
    sys.exit(run_app(app, PROG, argv))

"""``model-card.md``: what a run's model is, how it was trained, what it scored.

This module owns the model card every results directory carries
(:func:`model_card`), written from the same dictionary as ``metrics.json``
so the two never disagree: the task (schema and its fingerprint, model,
label kind), the data each hospital trained and was tested on (counts
only), the strategy and rounds, privacy (DP-SGD's epsilon per hospital and
delta, or its absence; SecAgg+ on or off; client-level central DP's
epsilon), the metrics per hospital on its
own test split, and the limits a reader must know. Numbers are copied, not
recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CARD_FILE = "model-card.md"

_LIMITS = (
    "Metrics are each hospital's own held-out test split, scored by the "
    "hospital; they are not covered by differential privacy.",
    "The model has seen only these hospitals' patients; it may not transfer "
    "to another case mix, and per-hospital scores differ (see the table).",
    "Differential privacy bounds what the model updates reveal about any one "
    "training record, at the epsilon shown; it does not make the model fair "
    "or correct.",
)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


_NO_VALIDATION = (
    "This run held out no validation split: settings chosen by comparing these "
    "test scores make them optimistic (hospfed-sim tune chooses on validation)."
)
_VALIDATION = (
    "Scored on each hospital's validation rows (held out of its training rows) "
    "before the last round: choose settings on those; the test rows are read "
    "only where the results say test."
)


def _limits(run: Mapping[str, Any]) -> tuple[str, ...]:
    held = run.get("evaluate_on", "test") != "test"
    return (_VALIDATION if held else _NO_VALIDATION, *_LIMITS)


def _personalised(final: Mapping[str, Any], rows: bool) -> list[str]:
    """The personalised models' table, labelled as such (a run that personalised)."""
    adapted = final.get("personalised")
    if not adapted:
        return []
    table = {
        "evaluate": adapted.get("hospitals") or {},
        "mean": adapted.get("mean"),
        "weighted": adapted.get("weighted"),
    }
    return [
        "",
        "### Personalised models (not the federated model)",
        "",
        "Each hospital adapted a copy of the final global model on its own "
        "training rows and scored it on the same rows as above; the personalised "
        "weights stayed at the hospital.",
        "",
        *_scores(table, rows=False),
    ]


def _scores(final: Mapping[str, Any], *, rows: bool = True) -> list[str]:
    evaluate: Mapping[str, Mapping[str, Any]] = final.get("evaluate") or {}
    train: Mapping[str, Mapping[str, Any]] = final.get("train") or {}
    names = [
        k
        for k in ("accuracy", "auc", "macro_f1", "rmse", "mae", "loss")
        if any(k in row for row in evaluate.values())
    ]
    lines = [
        "| hospital | training rows | scored rows | " + " | ".join(names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for hospital in sorted(set(evaluate) | set(train)):
        scores = evaluate.get(hospital, {})
        counts = (
            train.get(hospital, {}).get("num_examples") if rows else None,
            scores.get("num_examples"),
        )
        cells = [_fmt(None if c is None else int(c)) for c in counts]
        cells += [_fmt(scores.get(k)) for k in names]
        lines.append(f"| {hospital} | " + " | ".join(cells) + " |")
    for label in ("weighted", "mean"):
        row = final.get(label) or {}
        if row:
            cells = [_fmt(row.get(k)) for k in names]
            lines.append(f"| *{label}* | | | " + " | ".join(cells) + " |")
    return lines


def _personal_line(personal: Mapping[str, Any] | None) -> list[str]:
    if not personal:
        return []
    return [
        f"- Personalisation after the last round, at each hospital: "
        f"{personal.get('method')}, {personal.get('local_steps')} steps, learning "
        f"rate {personal.get('learning_rate')}"
        + (
            f", lambda {personal.get('ditto_lambda')}"
            if personal.get("method") == "ditto"
            else ""
        )
        + " (with DP-SGD under the hospital's budget when it trains privately)."
    ]


def _privacy(run: Mapping[str, Any], privacy: Mapping[str, Any]) -> list[str]:
    spent: Mapping[str, float] = privacy.get("epsilon") or {}
    targets = privacy.get("targets") or {}
    lines = []
    if spent:
        delta = targets.get("delta")
        lines.append(
            "- Record-level DP-SGD at each hospital (its own budget, enforced by "
            "its own ledger). Epsilon spent in this run"
            + (f" (delta {delta:g})" if delta else "")
            + ": "
            + ", ".join(f"{h} {e:.3f}" for h, e in sorted(spent.items()))
            + f"; largest {privacy.get('max_epsilon', 0):.3f}."
        )
    non_private = privacy.get("non_private") or []
    if non_private:
        lines.append(f"- Trained without DP: {', '.join(non_private)}.")
    if not spent and not non_private:
        lines.append("- No record-level differential privacy.")
    secagg = run.get("secure_aggregation")
    lines.append(
        "- Secure aggregation (SecAgg+): "
        + (
            f"on ({secagg['num_shares']} shares, reconstruction threshold "
            f"{secagg['reconstruction_threshold']}): the coordinator saw only sums."
            if secagg
            else "off: the coordinator saw each hospital's update."
        )
    )
    central = privacy.get("central")
    if central:
        lines.append(
            f"- Client-level central DP ({central['mechanism']}, at each "
            f"hospital; clipping norm {central['clipping_norm']:g}, noise "
            f"multiplier {central['noise_multiplier']:g}, every hospital weighs "
            f"1): epsilon {central['epsilon']:.3f} at delta {central['delta']:g} "
            f"over {central['rounds']} rounds (sample rate "
            f"{_fmt(central['sample_rate'])}). It bounds what the model reveals "
            "about any one hospital's participation; the coordinator adds the "
            "noise. Training rows are not reported (each hospital reports 1)."
        )
    return lines


def _standardised(run: Mapping[str, Any]) -> str:
    by = run.get("task_standardise", "hospital")
    if by == "federation":
        return (
            "the federation's statistics (combined from each hospital's sums and "
            "counts of its training inputs, sent to the coordinator in the clear "
            "before round 1; recorded in metrics.json as `run.scaling`)"
        )
    if by == "none":
        return "nothing (inputs used as they are)"
    return "each hospital's own training statistics"


def _audit_section(hospitals: list[str]) -> list[str]:
    """The section each hospital fills in locally with ``privacy-check``."""
    if len(hospitals) > 20:
        hospitals = []  # a table of hundreds of virtual hospitals helps nobody
    return [
        "## Membership-inference audit (filled in by each hospital, locally)",
        "",
        "Each hospital can check whether this model reveals which of its patients "
        "it was trained on, without anything leaving the hospital: "
        "`hospfed-client privacy-check SITE.hfd --model RUN_DIR --key SITE.key "
        "--task TASK` (a loss-threshold attack: training rows against held-out "
        "rows, ROC AUC and advantage with 95% bootstrap intervals, a verdict "
        "with the test's power).",
        "",
        "| hospital | attack AUC (95% CI) | advantage (95% CI) | verdict |",
        "|---|---|---|---|",
        *(f"| {h} | | | |" for h in hospitals),
    ]


def model_card(metrics: Mapping[str, Any]) -> str:
    """The model card of a run, from its ``metrics.json`` content.

    Parameters
    ----------
    metrics : Mapping
        What :func:`~hospfed.server.results.write_results` writes to
        ``metrics.json``.

    Returns
    -------
    str
        Markdown.

    """
    run: Mapping[str, Any] = metrics.get("run") or {}
    model: Mapping[str, Any] = run.get("model") or {}
    train: Mapping[str, Any] = run.get("train") or {}
    hidden = model.get("hidden") or []
    lines = [
        f"# Model card: {run.get('title', 'hospfed run')}",
        "",
        f"Status: **{metrics.get('status')}**, {metrics.get('completed_rounds')} of "
        f"{metrics.get('planned_rounds')} rounds"
        + (f" ({metrics['reason']})" if metrics.get("reason") else "")
        + ".",
        "",
        "## Task and model",
        "",
        f"- Learning task: {run.get('task', 'fed-heart-disease')} (fingerprint "
        f"`{str(run.get('task_fingerprint', ''))[:16]}`): the label, features, "
        "split and standardisation every hospital applied; inputs standardised "
        f"by {_standardised(run)}.",
        f"- Data contract: {run.get('data_schema')} (fingerprint "
        f"`{str(run.get('data_schema_fingerprint', ''))[:16]}`).",
        f"- Model: {model.get('input_dim')} inputs, hidden layers "
        f"{', '.join(map(str, hidden)) or 'none'}"
        + (f" ({model.get('activation')})" if hidden else "")
        + f", {model.get('output')} output"
        + (
            f" ({model.get('num_classes')} classes)"
            if model.get("output") == "multiclass"
            else ""
        )
        + f"; initialisation {run.get('initialisation', '-')}.",
        "",
        "## Training",
        "",
        f"- Strategy {run.get('strategy')}, {run.get('num_rounds')} rounds, at "
        f"least {run.get('min_hospitals')} hospitals per round, "
        f"seed {run.get('seed')}.",
        f"- Each round at each hospital: {train.get('local_steps')} local steps of "
        f"{train.get('optimizer')}, batch {train.get('batch_size')}, learning rate "
        f"{train.get('learning_rate')}.",
        *_personal_line(run.get("personal")),
        "",
        "## Privacy",
        "",
        *_privacy(run, metrics.get("privacy") or {}),
        "",
        f"## Results (last completed round, each hospital's "
        f"{(metrics.get('final') or {}).get('split', 'test')} rows)",
        "",
    ]
    final = metrics.get("final")
    counted = not (metrics.get("privacy") or {}).get("central")
    lines += _scores(final, rows=counted) if final else ["No round completed."]
    lines += _personalised(final or {}, counted)
    lines += ["", *_audit_section(sorted((final or {}).get("evaluate") or {}))]
    limits = _limits(run)
    lines += ["", "## Known limits", "", *(f"- {limit}" for limit in limits), ""]
    versions = run.get("versions") or {}
    if versions:
        lines += [
            "## Software",
            "",
            ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
            "",
        ]
    return "\n".join(lines)

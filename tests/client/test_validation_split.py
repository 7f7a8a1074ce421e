"""The validation split: carved from each hospital's training rows only.

Choosing settings on validation is honest only if the validation rows are
training rows held out (never test rows), the test set is the one a run
without validation uses, and nothing about the test rows can change which
rows train or validate. These checks compute the expected membership with
scikit-learn directly, not through the pipeline under test.
"""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from hospfed.client.features import build_inputs, encode_rows
from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.datasets.heart import HOSPITALS, load_clinical_tables
from hospfed.common.errors import ConfigError, DataError
from hospfed.common.task import (
    Feature,
    Label,
    LearningTask,
    Split,
    dumps_task,
    loads_task,
)


def with_validation(task, fraction=0.2, seed=0):
    return replace(
        task,
        split=replace(task.split, validation_fraction=fraction, validation_seed=seed),
    )


@pytest.mark.parametrize("hospital", HOSPITALS)
def test_validation_rows_are_training_rows_and_the_test_set_is_unchanged(hospital):
    table = load_clinical_tables()[hospital]
    plain = encode_rows(table, FED_HEART_TASK, hospital)
    held = encode_rows(table, with_validation(FED_HEART_TASK), hospital)
    np.testing.assert_array_equal(held.test, plain.test)
    assert held.validation is not None
    assert set(held.validation) | set(held.train) == set(plain.train)
    assert not set(held.validation) & set(held.train)
    assert not set(held.validation) & set(held.test)
    expected = round(0.2 * len(plain.train))
    assert len(held.validation) == expected


def test_validation_follows_sklearn_stratified_split_of_the_training_rows():
    table = load_clinical_tables()["cleveland"]
    plain = encode_rows(table, FED_HEART_TASK, "cleveland")
    held = encode_rows(table, with_validation(FED_HEART_TASK, 0.25, 7), "cleveland")
    size = round(0.25 * len(plain.train))
    _, expected = train_test_split(
        plain.train,
        test_size=size,
        random_state=7,
        stratify=plain.labels[plain.train],
    )
    np.testing.assert_array_equal(held.validation, np.sort(expected))
    # stratified: the positive share is kept within one row
    positives = plain.labels[held.validation].sum()
    share = plain.labels[plain.train].mean()
    assert abs(positives - share * size) <= 1


def test_poisoning_test_rows_changes_neither_training_nor_validation_rows():
    table = load_clinical_tables()["hungary"].reset_index(drop=True)
    task = with_validation(FED_HEART_TASK)
    clean = build_inputs(table, task, "hungary")
    rows = encode_rows(table, task, "hungary")
    poisoned = table.copy()
    test_labels = rows.index[rows.test]
    numeric = [f.column for f in task.features if f.kind == "numeric"]
    poisoned.loc[test_labels, numeric] = poisoned.loc[test_labels, numeric] * -50 + 999
    dirty = build_inputs(poisoned, task, "hungary")
    for name in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(getattr(dirty, name), getattr(clean, name))
    assert not np.array_equal(dirty.x_test, clean.x_test)  # the poison is there


def test_standardisation_uses_the_rows_that_train_only():
    table = load_clinical_tables()["va"]
    task = with_validation(FED_HEART_TASK, 0.3)
    data = build_inputs(table, task, "va")
    mean = data.x_train.mean(axis=0)
    assert np.allclose(mean, 0, atol=1e-5)
    assert not np.allclose(data.x_val.mean(axis=0), 0, atol=1e-3)


def test_scored_on_names_the_missing_validation_set():
    table = load_clinical_tables()["va"]
    data = build_inputs(table, FED_HEART_TASK, "va")
    assert data.scored_on("test")[0] is data.x_test
    with pytest.raises(ConfigError, match="holds out no validation set"):
        data.scored_on("validation")
    held = build_inputs(table, with_validation(FED_HEART_TASK), "va")
    assert held.scored_on("validation")[1] is held.y_val


def test_a_task_without_validation_keeps_its_fingerprint_and_round_trips():
    held = with_validation(FED_HEART_TASK, 0.2, 3)
    assert held.fingerprint() != FED_HEART_TASK.fingerprint()
    assert "validation-fraction" not in dumps_task(FED_HEART_TASK)
    assert loads_task(dumps_task(held), fmt="json") == held
    assert loads_task(dumps_task(held, fmt="toml")) == held


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_a_validation_fraction_outside_0_1_is_refused(fraction):
    with pytest.raises(ConfigError, match="validation-fraction"):
        Split(validation_fraction=fraction)


def test_a_continuous_label_and_tiny_hospitals_still_split():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=9), "y": rng.normal(size=9)})
    task = LearningTask(
        name="t",
        schema="s",
        label=Label(column="y", kind="continuous"),
        features=(Feature(column="x"),),
        split=Split(train_fraction=0.5, validation_fraction=0.5),
    )
    rows = encode_rows(frame, task, "h")
    assert len(rows.validation) >= 1 and len(rows.train) >= 1
    tiny = frame.iloc[:3]
    with pytest.raises(DataError, match="cannot lose a validation set"):
        encode_rows(
            tiny,
            replace(task, split=Split(train_fraction=0.34, validation_fraction=0.5)),
            "h",
        )

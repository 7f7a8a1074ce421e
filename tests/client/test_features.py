"""The generic input pipeline: the task file decides, the arrays follow.

The Fed-Heart-Disease task file must build exactly the arrays the hand-coded
FLamby protocol builds (today's numbers do not move), and a task that does
not fit a hospital's data is refused naming the column.
"""

import numpy as np
import pandas as pd
import pytest

from hospfed.client.features import build_inputs
from hospfed.common.datasets import FED_HEART_TASK
from hospfed.common.datasets.heart import (
    HOSPITALS,
    load_clinical_tables,
    prepare_hospital,
)
from hospfed.common.errors import DataError, SchemaError
from hospfed.common.task import Feature, Label, LearningTask, Split


@pytest.mark.parametrize("hospital", HOSPITALS)
def test_the_heart_task_file_builds_exactly_flambys_arrays(hospital):
    table = load_clinical_tables()[hospital]
    expected = prepare_hospital(hospital, table)
    got = build_inputs(table, FED_HEART_TASK, hospital)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name))
        assert getattr(got, name).dtype == np.float32
    assert got.fingerprint() == expected.fingerprint()  # ledgers stay bound
    assert len(FED_HEART_TASK.input_names) == got.num_features == 13


def visits(rows=120, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(20, 90, rows).astype(float),
            "ward": rng.choice(["A", "B", "C"], rows),
            "smoker": rng.integers(0, 2, rows),
            "outcome": rng.integers(0, 2, rows),
            "stay": rng.gamma(2.0, 3.0, rows),
            "grade": rng.choice(["low", "mid", "high"], rows),
        }
    )


def task(label=None, **features):
    return LearningTask(
        name="visits",
        schema="visits",
        label=label or Label(column="outcome"),
        features=(
            Feature(column="age", missing="impute", impute=50.0),
            Feature(column="ward", kind="categorical", levels=("A", "B", "C")),
            Feature(column="smoker", kind="binary"),
        ),
        split=Split(train_fraction=0.75, seed=1),
        **features,
    )


@pytest.mark.parametrize(
    ("label", "kind_check"),
    [
        (Label(column="outcome"), lambda y: set(np.unique(y)) <= {0.0, 1.0}),
        (
            Label(column="grade", kind="multiclass", classes=("low", "mid", "high")),
            lambda y: set(np.unique(y)) <= {0.0, 1.0, 2.0},
        ),
        (Label(column="stay", kind="continuous"), lambda y: len(np.unique(y)) > 50),
    ],
)
def test_each_label_kind_builds_its_targets(label, kind_check):
    frame = visits()
    frame.loc[3, "age"] = np.nan  # imputed, not dropped
    data = build_inputs(frame, task(label), "st-elsewhere")
    assert len(data.y_train) + len(data.y_test) == 120
    assert kind_check(np.concatenate([data.y_train, data.y_test]))
    assert data.num_features == 1 + 3 + 1  # age, ward one-hot (3 levels), smoker
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-6)


def test_a_missing_column_is_refused_naming_it():
    with pytest.raises(SchemaError, match="reads column 'ward'"):
        build_inputs(visits().drop(columns="ward"), task(), "h")


def test_a_level_outside_the_tasks_list_is_refused_without_the_value():
    frame = visits()
    frame.loc[[1, 2], "ward"] = "Z-secret"
    with pytest.raises(
        DataError, match="feature 'ward': 2 values are not among"
    ) as info:
        build_inputs(frame, task(), "h")
    assert "Z-secret" not in str(info.value)


def test_a_label_of_the_wrong_kind_is_refused():
    with pytest.raises(DataError, match="label 'stay': .* values are not among"):
        build_inputs(visits(), task(Label(column="stay")), "h")
    with pytest.raises(DataError, match="label 'grade': the task reads it as numbers"):
        build_inputs(visits(), task(Label(column="grade", kind="continuous")), "h")
    frame = visits()
    frame.loc[0, "smoker"] = 7
    with pytest.raises(DataError, match="feature 'smoker': 1 values"):
        build_inputs(frame, task(), "h")

"""Synthetic rows for a task: prepared like a hospital's, and learnable."""

from __future__ import annotations

import numpy as np
import pytest

from hospfed.client.data import HospitalDataset, open_prepared
from hospfed.client.prepare import prepare_export
from hospfed.client.vault import generate_key_file
from hospfed.simulations.synthetic import synthetic_rows, synthetic_schema
from tests.simulations.own_tasks import own_task


@pytest.mark.parametrize("kind", ["binary", "multiclass", "continuous"])
def test_synthetic_rows_prepare_and_beat_a_constant_predictor(tmp_path, kind):
    from sklearn.linear_model import LinearRegression, LogisticRegression

    task = own_task(kind)
    schema = synthetic_schema(task)
    assert schema.deidentified().name == task.schema
    rows = synthetic_rows(task, 1500, seed=4)
    assert synthetic_rows(task, 1500, seed=4).equals(rows)  # seeded
    raw = tmp_path / "raw.parquet"
    rows.to_parquet(raw, index=False)
    key = generate_key_file(tmp_path / "site.key")
    prepare_export(raw, tmp_path / "site.hfd", schema=schema, key=key)
    prepared = open_prepared(tmp_path / "site.hfd", key)
    data = HospitalDataset(prepared.frame, prepared.schema, "h").inputs(task)
    assert data.num_features == len(task.input_names) == 5
    y_train, y_test = data.y_train, data.y_test
    if kind == "continuous":
        model = LinearRegression().fit(data.x_train, y_train)
        rmse = np.sqrt(np.mean((model.predict(data.x_test) - y_test) ** 2))
        constant = np.sqrt(np.mean((y_train.mean() - y_test) ** 2))
        assert rmse < 0.8 * constant
    else:
        model = LogisticRegression(max_iter=500).fit(data.x_train, y_train)
        accuracy = np.mean(model.predict(data.x_test) == y_test)
        majority = np.max(np.bincount(y_test.astype(int))) / len(y_test)
        assert accuracy > majority + 0.05

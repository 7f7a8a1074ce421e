"""A hospital's model inputs, built from its prepared data by the learning task.

:func:`build_inputs` turns a prepared (de-identified) frame into standardised
training and test arrays exactly as the federation's
:class:`~hospfed.common.task.LearningTask` declares: missing values dropped
or imputed per column, the label mapped to 0/1, a class index or a value,
categorical columns one-hot encoded over the task's levels, each hospital's
own train/test split, and standardisation by the hospital's training
statistics. A task that does not fit the data is refused before anything is
trained, with an error naming the column (never a patient value).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd

from hospfed.common.errors import ConfigError, DataError, SchemaError
from hospfed.common.scaling import InputSums, Scaling
from hospfed.common.task import Feature, Label, LearningTask
from hospfed.common.training import HospitalData

__all__ = [
    "EncodedRows",
    "build_inputs",
    "check_task_fits",
    "encode_rows",
    "input_sums",
]

Floats = npt.NDArray[np.float64]


def check_task_fits(frame: pd.DataFrame, task: LearningTask) -> None:
    """Refuse a task whose columns the data does not have.

    Raises
    ------
    SchemaError
        Naming the first missing column.

    """
    for column in (*(f.column for f in task.features), task.label.column):
        if column not in frame.columns:
            raise SchemaError(
                f"task {task.name!r} reads column {column!r}, which this "
                "hospital's prepared data does not have"
            )


@dataclass(frozen=True)
class EncodedRows:
    """A hospital's complete rows as model inputs, before and after scaling.

    Attributes
    ----------
    index : pandas.Index
        The prepared frame's labels of the rows kept (complete for the task).
    inputs : numpy.ndarray
        float64 encoded inputs, unscaled, one row per kept row.
    labels : numpy.ndarray
        float32 targets of the kept rows.
    train, test : numpy.ndarray
        Positions of the training and test rows among the kept rows.
    validation : numpy.ndarray or None
        Positions of the validation rows, held out of the training rows (a
        task with a validation split; ``train`` then excludes them).
    mean, std : numpy.ndarray or None
        The training statistics inputs are scaled with (None: no scaling).

    """

    index: pd.Index
    inputs: Floats
    labels: npt.NDArray[np.float32]
    train: npt.NDArray[np.int64]
    test: npt.NDArray[np.int64]
    mean: Floats | None
    std: Floats | None
    validation: npt.NDArray[np.int64] | None = None

    def scaled(self) -> npt.NDArray[np.float32]:
        """Every kept row's inputs, scaled with the training statistics."""
        if self.mean is None or self.std is None:
            return self.inputs.astype(np.float32)
        return ((self.inputs - self.mean) / self.std).astype(np.float32)

    def hospital_data(self, hospital: str) -> HospitalData:
        """The training, test and (when held out) validation sets."""
        scaled = self.scaled()
        held = self.validation
        return HospitalData(
            hospital=hospital,
            x_train=scaled[self.train],
            y_train=self.labels[self.train],
            x_test=scaled[self.test],
            y_test=self.labels[self.test],
            x_val=None if held is None else scaled[held],
            y_val=None if held is None else self.labels[held],
        )


def build_inputs(
    frame: pd.DataFrame,
    task: LearningTask,
    hospital: str,
    scaling: Scaling | None = None,
) -> HospitalData:
    """Build one hospital's model inputs from its prepared data.

    Parameters
    ----------
    frame : pandas.DataFrame
        The hospital's prepared (de-identified) rows.
    task : LearningTask
        The federation's task.
    hospital : str
        The hospital's name (for messages).
    scaling : Scaling, optional
        The federation's statistics; required by (and only used with) a
        task that standardises by federation.

    Returns
    -------
    HospitalData
        float32 standardised inputs and labels, split as the task says.

    Raises
    ------
    SchemaError
        If a column the task reads is missing.
    DataError
        If a value does not fit the task (a level not in the task's list, a
        label of the wrong kind, text where numbers are expected), or too few
        rows are left; the message names the column and counts, never values.
    ConfigError
        If the task standardises by federation and ``scaling`` is missing or
        of another width.

    """
    return encode_rows(frame, task, hospital, scaling).hospital_data(hospital)


def input_sums(frame: pd.DataFrame, task: LearningTask, hospital: str) -> InputSums:
    """Sums over the training inputs, encoded but not scaled (federation scaling).

    Raises
    ------
    SchemaError, DataError
        As :func:`build_inputs`.

    """
    rows = _encoded_rows(frame, task, hospital)
    train = rows.inputs[rows.train]
    return InputSums(
        count=len(train),
        sums=tuple(map(float, train.sum(axis=0))),
        squares=tuple(map(float, (train**2).sum(axis=0))),
    )


def encode_rows(
    frame: pd.DataFrame,
    task: LearningTask,
    hospital: str,
    scaling: Scaling | None = None,
) -> EncodedRows:
    """Encode, split and fit the scaling of one hospital's rows (see above)."""
    rows = _encoded_rows(frame, task, hospital)
    if task.standardise == "hospital":
        train = rows.inputs[rows.train]
        mean, std = train.mean(axis=0), train.std(axis=0)
        std[std == 0] = 1.0  # a constant input (one level everywhere) stays 0
        return replace(rows, mean=mean, std=std)
    if task.standardise == "federation":
        width = rows.inputs.shape[1]
        if scaling is None or len(scaling.mean) != width:
            raise ConfigError(
                f"task {task.name!r} standardises with the "
                f"federation's statistics of its {width} inputs, which the "
                "instructions do not carry"
            )
        return replace(rows, mean=np.asarray(scaling.mean), std=np.asarray(scaling.std))
    return rows


def _encoded_rows(
    frame: pd.DataFrame, task: LearningTask, hospital: str
) -> EncodedRows:
    """The kept rows encoded and split, not scaled."""
    check_task_fits(frame, task)
    kept = _complete_rows(frame, task)
    if len(kept) < 2:
        raise DataError(
            f"{hospital}: {len(kept)} of its {len(frame)} rows have every value "
            f"task {task.name!r} reads, fewer than the 2 it needs for a train "
            "and a test set; prepare a larger export"
        )
    labels = _label_values(kept[task.label.column], task.label)
    inputs = np.concatenate(
        [_encoded(kept[f.column], f) for f in task.features], axis=1
    )
    train, test = _split(labels, task)
    validation = None
    if task.split.has_validation:
        train, validation = _hold_out_validation(train, labels, task, hospital)
    return EncodedRows(
        index=kept.index,
        inputs=inputs,
        labels=labels,
        train=train,
        test=test,
        mean=None,
        std=None,
        validation=validation,
    )


def _complete_rows(frame: pd.DataFrame, task: LearningTask) -> pd.DataFrame:
    columns = [f.column for f in task.features] + [task.label.column]
    kept = frame[columns].copy()
    for feature in task.features:
        if feature.missing == "impute":
            kept[feature.column] = kept[feature.column].fillna(feature.impute)
    return kept.dropna(axis=0)


def _label_values(values: pd.Series, label: Label) -> npt.NDArray[np.float32]:
    name = f"label {label.column!r}"
    if label.kind == "continuous":
        return np.asarray(_numbers(values, name), dtype=np.float32)
    if label.kind == "multiclass":
        codes = pd.Index(label.classes).get_indexer(values)
        _refuse_unknown(codes < 0, name, "classes")
        return np.asarray(codes, dtype=np.float32)
    positive = values.isin(label.positive).to_numpy()
    negative = values.isin(label.negative).to_numpy()
    _refuse_unknown(~(positive | negative), name, "'positive' or 'negative' values")
    return np.asarray(positive, dtype=np.float32)


def _encoded(values: pd.Series, feature: Feature) -> Floats:
    name = f"feature {feature.column!r}"
    if feature.kind == "categorical":
        levels = pd.Index(feature.levels)
        codes = levels.get_indexer(values)
        _refuse_unknown(codes < 0, name, "levels")
        kept = levels[1:] if feature.drop_first else levels
        return np.stack(
            [codes == levels.get_loc(level) for level in kept], axis=1
        ).astype(np.float64)
    numbers = _numbers(values, name)
    if feature.kind == "binary":
        _refuse_unknown(~np.isin(numbers, (0.0, 1.0)), name, "values 0 and 1")
    return numbers[:, None]


def _numbers(values: pd.Series, name: str) -> Floats:
    if not (
        pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    ):
        raise DataError(
            f"{name}: the task reads it as numbers but the data holds "
            f"{values.dtype} values; check the task against the schema"
        )
    return np.asarray(values.to_numpy(dtype=np.float64), dtype=np.float64)


def _refuse_unknown(unknown: npt.NDArray[np.bool_], name: str, allowed: str) -> None:
    count = int(unknown.sum())
    if count:
        raise DataError(
            f"{name}: {count} values are not among the task's {allowed}; every "
            "hospital must use the task's coding (values are not shown)"
        )


def _split(
    labels: npt.NDArray[np.float32], task: LearningTask
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    from sklearn.model_selection import train_test_split

    split = task.split
    stratify = (
        labels
        if split.stratify and task.label.kind != "continuous" and _can_stratify(labels)
        else None
    )
    # train_size alone: the test set is the rest (1 - fraction can round up
    # past the row count, e.g. 1 - 0.7 = 0.30000000000000004).
    train, test = train_test_split(
        np.arange(len(labels)),
        train_size=split.train_fraction,
        random_state=split.seed,
        shuffle=True,
        stratify=stratify,
    )
    return np.sort(train), np.sort(test)


def _hold_out_validation(
    train: npt.NDArray[np.int64],
    labels: npt.NDArray[np.float32],
    task: LearningTask,
    hospital: str,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Carve the validation rows out of the training rows (test rows untouched).

    Only the training rows' positions and labels are read, so nothing about
    the test rows can change which rows validate.
    """
    from sklearn.model_selection import train_test_split

    split = task.split
    if len(train) < 2:
        raise DataError(
            f"{hospital}: {len(train)} training rows cannot lose a validation "
            f"set (task {task.name!r}); lower validation-fraction or prepare "
            "a larger export"
        )
    held = labels[train]
    stratify = (
        held
        if split.stratify and task.label.kind != "continuous" and _can_stratify(held)
        else None
    )
    size = max(1, min(len(train) - 1, round(split.validation_fraction * len(train))))
    classes = len(np.unique(held))
    if stratify is not None and min(size, len(train) - size) < classes:
        stratify = None  # too few rows for every class on both sides
    kept, validation = train_test_split(
        train,
        test_size=size,
        random_state=split.validation_seed,
        shuffle=True,
        stratify=stratify,
    )
    return np.sort(kept), np.sort(validation)


def _can_stratify(labels: npt.NDArray[np.float32]) -> bool:
    levels, counts = np.unique(labels, return_counts=True)
    return len(levels) > 1 and bool(np.all(counts > 2))

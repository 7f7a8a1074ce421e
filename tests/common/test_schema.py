import numpy as np
import pandas as pd
import pytest

from hospfed.common.errors import SchemaError
from hospfed.common.heart import CLINICAL_SCHEMA, load_clinical_tables
from hospfed.common.schema import Column, DatasetSchema


@pytest.fixture
def table():
    return load_clinical_tables()["cleveland"].copy()


def test_real_hospital_table_meets_the_contract(table):
    CLINICAL_SCHEMA.validate(table)


def test_missing_column_is_named(table):
    with pytest.raises(SchemaError, match=r"missing columns \['chol'\]"):
        CLINICAL_SCHEMA.validate(table.drop(columns=["chol"]))


def test_unexpected_column_is_named(table):
    table["ssn"] = "123-45-6789"
    with pytest.raises(SchemaError, match=r"unexpected columns \['ssn'\]"):
        CLINICAL_SCHEMA.validate(table)


def test_out_of_range_value_is_named(table):
    table.loc[3, "age"] = 250
    with pytest.raises(SchemaError, match=r"column 'age': 1 values outside \[0, 120\]"):
        CLINICAL_SCHEMA.validate(table)


def test_bad_level_is_named(table):
    table.loc[0, "cp"] = 9
    with pytest.raises(SchemaError, match="column 'cp'.*allowed levels"):
        CLINICAL_SCHEMA.validate(table)


def test_missing_value_in_a_required_column(table):
    table.loc[0, "num"] = np.nan
    with pytest.raises(SchemaError, match="column 'num': 1 missing values"):
        CLINICAL_SCHEMA.validate(table)


def test_text_in_a_numeric_column(table):
    table["chol"] = table["chol"].astype(str)
    with pytest.raises(SchemaError, match="column 'chol': expected numbers"):
        CLINICAL_SCHEMA.validate(table)


def test_fingerprint_is_stable_and_changes_with_the_contract():
    a = DatasetSchema("s", 1, (Column("x", "float"), Column("y", "int", "label")), "y")
    b = DatasetSchema("s", 1, (Column("x", "float"), Column("y", "int", "label")), "y")
    c = DatasetSchema("s", 2, (Column("x", "float"), Column("y", "int", "label")), "y")
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_label_must_be_a_column():
    with pytest.raises(ValueError, match="label 'z' not a column"):
        DatasetSchema("s", 1, (Column("x", "float"),), "z")


def test_whole_numbers_required_for_int_columns():
    schema = DatasetSchema("s", 1, (Column("n", "int", "label"),), "n")
    with pytest.raises(SchemaError, match="expected whole numbers"):
        schema.validate(pd.DataFrame({"n": [1.0, 2.5]}))

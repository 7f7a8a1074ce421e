"""Where a raw CSV is broken: lines, records and fields found from its bytes.

:mod:`hospfed.client.csvscan` counts lines as an editor does and records as
pyarrow reads them; :mod:`hospfed.client.raw` uses it to name the line and
column of a problem, and never a name it does not know from the schema.
"""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import csv as pa_csv

from hospfed.client import csvscan
from hospfed.client.raw import locate_schema_error, read_raw_export
from hospfed.client.vault import generate_key_file
from hospfed.common.datasets.heart_export import hospital_raw_export, write_raw_export
from hospfed.common.datasets.heart_schema import FED_HEART_RAW_SCHEMA
from hospfed.common.errors import DataError, SchemaError

# header; a row; a blank line; a value over two lines; CRLF; a lone CR; no
# final line end.
TRICKY = b'a,b\n1,2\n\n3,"x\ny"\r\n4,"say ""hi"""\r5,6'


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 1 << 20])
def test_records_are_pyarrows_records_on_editor_lines(monkeypatch, tmp_path, chunk):
    monkeypatch.setattr(csvscan, "_CHUNK_BYTES", chunk)
    path = tmp_path / "t.csv"
    path.write_bytes(TRICKY)
    found = [(r.index, r.line, r.closed) for r in csvscan.records(path)]
    assert found == [
        (0, 1, True),
        (1, 2, True),
        (2, 4, True),
        (3, 6, True),
        (4, 7, True),
    ]
    assert [r.end for r in csvscan.records(path)][-1] == len(TRICKY)
    table = pa_csv.read_csv(io.BytesIO(TRICKY))
    assert table.num_rows == 4  # pyarrow agrees: four data records


def test_record_numbers_match_pyarrows_invalid_row_numbers(tmp_path):
    data = b'a,b\n1,2\n\n3,"x\ny"\n4,5,6\n7,8\n'
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    numbers = []

    def handler(row):
        numbers.append(row.number)
        return "skip"

    pa_csv.read_csv(
        io.BytesIO(data),
        read_options=pa_csv.ReadOptions(use_threads=False),
        parse_options=pa_csv.ParseOptions(invalid_row_handler=handler),
    )
    assert numbers == [4]
    assert csvscan.record_line(path, numbers[0] - 1) == 6


def test_an_unclosed_quote_is_the_record_it_opens_in(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'a,b\n1,2\n3,"open\n4,5\n6,7\n')
    assert not csvscan.scan_bytes(path).quotes_balanced
    last = list(csvscan.records(path))[-1]
    assert (last.line, last.closed) == (3, False)


def test_bytes_scan_finds_the_first_nul_and_its_field(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'a,b,c\r\n1,"x, y",3\r\n4,"p,q\x00",6\r\n')
    scan = csvscan.scan_bytes(path)
    assert scan.quotes_balanced and scan.nul is not None
    assert csvscan.byte_position(path, scan.nul) == csvscan.BytePosition(3, 2, 1)
    assert csvscan.header_fields(path) == ["a", "b", "c"]


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 1 << 20])
def test_invalid_utf8_is_found_across_chunk_boundaries(monkeypatch, tmp_path, chunk):
    monkeypatch.setattr(csvscan, "_CHUNK_BYTES", chunk)
    path = tmp_path / "t.csv"
    good = "a,b\nZoë,Æsa €\n".encode()
    path.write_bytes(good + b"x,\xe2\x82\n")  # a cut 3-byte sequence
    assert csvscan.first_invalid_utf8(path) == len(good) + 2
    path.write_bytes(good)
    assert csvscan.first_invalid_utf8(path) is None
    path.write_bytes(good + b"\xe2\x82")  # cut at the very end
    assert csvscan.first_invalid_utf8(path) == len(good)


@pytest.fixture
def raw_csv(tmp_path):
    path = tmp_path / "raw.csv"
    write_raw_export(hospital_raw_export("va", seed=5), path)
    generate_key_file(tmp_path / "site.key")
    return path


def test_a_header_never_shows_a_name_the_schema_does_not_know(raw_csv):
    frame = hospital_raw_export("va", seed=5)
    frame["Sandra Okafor 555-12-3456"] = "x"  # e.g. a first row glued to the header
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    raw_csv.write_text(buffer.getvalue())
    with pytest.raises(DataError) as info:
        read_raw_export(raw_csv, FED_HEART_RAW_SCHEMA)
    message = str(info.value)
    assert "line 1 (the header)" in message and "at fields 28 (names not" in message
    assert "Okafor" not in message and "555" not in message


def test_a_header_naming_a_column_twice_is_refused(raw_csv):
    lines = raw_csv.read_text().splitlines(keepends=True)
    lines[0] = lines[0].replace('"city"', '"ssn"')
    raw_csv.write_text("".join(lines))
    with pytest.raises(
        DataError, match=r"line 1 \(the header\): names \['ssn'\] more than once"
    ):
        read_raw_export(raw_csv, FED_HEART_RAW_SCHEMA)


def test_a_byte_order_mark_and_an_empty_number_column_read_fine(raw_csv):
    frame = hospital_raw_export("va", seed=5)
    frame["ca"] = float("nan")  # all missing: pyarrow alone would infer "null"
    write_raw_export(frame, raw_csv)
    raw_csv.write_bytes(b"\xef\xbb\xbf" + raw_csv.read_bytes())
    read = read_raw_export(raw_csv, FED_HEART_RAW_SCHEMA)
    assert list(read.columns) == list(frame.columns)
    assert read["ca"].dtype == "float64" and read["ca"].isna().all()
    assert read["age"].dtype == "float64"
    FED_HEART_RAW_SCHEMA.validate(read)


def test_a_parquet_contract_error_names_the_row(tmp_path):
    frame = hospital_raw_export("va", seed=5)
    frame.loc[41, "zip"] = "9080"  # one digit short
    path = tmp_path / "raw.parquet"
    frame.to_parquet(path)
    read = read_raw_export(path, FED_HEART_RAW_SCHEMA)
    with pytest.raises(SchemaError) as info:
        FED_HEART_RAW_SCHEMA.validate(read)
    located = str(locate_schema_error(path, read, FED_HEART_RAW_SCHEMA, info.value))
    assert "row 42, column 9 'zip'" in located and "9080" not in located


def test_a_column_of_the_wrong_type_names_no_row(tmp_path):
    frame = hospital_raw_export("va", seed=5)
    frame["mrn"] = pd.array(range(len(frame)), dtype="int64")
    path = tmp_path / "raw.parquet"
    pq.write_table(pa.Table.from_pandas(frame), path)
    read = read_raw_export(path, FED_HEART_RAW_SCHEMA)
    with pytest.raises(SchemaError) as info:
        FED_HEART_RAW_SCHEMA.validate(read)
    located = str(locate_schema_error(path, read, FED_HEART_RAW_SCHEMA, info.value))
    assert located.startswith(f"raw export {path}: column 'mrn': expected text")

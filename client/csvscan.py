r"""Where things are in a CSV file, found from its bytes: lines, records, fields.

pyarrow's CSV reader says *what* is wrong with a file but not in a form that
can be shown (its messages quote the row) nor, when it reads in parallel,
*where*. This module finds where, by reading the bytes itself, without
pyarrow: :func:`scan_bytes` (one fast pass: the first NUL byte, and whether
every quote is closed), :func:`first_invalid_utf8`, :func:`records` (the
file's records as pyarrow reads them: blank lines skipped, a quoted value
may span lines) and from those the line of a record (:func:`record_line`),
of a byte and the field it is in (:func:`byte_position`), and the header's
field names (:func:`header_fields`). Lines are counted as an editor counts
them, from 1 (``\n``, ``\r\n`` and ``\r`` each end one). Nothing here reads
a value into a message: callers get numbers.

Quotes are read as in RFC 4180 (a quoted value may hold ``""`` and line
breaks); a file with a stray quote inside an unquoted value is one whose
quotes do not balance, which is reported as such.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BytePosition",
    "ByteScan",
    "Record",
    "byte_position",
    "first_invalid_utf8",
    "header_fields",
    "record_line",
    "records",
    "scan_bytes",
]

_CHUNK_BYTES = 1 << 20
_QUOTE, _COMMA = ord('"'), ord(",")


@dataclass(frozen=True)
class ByteScan:
    """What one pass over the bytes found.

    Attributes
    ----------
    nul : int or None
        Offset of the first NUL byte.
    quotes_balanced : bool
        Whether the file has an even number of ``"`` (every quoted value
        closed, every quote inside one doubled).

    """

    nul: int | None
    quotes_balanced: bool


def scan_bytes(path: Path) -> ByteScan:
    """Look for NUL bytes and unbalanced quotes in one pass (memchr speed)."""
    nul, quotes, offset = None, 0, 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            quotes += chunk.count(b'"')
            if nul is None and (at := chunk.find(b"\0")) >= 0:
                nul = offset + at
            offset += len(chunk)
    return ByteScan(nul, quotes % 2 == 0)


def first_invalid_utf8(path: Path) -> int | None:
    """Offset of the first byte that does not start valid UTF-8, if any."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(_CHUNK_BYTES)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:
                held_back = len(error.object) - len(chunk)  # from the last chunk
                return max(offset - held_back + error.start, 0)
            if not chunk:
                return None
            offset += len(chunk)


@dataclass(frozen=True)
class Record:
    """One record (row) of a CSV file.

    Attributes
    ----------
    index : int
        0 for the header, then 1, 2, ... for the data rows.
    line : int
        The line it starts on.
    start, end : int
        Its bytes, line end included.
    closed : bool
        False for a last record whose quote is never closed.

    """

    index: int
    line: int
    start: int
    end: int
    closed: bool


def records(path: Path) -> Iterator[Record]:
    """The file's records, as pyarrow reads them (blank lines skipped).

    A record goes on over the next line while it has an odd number of
    quotes (a quoted value holding a line break).
    """
    index = line = offset = first = 0
    start: int | None = None
    quoted = False
    for text in _lines(path):
        line += 1
        if start is None:
            if not text.strip(b"\r\n"):
                offset += len(text)
                continue
            start, first = offset, line
        offset += len(text)
        quoted ^= text.count(b'"') % 2 == 1
        if not quoted:
            yield Record(index, first, start, offset, closed=True)
            index, start = index + 1, None
    if start is not None:
        yield Record(index, first, start, offset, closed=False)


def _lines(path: Path) -> Iterator[bytes]:
    rest = b""
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            lines = (rest + chunk).splitlines(keepends=True)
            # A last line without "\n" may go on (or be "\r" before "\n").
            rest = lines.pop() if not lines[-1].endswith(b"\n") else b""
            yield from lines
    if rest:
        yield rest


def record_line(path: Path, index: int) -> int | None:
    """The line record ``index`` starts on (0 is the header), if it exists."""
    for record in records(path):
        if record.index == index:
            return record.line
    return None


@dataclass(frozen=True)
class BytePosition:
    """Where a byte is: its line, its record and the field it is in (0-based)."""

    line: int
    record: int
    field: int


def byte_position(path: Path, offset: int) -> BytePosition | None:
    """The line, record and field of the byte at ``offset``."""
    for record in records(path):
        if record.end > offset:
            break
    else:
        return None
    with path.open("rb") as handle:
        handle.seek(record.start)
        before = handle.read(offset - record.start)
    breaks = before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n")
    return BytePosition(record.line + breaks, record.index, _field_index(before))


def _field_index(before: bytes) -> int:
    field, quoted = 0, False
    for byte in before:
        if byte == _QUOTE:
            quoted = not quoted
        elif byte == _COMMA and not quoted:
            field += 1
    return field


def header_fields(path: Path) -> list[str]:
    """The first record's fields (undecodable bytes replaced).

    They are the column names only if the file has a header: a caller shows
    one only if it is a name it knows.
    """
    header = next(records(path), None)
    if header is None:
        return []
    with path.open("rb") as handle:
        handle.seek(header.start)
        text = handle.read(header.end - header.start).decode("utf-8", "replace")
    try:
        return next(csv.reader(io.StringIO(text.removeprefix("\ufeff"))), [])
    except csv.Error:
        return []

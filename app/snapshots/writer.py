"""A row-at-a-time writer per export format, so one pass over the items fills every file."""

from typing import BinaryIO

import orjson

from app.snapshots.formats import _DOCUMENT_BUILDERS, _JSON_ARRAY_FORMATS, ExportRow, _check_format, can_express


class RowWriter:
    """Writes rows of one format to one file; close() finishes a JSON array."""

    def __init__(self, fmt: str, out: BinaryIO) -> None:
        _check_format(fmt)
        self.fmt = fmt
        self.out = out
        self.rows = 0
        self._build = _DOCUMENT_BUILDERS[fmt]
        self._as_array = fmt in _JSON_ARRAY_FORMATS
        self._closed = False
        if self._as_array:
            out.write(b"[")

    def write(self, row: ExportRow) -> None:
        if not can_express(self.fmt, row):
            raise ValueError(f"row {self.rows + 1} cannot be written as {self.fmt}; filter rows with can_express first")
        encoded = orjson.dumps(self._build(row))
        if self._as_array:
            self.out.write(b",\n" if self.rows else b"\n")
            self.out.write(encoded)
        else:
            self.out.write(encoded + b"\n")
        self.rows += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._as_array:
            self.out.write(b"\n]\n")


def open_writer(fmt: str, out: BinaryIO) -> RowWriter:
    return RowWriter(fmt, out)

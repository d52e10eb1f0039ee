"""Moving Arrow tables in and out of the server fast: a spine goes up as PostgreSQL's binary COPY
format built column-wise with numpy and Arrow (no Python loop per row), results come down
as CSV from ``COPY (...) TO STDOUT`` parsed by Arrow's CSV reader with the types the server
describes.
"""

from __future__ import annotations

import io
import struct
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import DefinitionError

# Microseconds (and days) between the Unix epoch and PostgreSQL's, 2000-01-01.
PG_EPOCH_US = 946_684_800_000_000
PG_EPOCH_DAYS = 10_957

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)


def sql_type(t: pa.DataType) -> str:
    """The SQL type a spine column of Arrow type ``t`` is uploaded as."""
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "INTEGER" if t.bit_width <= 32 and pa.types.is_signed_integer(t) else "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE PRECISION"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "TEXT"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_date32(t) or pa.types.is_date64(t):
        return "DATE"
    if pa.types.is_dictionary(t):
        return sql_type(t.value_type)
    raise DefinitionError(f"cannot upload a spine column of type {t}: use numbers, text, booleans, dates or timestamps")


def _fixed(values: np.ndarray, valid: np.ndarray, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """Per row, a field of ``width`` big-endian bytes (``values`` already big-endian) behind its
    length, or only the length -1 where not ``valid``: the bytes and each row's offset."""
    n = len(values)
    records = np.empty((n, 4 + width), dtype=np.uint8)
    records[:, :4] = np.frombuffer(struct.pack(">i", width), dtype=np.uint8)
    records[:, 4:] = values.view(np.uint8).reshape(n, width)
    if valid.all():
        return records.reshape(-1), np.arange(n + 1, dtype=np.int64) * (4 + width)
    records[~valid, :4] = np.frombuffer(struct.pack(">i", -1), dtype=np.uint8)
    keep = np.ones((n, 4 + width), dtype=bool)
    keep[~valid, 4:] = False
    lengths = np.where(valid, 4 + width, 4)
    return records[keep], np.concatenate([[0], np.cumsum(lengths)])


def _strings(column: pa.Array) -> Tuple[np.ndarray, np.ndarray]:
    """Per row, a text field (length, UTF-8 bytes), or the length -1 for NULL."""
    column = pc.cast(column, pa.large_string())
    n = len(column)
    valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    # A NULL slot may still span bytes in Arrow: filled, it spans none.
    column = pc.fill_null(column, "")
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64)[column.offset : column.offset + n + 1]
    data = column.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]]
    lengths = np.diff(offsets)
    starts = offsets[:-1] - offsets[0] + 4 * np.arange(n)  # where each row's field begins
    out = np.empty(len(data) + 4 * n, dtype=np.uint8)
    prefix = np.where(valid, lengths, -1).astype(">i4").view(np.uint8).reshape(n, 4)
    out[(starts[:, None] + np.arange(4)).reshape(-1)] = prefix.reshape(-1)
    rows = np.repeat(np.arange(n), lengths)
    out[np.arange(len(data)) + 4 * (rows + 1)] = data
    return out, np.concatenate([starts, [len(out)]])


def _field(column: pa.Array) -> Tuple[np.ndarray, np.ndarray]:
    """One column's fields in the binary COPY format, with each row's offset."""
    t = column.type
    if pa.types.is_dictionary(t):
        column = column.dictionary_decode()
        t = column.type
    valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _strings(column)
    if pa.types.is_boolean(t):
        values = np.asarray(column.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.uint8)
        return _fixed(values, valid, 1)
    if pa.types.is_integer(t):
        wide = sql_type(t) == "BIGINT"
        values = np.asarray(column.fill_null(0).to_numpy(zero_copy_only=False))
        return _fixed(values.astype(">i8" if wide else ">i4"), valid, 8 if wide else 4)
    if pa.types.is_floating(t):
        values = np.asarray(column.fill_null(0).to_numpy(zero_copy_only=False))
        return _fixed(values.astype(">f8"), valid, 8)
    if pa.types.is_timestamp(t):
        us = pc.cast(micros_of(column), pa.int64()).fill_null(0)
        values = np.asarray(us.to_numpy(zero_copy_only=False)) - PG_EPOCH_US
        return _fixed(values.astype(">i8"), valid, 8)
    if pa.types.is_date32(t) or pa.types.is_date64(t):
        days = pc.cast(pc.cast(column, pa.date32()), pa.int32()).fill_null(0)
        values = np.asarray(days.to_numpy(zero_copy_only=False)).astype(np.int64) - PG_EPOCH_DAYS
        return _fixed(values.astype(">i4"), valid, 4)
    raise DefinitionError(f"cannot upload a spine column of type {t}")


def micros_of(column):
    """A timestamp column in microseconds (finer units truncated, as PostgreSQL keeps µs)."""
    return pc.cast(column, pa.timestamp("us", tz=column.type.tz), safe=False)


def binary_copy(table: pa.Table) -> bytes:
    """``table``'s rows in PostgreSQL's binary COPY format, header and trailer included."""
    table = table.combine_chunks()
    n = table.num_rows
    if n == 0:
        return HEADER + TRAILER
    count = np.full(n, len(table.columns), dtype=">i2").view(np.uint8)
    parts: List[pa.Array] = [_as_binary(count, np.arange(n + 1, dtype=np.int64) * 2)]
    for column in table.columns:
        chunk = column.chunk(0) if column.num_chunks else pa.array([], column.type)
        parts.append(_as_binary(*_field(chunk)))
    rows = pc.binary_join_element_wise(*parts, pa.scalar(b"", pa.large_binary()))
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64)[rows.offset : rows.offset + n + 1]
    body = rows.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]
    return HEADER + body + TRAILER


def _as_binary(data: np.ndarray, offsets: np.ndarray) -> pa.Array:
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(offsets) - 1, [None, pa.py_buffer(offsets.astype(np.int64)), pa.py_buffer(data)]
    )


# Result columns: PostgreSQL type OIDs -> Arrow types (arrays are parsed after reading).
SCALARS: Dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    700: pa.float32(),
    701: pa.float64(),
    1700: pa.float64(),
    25: pa.string(),
    1043: pa.string(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
}
ARRAYS: Dict[int, pa.DataType] = {
    1115: pa.timestamp("us"),
    1185: pa.timestamp("us", tz="UTC"),
    1182: pa.date32(),
    1000: pa.bool_(),
    1016: pa.int64(),
    1005: pa.int16(),
    1007: pa.int32(),
    1021: pa.float32(),
    1022: pa.float64(),
    1231: pa.float64(),
    1009: pa.string(),
    1015: pa.string(),
}


def read_csv(data: bytes, names: Sequence[str], oids: Sequence[int]) -> pa.Table:
    """The CSV of ``COPY (...) TO STDOUT WITH (FORMAT csv)`` (no header) as an Arrow table
    with the described types: an unquoted empty field is NULL, a quoted one an empty string."""
    types = {n: SCALARS.get(o, pa.string()) for n, o in zip(names, oids)}
    options = pacsv.ConvertOptions(
        column_types=types,
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=["t"],
        false_values=["f"],
        timestamp_parsers=["%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M:%S", pacsv.ISO8601],
    )
    read = pacsv.ReadOptions(column_names=list(names), block_size=16 << 20)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    if not data:
        return pa.table({n: pa.array([], t) for n, t in types.items()})
    try:
        table = pacsv.read_csv(io.BytesIO(data), read_options=read, parse_options=parse, convert_options=options)
    except pa.ArrowInvalid:
        # 'infinity' and '-infinity' timestamps (valid outside event times): NaT, as pandas has no infinite times.
        as_text = {n: (pa.string() if pa.types.is_timestamp(t) else t) for n, t in types.items()}
        options.column_types = as_text
        table = pacsv.read_csv(io.BytesIO(data), read_options=read, parse_options=parse, convert_options=options)
        for name, t in types.items():
            if pa.types.is_timestamp(t):
                text = table.column(name)
                finite = pc.if_else(pc.is_in(text, pa.array(["infinity", "-infinity"])), None, text)
                i = table.column_names.index(name)
                table = table.set_column(i, name, pc.cast(pc.cast(finite, pa.timestamp("us")), t) if t.tz is None
                                         else pc.strptime(finite, "%Y-%m-%d %H:%M:%S%z", "us").cast(t))
    for i, (name, oid) in enumerate(zip(names, oids)):
        if oid in ARRAYS:
            table = table.set_column(i, name, parse_arrays(table.column(name), ARRAYS[oid]))
    return table


def parse_arrays(column: pa.ChunkedArray, item: pa.DataType) -> pa.Array:
    """PostgreSQL's text form of one-dimensional arrays (``{1,2,3}``) as an Arrow list column."""
    out = []
    for text in column.to_pylist():
        if text is None:
            out.append(None)
            continue
        inner = text[1:-1]
        items = _split_array(inner) if inner else []
        out.append([None if v is None else _scalar(v, item) for v in items])
    return pa.array(out, pa.list_(item))


def _split_array(inner: str) -> List[object]:
    items: List[object] = []
    i, n = 0, len(inner)
    while i < n:
        if inner[i] == '"':
            j, buf = i + 1, []
            while inner[j] != '"':
                if inner[j] == "\\":
                    j += 1
                buf.append(inner[j])
                j += 1
            items.append("".join(buf))
            i = j + 2
        else:
            j = inner.find(",", i)
            j = n if j < 0 else j
            token = inner[i:j]
            items.append(None if token == "NULL" else token)
            i = j + 1
    return items


def _scalar(text: object, item: pa.DataType) -> object:
    if pa.types.is_timestamp(item) or pa.types.is_date32(item):
        return None if str(text) in ("infinity", "-infinity") else pa.scalar(str(text)).cast(item).as_py()
    if pa.types.is_integer(item):
        return int(str(text))
    if pa.types.is_floating(item):
        return float(str(text))
    if pa.types.is_boolean(item):
        return text == "t"
    return text

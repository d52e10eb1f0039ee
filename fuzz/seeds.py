#!/usr/bin/env python3
"""Writes the fuzzers' starting corpora (fuzz/corpus/<target>/seed-*) and the SQL dictionary.

  sql_statement  every statement and query of sqllogictest/ and the spec's examples.slt
  copy_rows      CSV, text and binary COPY data for the harness's table, under varied options
  wire_messages  SSL request, startup, cancel, and simple and extended protocol exchanges

The fuzzers grow these corpora; `cargo fuzz cmin` keeps them small (docs/reliability.md).
"""
import hashlib
import struct
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent


def save(target: str, data: bytes):
    out = FUZZ / "corpus" / target
    out.mkdir(parents=True, exist_ok=True)
    (out / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)


def slt_statements(path: Path):
    """The SQL of each `statement` and `query` record: the lines up to the blank line or ----."""
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith(("statement", "query")):
            sql = []
            i += 1
            while i < len(lines) and lines[i].strip() and lines[i] != "----":
                sql.append(lines[i])
                i += 1
            yield "\n".join(sql)
        i += 1


def sql_seeds():
    files = sorted((ROOT / "sqllogictest").rglob("*.slt")) + [ROOT.parent / "shared" / "spec" / "examples.slt"]
    words = set()
    for path in files:
        for sql in slt_statements(path):
            save("sql_statement", sql.encode())
            words.update(w.upper() for w in sql.replace("(", " ").replace(")", " ").split() if w.isalpha())
    extra = ["ASOF", "MATCH_CONDITION", "USING", "WINDOW", "SLIDING", "TUMBLING", "INTERVAL", "FEATURE",
             "CHECKPOINT", "COPY", "STDIN", "STDOUT", "FORMAT", "CSV", "HEADER", ">=", "<=", "<>", "::", "'", ";", "$1"]
    with open(FUZZ / "sql.dict", "w") as f:
        for w in sorted(words | set(extra)):
            f.write('"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"\n')


# The harness's table: card BIGINT, amt DOUBLE, ok BOOLEAN, code VARCHAR(4), ts TIMESTAMP NOT NULL,
# day DATE, price NUMERIC(10,2), raw BYTEA, n SMALLINT, at TIMESTAMPTZ, r REAL, i INTEGER, note TEXT.
CSV_ROWS = [
    '1,10.5,true,abc,2024-01-01 09:00:00,2024-01-01,12.34,\\x00ff,3,2024-01-01 09:00:00+02,1.5,7,"a, ""quoted"" note"',
    '2,,f,,2024-01-01 10:00:00.123456,,,,,,,,',
    '-9223372036854775808,1e308,yes,"x\ny",2024-02-29 23:59:59,2024-02-29,-99999999.99,,32767,2024-01-01T00:00:00Z,-0,2147483647,""',
]
TEXT_ROWS = [
    "1\t10.5\tt\tabc\t2024-01-01 09:00:00\t2024-01-01\t12.34\t\\\\x00ff\t3\t2024-01-01 09:00:00+02\t1.5\t7\ttab\\there",
    "2\t\\N\tf\t\\N\t2024-01-01 10:00:00\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N",
]


def binary_copy(rows):
    """PostgreSQL binary COPY of the first five columns (card, amt, ok, code, ts)."""
    out = b"PGCOPY\n\xff\r\n\0" + struct.pack("!ii", 0, 0)
    for card, amt, ok, code, ts in rows:
        fields = [struct.pack("!q", card), struct.pack("!d", amt) if amt is not None else None,
                  struct.pack("!?", ok), code.encode() if code is not None else None, struct.pack("!q", ts)]
        out += struct.pack("!h", len(fields))
        for f in fields:
            out += struct.pack("!i", -1) if f is None else struct.pack("!i", len(f)) + f
    return out + struct.pack("!h", -1)


def copy_seeds():
    csv = "\n".join(CSV_ROWS).encode() + b"\n"
    text = "\n".join(TEXT_ROWS).encode() + b"\n"
    header_csv = b"card,amt,ok,code,ts,day,price,raw,n,at,r,i,note\n" + csv
    five = b"1,2.5,true,ab,2024-01-01 00:00:00\n2,,false,,2024-01-02 00:00:00\n"
    binary = binary_copy([(1, 2.5, True, "ab", 757382400000000), (2, None, False, None, 0)])
    for options, data in [(0b00000001, csv), (0b00000000, text), (0b00000101, header_csv),
                          (0b01000001, five), (0b01000011, binary), (0b01000010, binary),
                          (0b00010001, csv.replace(b",,", b",NULL,")), (0b00001000, text.replace(b"\t", b"|")),
                          (0b00100001, csv), (0b10000001, csv), (0b00000000, text + b"\\.\nignored\n")]:
        for cut in (0, 7, len(data) // 2, len(data)):
            save("copy_rows", bytes([options, cut >> 8 & 0xFF, cut & 0xFF]) + data)


def message(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("!i", len(body) + 4) + body


def cstr(s: str) -> bytes:
    return s.encode() + b"\0"


def wire_seeds():
    startup_body = struct.pack("!i", 196608) + cstr("user") + cstr("alice") + cstr("database") + cstr("asofdb") + b"\0"
    startup = struct.pack("!i", len(startup_body) + 4) + startup_body
    ssl = struct.pack("!ii", 8, 80877103)
    cancel = struct.pack("!iiii", 16, 80877102, 1234, 5678)
    query = message(b"Q", cstr("SELECT 1"))
    parse = message(b"P", cstr("s1") + cstr("SELECT $1::BIGINT") + struct.pack("!hi", 1, 20))
    bind = message(b"B", cstr("p1") + cstr("s1") + struct.pack("!hh", 1, 1) + struct.pack("!hi", 1, 8)
                   + struct.pack("!q", 42) + struct.pack("!hh", 1, 1))
    describe = message(b"D", b"S" + cstr("s1"))
    execute = message(b"E", cstr("p1") + struct.pack("!i", 0))
    close = message(b"C", b"P" + cstr("p1"))
    sync, flush, terminate = message(b"S", b""), message(b"H", b""), message(b"X", b"")
    copy = message(b"d", b"1,2\n") + message(b"c", b"") + message(b"f", cstr("stop"))
    password = message(b"p", cstr("secret"))
    sasl = message(b"p", cstr("SCRAM-SHA-256") + struct.pack("!i", 5) + b"n,,n=")
    for data in [ssl + startup + query, startup + query + terminate, cancel,
                 startup + parse + bind + describe + execute + close + sync,
                 startup + parse + flush + bind + execute + sync + query, startup + copy + sync,
                 startup + password, startup + sasl, ssl + startup + parse + sync + terminate]:
        save("wire_messages", data)


if __name__ == "__main__":
    sql_seeds()
    copy_seeds()
    wire_seeds()
    for target in ("sql_statement", "copy_rows", "wire_messages"):
        print(target, len(list((FUZZ / "corpus" / target).iterdir())), "seeds")

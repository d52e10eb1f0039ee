"""A connection to an asofdb server: tables as expressions, features created from them,
point-in-time training sets and online values as DataFrames."""

from __future__ import annotations

import uuid
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa

from . import transfer
from .errors import DefinitionError, ServerError, from_driver
from .expr import ASOFDB
from .feature import FeatureExpr, FeatureFunction, FeatureSpec, Table


def connect(dsn: str = "", **kwargs: Any) -> "Database":
    """Connects to an asofdb server: ``dsn`` as libpq takes it
    (``"postgresql://asofdb@127.0.0.1:5433/asofdb"``), or keywords (``host=``, ``port=``, ...)."""
    try:
        conn = psycopg.connect(dsn, autocommit=True, **kwargs)
    except psycopg.Error as e:
        raise from_driver(e) from None
    return Database(conn)


class Database:
    """One connection (not for several threads at once); ``with`` closes it."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def execute(self, statement: str, params: Optional[Sequence[Any]] = None) -> List[Tuple[Any, ...]]:
        """Runs one statement; its rows, if it returns any."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []
        except psycopg.Error as e:
            raise from_driver(e, statement) from None

    def sql(self, query: str, params: Optional[Sequence[Any]] = None) -> pd.DataFrame:
        """A query's rows as a DataFrame."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(query, params)
                names = [c.name for c in cur.description or []]
                return pd.DataFrame(cur.fetchall(), columns=names)
        except psycopg.Error as e:
            raise from_driver(e, query) from None

    def table(self, name: str) -> Table:
        """An expression over event table ``name``, with its columns and event-time column
        (so a definition naming a column it lacks fails before anything is sent)."""
        rows = self.execute("SELECT event_time FROM asofdb.tables WHERE name = %s", [name])
        if not rows:
            raise ServerError(f'relation "{name}" does not exist', "42P01")
        columns = [
            r[0]
            for r in self.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
                [name],
            )
        ]
        return Table(name, columns, rows[0][0])

    def _spec(self, expr: Union[FeatureExpr, FeatureFunction], name: str) -> FeatureSpec:
        if isinstance(expr, FeatureFunction):
            source = expr.table
            if isinstance(source, str):
                source = self.table(source)
            elif isinstance(source, Table) and source._columns is None:
                # Declared without a server: its columns and event time from this one, its filter kept.
                known = self.table(source.table_name)
                source = Table(source.table_name, known._columns, known.event_time, source._where)
            spec = expr.spec(source, named=False)
        elif isinstance(expr, FeatureExpr):
            spec = expr.spec
        else:
            raise DefinitionError(
                f"a feature is defined by an aggregate of grouped rows, as tx.groupby('k')['v'].max(), not {type(expr).__name__}"
            )
        if spec.event_time is None:
            known = self.execute("SELECT event_time FROM asofdb.tables WHERE name = %s", [spec.table])
            if known and known[0][0] is None:
                raise DefinitionError(f"table {spec.table!r} has no event_time column: a feature needs an event table")
        return spec.named(name)

    def create_feature(
        self,
        name: Union[str, FeatureFunction],
        expr: Union[FeatureExpr, FeatureFunction, None] = None,
        replace: bool = False,
    ) -> str:
        """Creates (``replace=True``: creates or replaces) feature ``name`` from ``expr``; or
        from an ``@asofdb.feature`` function alone, under its name. Returns the statement."""
        if isinstance(name, FeatureFunction) and expr is None:
            name, expr = name.name, name
        if not isinstance(name, str) or expr is None:
            raise DefinitionError("create_feature(name, expression) or create_feature(feature_function)")
        statement = self._spec(expr, name).create_sql(name, replace)
        self.execute(statement)
        return statement

    def features(self) -> pd.DataFrame:
        """Every feature: name, source table, keys, window, definition."""
        return self.sql("SELECT name, source_table, keys, \"window\", definition FROM asofdb.features ORDER BY name")

    def drop_feature(self, name: Union[str, FeatureFunction], if_exists: bool = False) -> None:
        name = name.name if isinstance(name, FeatureFunction) else name
        self.execute(f"DROP FEATURE {'IF EXISTS ' if if_exists else ''}{ASOFDB.ident(name)}")

    def _feature_columns(self, name: str) -> Tuple[List[str], List[str]]:
        """A feature's key columns and value columns."""
        rows = self.execute("SELECT keys, source_table FROM asofdb.features WHERE name = %s", [name])
        if not rows:
            raise ServerError(f'feature "{name}" does not exist', "42704")
        keys = [k.strip() for k in rows[0][0].split(",")]
        times = self.execute("SELECT event_time, ingest_time FROM asofdb.tables WHERE name = %s", [rows[0][1]])
        hidden = set(keys) | {t for t in (times[0] if times else ()) if t}
        columns = [
            r[0]
            for r in self.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
                [name],
            )
        ]
        return keys, [c for c in columns if c not in hidden]

    def training_set(
        self,
        spine: Union[pd.DataFrame, pa.Table],
        features: Sequence[Union[str, FeatureFunction]],
        time: str = "inference_ts",
        strict: bool = True,
        as_arrow: bool = False,
    ) -> Union[pd.DataFrame, pa.Table]:
        """The spine's rows, in order and with their own columns and types, plus each
        feature's values evaluated at ``spine[time]`` (strictly before it with ``strict``, as
        ``ASOF LEFT JOIN ... s.time > f.ts``; at or before it otherwise), by one query on the
        server over a temporary copy of the spine (uploaded with binary COPY)."""
        spine_columns = list(spine.column_names if isinstance(spine, pa.Table) else spine.columns)
        if time not in spine_columns:
            raise DefinitionError(f"the spine has no column {time!r}")
        names = [f.name if isinstance(f, FeatureFunction) else f for f in features]
        if not names:
            raise DefinitionError("a training set needs at least one feature")
        described = [(n, *self._feature_columns(n)) for n in names]
        values = [v for _, _, vs in described for v in vs]
        clash = next((v for v in values if values.count(v) > 1 or v in spine_columns), None)
        if clash:
            raise DefinitionError(f"two columns of the training set would be named {clash!r}: rename a value")
        for n, keys, _ in described:
            absent = [k for k in keys if k not in spine_columns]
            if absent:
                raise DefinitionError(f"the spine lacks key column(s) {', '.join(absent)} of feature {n!r}")
        # Only the keys and the time go up (with a row number): the values come back by row
        # number and are attached to the spine here, whose other columns never leave.
        used = sorted({k for _, keys, _ in described for k in keys} | {time})
        if isinstance(spine, pa.Table):
            upload = spine.select(used)
        else:
            upload = pa.Table.from_pandas(spine[used], preserve_index=False)
        upload = upload.append_column("__row", pa.array(range(upload.num_rows), pa.int64()))
        temp = f"__asofdb_spine_{uuid.uuid4().hex}"
        q = ASOFDB.ident
        columns = ", ".join(f"{q(f.name)} {transfer.sql_type(f.type)}" for f in upload.schema)
        self.execute(f"CREATE TEMPORARY TABLE {q(temp)} ({columns})")
        try:
            try:
                with self.conn.cursor() as cur, cur.copy(f"COPY {q(temp)} FROM STDIN (FORMAT binary)") as copy:
                    copy.write(transfer.binary_copy(upload))
            except psycopg.Error as e:
                raise from_driver(e, "COPY (spine)") from None
            op = ">" if strict else ">="
            select = ["s.__row"] + [f"f{i}.{q(v)}" for i, (_, _, vs) in enumerate(described) for v in vs]
            joins = []
            for i, (n, keys, _) in enumerate(described):
                on = " AND ".join([f"s.{q(k)} = f{i}.{q(k)}" for k in keys] + [f"s.{q(time)} {op} f{i}.{q(self._time_of(n))}"])
                joins.append(f"ASOF LEFT JOIN {q(n)} f{i} ON {on}")
            # No ORDER BY: the joins keep the spine's order as uploaded, and `in_row_order`
            # checks it (a sort on the server would wait for every row and use one core).
            query = f"SELECT {', '.join(select)} FROM {q(temp)} s {' '.join(joins)}"
            values_table = in_row_order(self._fetch(query))
        finally:
            try:
                self.execute(f"DROP TABLE IF EXISTS {q(temp)}")
            except ServerError:
                pass  # the error being raised matters more; the session's end drops it anyway
        return attach(spine, values_table, as_arrow)

    def _time_of(self, feature: str) -> str:
        rows = self.execute(
            "SELECT t.event_time FROM asofdb.features f JOIN asofdb.tables t ON t.name = f.source_table WHERE f.name = %s",
            [feature],
        )
        if not rows or rows[0][0] is None:
            raise ServerError(f'feature "{feature}" does not exist', "42704")
        return rows[0][0]

    def _fetch(self, query: str) -> pa.Table:
        """A query's rows as an Arrow table, through ``COPY (...) TO STDOUT`` as CSV, with the
        types a Describe of the prepared query gives (the query runs once)."""
        try:
            pgconn = self.conn.pgconn
            statement = f"asofdb_describe_{uuid.uuid4().hex}".encode()
            prepared = pgconn.prepare(statement, query.encode())
            if prepared.status != psycopg.pq.ExecStatus.COMMAND_OK:
                raise ServerError((prepared.error_message or b"").decode().strip(), _state(prepared), query)
            described = pgconn.describe_prepared(statement)
            pgconn.exec_(b"DEALLOCATE " + statement)
            names = [(described.fname(i) or b"").decode() for i in range(described.nfields)]
            oids = [described.ftype(i) for i in range(described.nfields)]
            with self.conn.cursor() as cur:
                chunks = []
                with cur.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)") as copy:
                    for chunk in copy:
                        chunks.append(bytes(chunk))
        except psycopg.Error as e:
            raise from_driver(e, query) from None
        return transfer.read_csv(b"".join(chunks), names, oids)

    def online(self, feature: Union[str, FeatureFunction], **keys: Any) -> pd.DataFrame:
        """The feature's current values for a batch of keys: ``online("card_max_1h",
        cc_num=[1, 2])``, or for several key columns equal-length lists of each. One row per
        key that has a value, in the order asked."""
        name = feature.name if isinstance(feature, FeatureFunction) else feature
        key_columns, _ = self._feature_columns(name)
        if sorted(keys) != sorted(key_columns):
            raise DefinitionError(f"feature {name!r} is keyed by {', '.join(key_columns)}: give each, as lists")
        many = lambda v: hasattr(v, "__iter__") and not isinstance(v, (str, bytes))  # noqa: E731
        wanted = {k: [x.item() if hasattr(x, "item") else x for x in v] if many(v) else [v] for k, v in keys.items()}
        lengths = {len(v) for v in wanted.values()}
        if len(lengths) != 1:
            raise DefinitionError("give the same number of values for every key column")
        q = ASOFDB.ident
        where = " AND ".join(f"{q(k)} = ANY(%s)" for k in key_columns)
        found = self.sql(f"SELECT * FROM {q(name)} WHERE {where}", [list(dict.fromkeys(wanted[k])) for k in key_columns])
        asked = pd.DataFrame({k: wanted[k] for k in key_columns})
        return asked.merge(found, on=key_columns, how="inner")


def _state(result: Any) -> Optional[str]:
    field = result.error_field(psycopg.pq.DiagnosticField.SQLSTATE)
    return field.decode() if field else None


def in_row_order(values: pa.Table) -> pa.Table:
    """``values`` sorted by ``__row``, the spine's row numbers (unchanged if already in order)."""
    rows = values.column("__row").to_numpy()
    if len(rows) > 1 and not (rows[1:] > rows[:-1]).all():
        values = values.take(pa.array(np.argsort(rows, kind="stable")))
    return values


def attach(spine: Union[pd.DataFrame, pa.Table], values: pa.Table, as_arrow: bool) -> Union[pd.DataFrame, pa.Table]:
    """The spine with the value columns of ``values`` (after ``__row``, one row per spine row in
    order): an Arrow table, or a copy of the DataFrame with its index and dtypes."""
    names = [n for n in values.column_names if n != "__row"]
    if isinstance(spine, pa.Table):
        out = spine
        for name in names:
            out = out.append_column(name, values.column(name))
        return out if as_arrow else out.to_pandas()
    if as_arrow:
        out = pa.Table.from_pandas(spine, preserve_index=False)
        for name in names:
            out = out.append_column(name, values.column(name))
        return out
    out = spine.copy()
    for name in names:
        column = values.select([name]).to_pandas()[name]
        column.index = spine.index
        out[name] = column
    return out


__all__ = ["connect", "Database", "attach"]

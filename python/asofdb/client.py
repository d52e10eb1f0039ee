"""A connection to an asofdb server: tables as expressions, features created from them,
point-in-time training sets and online values as DataFrames."""

from __future__ import annotations

import itertools
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import pandas as pd
import psycopg
import pyarrow as pa

from . import transfer
from .errors import DefinitionError, ServerError, from_driver
from .expr import ASOFDB
from .feature import FeatureExpr, FeatureFunction, FeatureSpec, Table

_spines = itertools.count()


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
            bound = self.table(source) if isinstance(source, str) else source
            if isinstance(bound, Table) and bound.event_time is None and bound._columns is None:
                bound = self.table(bound.table_name)
            spec = expr.spec(bound)
        elif isinstance(expr, FeatureExpr):
            spec = expr.spec
        else:
            raise DefinitionError(
                f"a feature is defined by an aggregate of grouped rows, as tx.groupby('k')['v'].max(), not {type(expr).__name__}"
            )
        if spec.window.kind != "lifetime" or spec.event_time is None:
            if spec.event_time is None:
                known = self.execute("SELECT event_time FROM asofdb.tables WHERE name = %s", [spec.table])
                if known and known[0][0] is None:
                    raise DefinitionError(
                        f"table {spec.table!r} has no event_time column: a feature needs an event table"
                    )
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
        arrow = spine if isinstance(spine, pa.Table) else pa.Table.from_pandas(spine, preserve_index=False)
        if time not in arrow.column_names:
            raise DefinitionError(f"the spine has no column {time!r}")
        names = [f.name if isinstance(f, FeatureFunction) else f for f in features]
        if not names:
            raise DefinitionError("a training set needs at least one feature")
        described = [(n, *self._feature_columns(n)) for n in names]
        values = [v for _, _, vs in described for v in vs]
        clash = next((v for v in values if values.count(v) > 1 or v in arrow.column_names), None)
        if clash:
            raise DefinitionError(f"two columns of the training set would be named {clash!r}: rename a value")
        for n, keys, _ in described:
            absent = [k for k in keys if k not in arrow.column_names]
            if absent:
                raise DefinitionError(f"the spine lacks key column(s) {', '.join(absent)} of feature {n!r}")
        used = sorted({k for _, keys, _ in described for k in keys} | {time})
        upload = arrow.select(used).append_column("__row", pa.array(range(arrow.num_rows), pa.int64()))
        temp = f"__asofdb_spine_{next(_spines)}"
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
            query = f"SELECT {', '.join(select)} FROM {q(temp)} s {' '.join(joins)} ORDER BY s.__row"
            values_table = self._fetch(query)
        finally:
            self.execute(f"DROP TABLE IF EXISTS {q(temp)}")
        out = arrow
        for name in values_table.column_names[1:]:
            out = out.append_column(name, values_table.column(name))
        return out if as_arrow else out.to_pandas()

    def _time_of(self, feature: str) -> str:
        rows = self.execute(
            "SELECT t.event_time FROM asofdb.features f JOIN asofdb.tables t ON t.name = f.source_table WHERE f.name = %s",
            [feature],
        )
        if not rows or rows[0][0] is None:
            raise ServerError(f'feature "{feature}" does not exist', "42704")
        return rows[0][0]

    def _fetch(self, query: str) -> pa.Table:
        """A query's rows as an Arrow table, through ``COPY (...) TO STDOUT`` as CSV."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(f"SELECT * FROM ({query}) AS q LIMIT 0")
                names = [c.name for c in cur.description or []]
                oids = [c.type_code for c in cur.description or []]
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
        wanted = {k: list(v) if isinstance(v, (list, tuple, pd.Series)) else [v] for k, v in keys.items()}
        lengths = {len(v) for v in wanted.values()}
        if len(lengths) != 1:
            raise DefinitionError("give the same number of values for every key column")
        q = ASOFDB.ident
        where = " AND ".join(f"{q(k)} = ANY(%s)" for k in key_columns)
        found = self.sql(f"SELECT * FROM {q(name)} WHERE {where}", [list(dict.fromkeys(wanted[k])) for k in key_columns])
        asked = pd.DataFrame({k: wanted[k] for k in key_columns})
        return asked.merge(found, on=key_columns, how="inner")


__all__ = ["connect", "Database"]

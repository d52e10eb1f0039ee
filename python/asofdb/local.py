"""Training sets without a server: the same feature definitions computed on DuckDB or Spark
from DataFrames or Parquet files (for example the files of asofdb's cold tier).

``training_set(events, spine, features=[...], engine="duckdb")`` gives what
``Database.training_set`` gives for the same rows: the spine's columns in order, then each
feature's values evaluated at the spine row's time (before it, with ``strict``).
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Union

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .client import attach
from .errors import DefinitionError
from .expr import DUCKDB, SPARK
from .feature import FeatureExpr, FeatureFunction, FeatureSpec, Table
from .local_sql import feature_query
from .transfer import micros_of

Source = Union[pd.DataFrame, pa.Table, str, Sequence[str]]

_spark_session: Any = None


def spark_session() -> Any:
    """The Spark session ``engine="spark"`` uses: ``local[2]``, UTC, made once per process."""
    global _spark_session
    if _spark_session is None:
        from pyspark.sql import SparkSession

        _spark_session = (
            SparkSession.builder.master("local[2]")
            .appName("asofdb.local")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.ui.enabled", "false")
            .getOrCreate()
        )
    return _spark_session


def to_arrow(source: Source) -> pa.Table:
    """Rows as an Arrow table: a DataFrame, an Arrow table, or Parquet files (a path, a glob
    such as ``asofdb-data/cold/transactions/*/*.parquet``, or a list of paths)."""
    if isinstance(source, pa.Table):
        return source
    if isinstance(source, pd.DataFrame):
        return pa.Table.from_pandas(source, preserve_index=False)
    paths: List[str] = []
    for item in [source] if isinstance(source, str) else list(source):
        found = sorted(glob.glob(item)) if any(c in item for c in "*?[") else [item]
        paths.extend(found)
    if not paths:
        raise DefinitionError(f"no Parquet file matches {source!r}")
    return pa.concat_tables([pq.read_table(p) for p in paths], promote_options="default")


def time_micros(column: pa.ChunkedArray, what: str) -> pa.ChunkedArray:
    """A timestamp column as microseconds since the epoch (UTC for zoned times; finer units
    truncated, as asofdb keeps microseconds)."""
    if not pa.types.is_timestamp(column.type):
        raise DefinitionError(f"{what} must be a timestamp column, not {column.type}")
    return pc.cast(micros_of(column), pa.int64())


def resolve(features: Sequence[Any], event_time: Optional[str]) -> List[FeatureSpec]:
    """Each feature's relational form, named, with its table's event-time column."""
    specs = []
    for f in features:
        if isinstance(f, FeatureFunction):
            spec = f.spec()
        elif isinstance(f, FeatureExpr):
            spec = f.spec.named(None)
        elif isinstance(f, tuple) and len(f) == 2 and isinstance(f[1], (FeatureExpr, FeatureFunction)):
            name, expr = f
            spec = expr.spec(None) if isinstance(expr, FeatureFunction) else expr.spec
            spec = spec.named(name)
        else:
            raise DefinitionError(
                "a local feature is an @asofdb.feature function, a feature expression, or (name, expression)"
            )
        time = spec.event_time or event_time
        if time is None:
            raise DefinitionError(
                f"the event-time column of {spec.table!r} is not known: pass event_time=..., or "
                f"asofdb.table({spec.table!r}, event_time=...)"
            )
        specs.append(FeatureSpec(spec.table, spec.keys, spec.aggregates, spec.window, spec.where, time))
    return specs


def training_set(
    events: Union[Source, Dict[str, Source]],
    spine: Union[pd.DataFrame, pa.Table],
    features: Sequence[Any],
    time: str = "inference_ts",
    strict: bool = True,
    engine: str = "duckdb",
    event_time: Optional[str] = None,
    as_arrow: bool = False,
) -> Union[pd.DataFrame, pa.Table]:
    """The spine's rows with each feature evaluated at ``spine[time]`` (strictly before it
    with ``strict``, as ``ASOF LEFT JOIN ... s.time > f.ts``), computed by ``engine``
    (``"duckdb"`` or ``"spark"``). ``events`` holds the rows of the features' table, or maps
    table names to their rows."""
    specs = resolve(features, event_time)
    tables = {s.table for s in specs}
    sources = events if isinstance(events, dict) else {t: events for t in tables}
    missing = tables - set(sources)
    if missing:
        raise DefinitionError(f"no rows given for table(s) {', '.join(sorted(missing))}")
    spine_columns = list(spine.column_names if isinstance(spine, pa.Table) else spine.columns)
    if time not in spine_columns:
        raise DefinitionError(f"the spine has no column {time!r}")
    for spec in specs:
        absent = [k for k in spec.keys if k not in spine_columns]
        if absent:
            raise DefinitionError(f"the spine lacks the key column(s) {', '.join(absent)} of a feature over {spec.table}")
    # Only the keys and the time go to the engine; the values are attached to the spine after.
    used = sorted({k for spec in specs for k in spec.keys} | {time})
    if isinstance(spine, pa.Table):
        keyed = spine.select(used)
    else:
        keyed = pa.Table.from_pandas(spine[used], preserve_index=False)
    times = time_micros(keyed.column(time), f"the spine's {time!r}")
    keyed = keyed.append_column("__row", pa.array(range(keyed.num_rows), pa.int64())).append_column("__t", times)
    prepared: Dict[str, pa.Table] = {}
    for spec in specs:
        if spec.table not in prepared:
            rows = to_arrow(sources[spec.table])
            if spec.event_time not in rows.column_names:
                raise DefinitionError(f"the rows of {spec.table!r} have no column {spec.event_time!r}")
            rows = rows.append_column("__e", time_micros(rows.column(spec.event_time), "the event time"))
            prepared[spec.table] = rows.append_column("__arrival", pa.array(range(rows.num_rows), pa.int64()))
    queries = [
        feature_query(spec, SPARK if engine == "spark" else DUCKDB, f"events_{i}", "spine", strict)
        for i, spec in enumerate(specs)
    ]
    inputs = {f"events_{i}": prepared[spec.table] for i, spec in enumerate(specs)}
    if engine == "duckdb":
        results = _run_duckdb(queries, inputs, keyed)
    elif engine == "spark":
        results = _run_spark(queries, inputs, keyed)
    else:
        raise DefinitionError(f"unknown engine {engine!r}: 'duckdb' or 'spark'")
    rows = pa.table({"__row": pa.array(range(keyed.num_rows), pa.int64())})
    for result in results:
        rows = _in_spine_order(rows, result, spine_columns)
    return attach(spine, rows, as_arrow)


def _in_spine_order(rows: pa.Table, values: pa.Table, spine_columns: List[str]) -> pa.Table:
    """``rows`` (``__row`` and values so far) with the value columns of ``values`` (a row per
    spine row that matched) in spine order, NULL where a row did not match."""
    at = pc.index_in(rows.column("__row").combine_chunks(), values.column("__row").combine_chunks())
    for name in values.column_names:
        if name == "__row":
            continue
        if name in spine_columns or name in rows.column_names:
            raise DefinitionError(f"two columns of the training set would be named {name!r}: rename a value")
        column = pc.take(values.column(name), at)
        # DuckDB sums integers as HUGEINT (a decimal here): asofdb's sum of integers is BIGINT.
        if pa.types.is_decimal(column.type) and column.type.scale == 0:
            column = pc.cast(column, pa.int64())
        rows = rows.append_column(name, column)
    return rows


def _run_duckdb(queries: List[str], inputs: Dict[str, pa.Table], spine: pa.Table) -> List[pa.Table]:
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.register("spine", spine)
        for name, rows in inputs.items():
            con.register(name, rows)
        return [_arrow_of(con.sql(q)) for q in queries]
    finally:
        con.close()


def _arrow_of(result: Any) -> pa.Table:
    """A DuckDB relation as an Arrow table (DuckDB 2 renamed ``arrow``)."""
    for method in ("to_arrow_table", "arrow"):
        if hasattr(result, method):
            table = getattr(result, method)()
            return table.read_all() if isinstance(table, pa.RecordBatchReader) else table
    raise DefinitionError("this DuckDB cannot return Arrow tables")


def _run_spark(queries: List[str], inputs: Dict[str, pa.Table], spine: pa.Table) -> List[pa.Table]:
    # Through Parquet files both ways: no pandas conversion (pyspark's needs its own pandas).
    spark = spark_session()
    work = tempfile.mkdtemp(prefix="asofdb-spark-")
    try:
        for name, rows in {"spine": spine, **inputs}.items():
            path = os.path.join(work, name)
            pq.write_table(_spark_ready(rows), path + ".parquet")
            spark.read.parquet(path + ".parquet").createOrReplaceTempView(name)
        results = []
        for i, q in enumerate(queries):
            out = os.path.join(work, f"result_{i}")
            spark.sql(q).write.parquet(out)
            results.append(pq.read_table(out))
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _spark_ready(rows: pa.Table) -> pa.Table:
    """Timestamps as microseconds (Spark's unit), zoned ones in UTC."""
    columns = []
    for column in rows.columns:
        if pa.types.is_timestamp(column.type):
            column = micros_of(column)
        columns.append(column)
    return pa.table(columns, names=rows.column_names)


__all__ = ["training_set", "spark_session", "Table"]

"""A feature evaluated at every row of a spine, as one SQL query for DuckDB or Spark.

The query keeps the spine rows whose key has a qualifying event at or before T (before T,
strict; from each key's first event time), joins each to its key's events inside the window
(spec section 2; sessions: every event up to T, the session picked after), and aggregates per
spine row with ``agg(...) FILTER (WHERE <an event of the window>)``. A spine row whose key has
no qualifying event up to T has no row here, so its values are NULL, as an ``ASOF LEFT JOIN``
against the feature gives; one with events only outside the window gets the empty window's
values (``count`` 0, others NULL). Times are integers (microseconds since the epoch) in both
engines, so the boundaries are exact and written once.

Relations the query reads: the spine, with the feature's key columns, ``__row`` (its row
number) and ``__t`` (T); the events, with the table's columns, ``__e`` (the event time) and
``__arrival`` (arrival order, the tie-break of ``first``/``last``/``last_k``).

The approximate aggregates are computed exactly here: ``approx_distinct`` as
``count(DISTINCT x)`` and ``approx_percentile`` as ``percentile_cont``; asofdb's answers lie
within their documented error bounds of these.
"""

from __future__ import annotations

from typing import List

from .errors import DefinitionError
from .expr import Dialect
from .feature import Aggregate, FeatureSpec


def floor(x: str, width: int) -> str:
    """``x`` rounded down to a multiple of ``width`` (also for negative ``x``)."""
    return f"({x} - ((({x}) % {width}) + {width}) % {width})"


def feature_query(
    spec: FeatureSpec, d: Dialect, events: str = "events", spine: str = "spine", strict: bool = True
) -> str:
    """The query giving ``__row`` and one column per value of ``spec`` (named) for the spine rows
    whose key has a qualifying event up to T."""
    q = d.ident
    keys = [q(k) for k in spec.keys]
    w = spec.window
    with_args = [a for a in spec.aggregates if a.arg is not None]
    args = [f"{a.arg.to_sql(d)} AS __a{i}" for i, a in enumerate(with_args) if a.arg is not None]
    where = [f"({spec.where.to_sql(d)})"] if spec.where is not None else []
    where += [f"{k} IS NOT NULL" for k in keys]
    ctes: List[str] = [
        f"ev AS (SELECT {', '.join(keys + ['__e', '__arrival'] + args)} FROM {q(events)}"
        f" WHERE {' AND '.join(where)})"
    ]
    source = "ev"
    if w.kind == "session":
        # A key's sessions: a new one starts where the gap to the previous event reaches `gap`.
        order = f"PARTITION BY {', '.join(keys)} ORDER BY __e, __arrival"
        ctes.append(
            f"sessions AS (SELECT *, SUM(CASE WHEN __e - __prev >= {w.gap} THEN 1 ELSE 0 END)"
            f" OVER ({order} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __sid"
            f" FROM (SELECT *, LAG(__e) OVER ({order}) AS __prev FROM ev) AS lagged)"
        )
        source = "sessions"
    upper = "<" if strict else "<="
    # The spine rows that match: their key has a qualifying event up to T.
    ctes.append(f"firsts AS (SELECT {', '.join(keys)}, MIN(__e) AS __first FROM ev GROUP BY {', '.join(keys)})")
    # The time the window is evaluated at: T, or the hop b of a hopping window.
    evaluated = "s.__t"
    if w.kind == "sliding" and w.every:
        evaluated = floor("s.__t - 1" if strict else "s.__t", w.every)
    matched = " AND ".join([f"s.{k} = f.{k}" for k in keys] + [f"f.__first {upper} s.__t"])
    ctes.append(
        f"sp AS (SELECT s.__row, s.__t, {evaluated} AS __b, {', '.join('s.' + k for k in keys)}"
        f" FROM {q(spine)} AS s JOIN firsts AS f ON {matched})"
    )
    # Each matched row with its key's events in the window (sessions: every event up to T; a
    # window may be empty: one row with NULL events then).
    on = [f"sp.{k} = e.{k}" for k in keys] + [f"e.__e {upper} sp.__t"] + window_bounds(spec, strict)
    carried = ", ".join(["e.__e", "e.__arrival"] + [f"e.__a{i}" for i in range(len(with_args))]
                        + (["e.__sid"] if w.kind == "session" else []))
    ctes.append(
        f"m AS (SELECT sp.__row, sp.__t, sp.__b, {carried} FROM sp LEFT JOIN {source} AS e ON {' AND '.join(on)})"
    )
    inside = "m"
    if w.kind == "session":
        ctes.append(
            "ms AS (SELECT *, MAX(__e) OVER (PARTITION BY __row) AS __last,"
            " MAX(__sid) OVER (PARTITION BY __row) AS __lsid FROM m)"
        )
        inside = "ms"
    window = in_window(spec, strict)
    values = []
    arg_no = 0
    for a in spec.aggregates:
        arg = None
        if a.arg is not None:
            arg = f"__a{arg_no}"
            arg_no += 1
        values.append(f"{aggregate(a, arg, window, d)} AS {q(a.name or a.default_name())}")
    return f"WITH {', '.join(ctes)} SELECT __row, {', '.join(values)} FROM {inside} GROUP BY __row"


def window_bounds(spec: FeatureSpec, strict: bool) -> List[str]:
    """The join conditions that keep a joined event (``e.__e``, already at or before T, or
    before it if strict) inside the window evaluated at T (``sp.__t``; ``sp.__b`` for a hopping
    window). Sessions are decided after the join (``in_window``)."""
    w = spec.window
    if w.kind == "sliding" and w.every:
        if strict:
            return [f"e.__e >= sp.__b - {w.width}", "e.__e < sp.__b"]
        return [f"e.__e > sp.__b - {w.width}", "e.__e <= sp.__b"]
    if w.kind == "sliding":
        return [f"e.__e >= sp.__t - {w.width}"] if strict else [f"e.__e > sp.__t - {w.width}"]
    if w.kind == "tumbling":
        return [f"e.__e >= {floor('sp.__t', int(w.width or 0))}"]
    return []


def in_window(spec: FeatureSpec, strict: bool) -> str:
    """Whether a row of the join is an event of the window (not the NULL of an empty one)."""
    if spec.window.kind == "session":
        return f"(__e IS NOT NULL AND __sid = __lsid AND __t - __last < {spec.window.gap})"
    return "(__e IS NOT NULL)"


def aggregate(a: Aggregate, arg: str, window: str, d: Dialect) -> str:
    """One value: aggregate ``a`` of column ``arg`` over the joined events in ``window``."""
    only = f"FILTER (WHERE {window})"
    present = f"FILTER (WHERE {window} AND {arg} IS NOT NULL)"
    spark = d.name == "spark"
    f = a.func
    if f == "count":
        return f"COUNT({arg or '__e'}) {only}"
    if f in ("sum", "min", "max", "stddev_samp", "var_samp"):
        return f"{f.upper()}({arg}) {only}"
    if f == "avg":
        return f"AVG({arg}) {only}"
    if f in ("count_distinct", "approx_distinct"):
        return f"COUNT(DISTINCT {arg}) {only}"
    if f in ("first_value", "last_value"):
        if spark:
            by = "MIN_BY" if f == "first_value" else "MAX_BY"
            return f"{by}({arg}, STRUCT(__e, __arrival)) {only}"
        return f"{'FIRST' if f == 'first_value' else 'LAST'}({arg} ORDER BY __e, __arrival) {only}"
    if f == "approx_percentile":
        return f"PERCENTILE({arg}, {a.param}) {only}" if spark else f"QUANTILE_CONT({arg}, {a.param}) {only}"
    if f in ("last_k", "max_k", "min_k"):
        k = a.param
        if not spark:
            if f == "last_k":
                ordered = f"LIST_SLICE(LIST({arg} ORDER BY __e DESC, __arrival DESC) {present}, 1, {k})"
            else:
                order = "'DESC'" if f == "max_k" else "'ASC'"
                ordered = f"LIST_SLICE(LIST_SORT(LIST({arg}) {present}, {order}), 1, {k})"
        elif f == "last_k":
            latest = f"SORT_ARRAY(COLLECT_LIST(STRUCT(__e, __arrival, {arg})) {present}, FALSE)"
            ordered = f"SLICE(TRANSFORM({latest}, x -> x.{arg}), 1, {k})"
        else:
            ordered = f"SLICE(SORT_ARRAY(COLLECT_LIST({arg}) {present}, {'FALSE' if f == 'max_k' else 'TRUE'}), 1, {k})"
        # NULL over an empty window (or only NULLs), in both engines alike.
        return f"CASE WHEN COUNT({arg}) {only} = 0 THEN NULL ELSE {ordered} END"
    if f in ("decayed_sum", "decayed_count"):
        weight = f"POWER(2.0, -CAST(__b - __e AS DOUBLE) / {a.param})"
        if f == "decayed_sum":
            return f"SUM({arg} * {weight}) {only}"
        return f"COALESCE(SUM({weight}) {only}, 0.0)"
    raise DefinitionError(f"the {d.name} backend cannot compute {f}")

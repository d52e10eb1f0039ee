"""A feature evaluated at every row of a spine, as one SQL query for DuckDB or Spark.

The query keeps the spine rows whose key has a qualifying event at or before T (before T,
strict; from each key's first event time). The common aggregates are window functions over the
events and those spine rows together, ordered by time, each spine row standing at its window's
end (``windowed_values``: one sort, whatever the skew of the keys). The aggregates that depend
on order or on T join each spine row to its key's events inside the window (spec section 2;
sessions: every event up to T, the session picked after) and aggregate per spine row with
``agg(...) FILTER (WHERE <an event of the window>)`` (``joined_values``). A spine row whose key
has no qualifying event up to T has no row here, so its values are NULL, as an ``ASOF LEFT
JOIN`` against the feature gives; one with events only outside the window gets the empty
window's values (``count`` 0, others NULL). Times are integers (microseconds since the epoch)
in both engines, so the boundaries are exact and written once.

Relations the query reads: the spine, with the feature's key columns, ``__row`` (its row
number) and ``__t`` (T); the events, with the table's columns, ``__e`` (the event time) and
``__arrival`` (arrival order, the tie-break of ``first``/``last``/``last_k``).

The approximate aggregates are computed exactly here: ``approx_distinct`` as
``count(DISTINCT x)`` and ``approx_percentile`` as ``percentile_cont``; asofdb's answers lie
within their documented error bounds of these.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple

from .errors import DefinitionError
from .expr import Dialect
from .feature import Aggregate, FeatureSpec


def floor(x: str, width: int) -> str:
    """``x`` rounded down to a multiple of ``width`` (also for negative ``x``)."""
    return f"({x} - ((({x}) % {width}) + {width}) % {width})"


class Parts(NamedTuple):
    """What both ways of computing a feature's values read: the spec, the dialect, the quoted
    key columns, the events relation (``ev`` or ``sessions``), how many ``__a`` arguments it
    has, each aggregate's argument column (by ``id``), and whether T itself is excluded."""

    spec: FeatureSpec
    d: Dialect
    keys: List[str]
    source: str
    n_args: int
    arg_of: Dict[int, str]
    strict: bool


# The aggregates computed by window functions over the events and the spine rows together
# (the rest by joining each spine row to its window's events, ``joined_values``).
WINDOWED = {"count", "sum", "min", "max", "avg", "stddev_samp", "var_samp", "count_distinct", "approx_distinct"}
# Their value over an empty window (the others give NULL).
EMPTY_IS_ZERO = {"count", "count_distinct", "approx_distinct"}


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
    # An event without a time (NaT in a DataFrame) is in no window: engines sort NULLs to
    # different ends, so it must not reach a frame.
    where += [f"{k} IS NOT NULL" for k in keys] + ["__e IS NOT NULL"]
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
    arg_of: Dict[int, str] = {}
    for i, a in enumerate(with_args):
        arg_of[id(a)] = f"__a{i}"
    names = [q(a.name or a.default_name()) for a in spec.aggregates]
    windowed = [(a, n) for a, n in zip(spec.aggregates, names) if a.func in WINDOWED]
    joined = [(a, n) for a, n in zip(spec.aggregates, names) if a.func not in WINDOWED]
    parts = Parts(spec, d, keys, source, len(with_args), arg_of, strict)
    branches = []
    if windowed:
        ctes += windowed_values(parts, windowed)
        branches.append(("wv", windowed))
    if joined:
        ctes += joined_values(parts, joined)
        branches.append(("jv", joined))
    first = branches[0][0]
    select = [f"{first}.__row"] + [f"{part}.{n}" for part, values in branches for _, n in values]
    # Spec order: the columns of the two parts interleaved as the aggregates were declared.
    order = {n: i for i, n in enumerate(names)}
    select = [select[0]] + sorted(select[1:], key=lambda c: order[c.split(".", 1)[1]])
    body = f"FROM {first}"
    if len(branches) == 2:
        body += " JOIN jv ON wv.__row = jv.__row"
    return f"WITH {', '.join(ctes)} SELECT {', '.join(select)} {body}"


def windowed_values(parts: Parts, values: List[Tuple[Aggregate, str]]) -> List[str]:
    """CTEs ending in ``wv``: ``__row`` and ``values`` for each matched spine row, as window
    functions over the key's events and the spine rows together, in one order of time. A spine
    row stands at the time its window is evaluated at (``__b``; 1µs before it if strict, so
    that every frame ends at CURRENT ROW, which DuckDB computes 2-3 times faster than one
    ending at 1 PRECEDING) and carries no arguments, so an aggregate (which skips NULLs) sees
    only the events of its frame. Times are integers, so ``RANGE BETWEEN w - 1 PRECEDING AND
    CURRENT ROW`` at ``b`` is exactly ``(b - w, b]``, and at ``b - 1`` exactly ``[b - w, b)``."""
    spec, d, keys, source, n_args, arg_of, strict = parts
    w = spec.window
    session = w.kind == "session"
    nulls = ", ".join(["NULL"] * n_args)
    arg_list = "".join(f", __a{i}" for i in range(n_args))
    at = "__b - 1" if strict else "__b"
    # Tumbling: each bucket is a partition of its own; a spine row belongs to T's bucket (and
    # stands at T - 1 if strict: before an event at the bucket's start T, so the window is empty).
    bucket = int(w.width or 0) if w.kind == "tumbling" else 0
    part_e = f", {floor('__e', bucket)} AS __p" if bucket else ""
    part_s = f", {floor('__t', bucket)}" if bucket else ""
    ctes = [
        f"u AS (SELECT {', '.join(keys)}, __e AS __at, 1 AS __ev, CAST(NULL AS BIGINT) AS __row,"
        f" CAST(NULL AS BIGINT) AS __t{part_e}{arg_list}{', __sid' if session else ''} FROM {source}"
        f" UNION ALL SELECT {', '.join(keys)}, {at}, NULL, __row, __t{part_s}{', ' + nulls if nulls else ''}"
        f"{', NULL' if session else ''} FROM sp)"
    ]
    if w.kind == "sliding":
        frame = f"RANGE BETWEEN {int(w.width or 0) - 1} PRECEDING AND CURRENT ROW"
    else:
        frame = "RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
    partition = ", ".join(keys) + (", __p" if bucket else "")
    relation = "u"
    if session:
        # A spine row's session is that of the latest event up to T (sessions only grow).
        so_far = f"(PARTITION BY {partition} ORDER BY __at {frame})"
        ctes.append(
            f"u1 AS (SELECT *, COALESCE(__sid, MAX(__sid) OVER {so_far}) AS __part,"
            f" MAX(CASE WHEN __ev = 1 THEN __at END) OVER {so_far} AS __last FROM u)"
        )
        partition += ", __part"
        relation = "u1"
    exprs = []
    for i, (a, _) in enumerate(values):
        exprs.append(f"{window_aggregate(a, arg_of.get(id(a)), d)} AS __v{i}")
    outer = []
    for i, (a, name) in enumerate(values):
        value = f"__v{i}"
        if session:
            empty = "0" if a.func in EMPTY_IS_ZERO else "NULL"
            value = f"CASE WHEN __t - __last < {w.gap} THEN {value} ELSE {empty} END"
        outer.append(f"{value} AS {name}")
    ctes.append(
        f"wv AS (SELECT __row, {', '.join(outer)} FROM (SELECT __row, __t"
        f"{', __last' if session else ''}, {', '.join(exprs)} FROM {relation}"
        f" WINDOW __w AS (PARTITION BY {partition} ORDER BY __at {frame})) AS framed WHERE __row IS NOT NULL)"
    )
    return ctes


def window_aggregate(a: Aggregate, arg: Optional[str], d: Dialect) -> str:
    """Aggregate ``a`` of column ``arg`` over the frame ``__w`` (spine rows' NULLs skipped)."""
    f = a.func
    if f == "count":
        return f"COUNT({arg or '__ev'}) OVER __w"
    if f in ("count_distinct", "approx_distinct"):
        # Spark has no DISTINCT in a window function.
        if d.name == "spark":
            return f"CAST(SIZE(COLLECT_SET({arg}) OVER __w) AS BIGINT)"
        return f"COUNT(DISTINCT {arg}) OVER __w"
    return f"{f.upper()}({arg}) OVER __w"


def joined_values(parts: Parts, values: List[Tuple[Aggregate, str]]) -> List[str]:
    """CTEs ending in ``jv``: ``__row`` and ``values`` for each matched spine row, by joining it
    to its key's events inside the window (sessions: every event up to T; a window may be
    empty: one row with NULL events then) and aggregating per spine row. For the aggregates
    that depend on order or on T (``first``, ``last_k``, quantiles, decayed sums)."""
    spec, d, keys, source, n_args, arg_of, strict = parts
    w = spec.window
    upper = "<" if strict else "<="
    on = [f"sp.{k} = e.{k}" for k in keys] + [f"e.__e {upper} sp.__t"] + window_bounds(spec, strict)
    carried = ", ".join(["e.__e", "e.__arrival"] + [f"e.__a{i}" for i in range(n_args)]
                        + (["e.__sid"] if w.kind == "session" else []))
    ctes = [
        f"m AS (SELECT sp.__row, sp.__t, sp.__b, {carried} FROM sp LEFT JOIN {source} AS e ON {' AND '.join(on)})"
    ]
    inside = "m"
    if w.kind == "session":
        ctes.append(
            "ms AS (SELECT *, MAX(__e) OVER (PARTITION BY __row) AS __last,"
            " MAX(__sid) OVER (PARTITION BY __row) AS __lsid FROM m)"
        )
        inside = "ms"
    window = in_window(spec, strict)
    columns = [f"{aggregate(a, arg_of.get(id(a)), window, d)} AS {name}" for a, name in values]
    ctes.append(f"jv AS (SELECT __row, {', '.join(columns)} FROM {inside} GROUP BY __row)")
    return ctes


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


def aggregate(a: Aggregate, arg: Optional[str], window: str, d: Dialect) -> str:
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

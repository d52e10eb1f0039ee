"""Features declared as in pandas, and the one relational representation every backend compiles.

``tx.groupby(["cc_num", "merchant"])["amt"].window(asofdb.sliding("1h")).mean()`` builds a
``FeatureExpr``: a ``FeatureSpec`` (source table, row filter, keys, aggregates, window) that
``to_sql("asofdb")`` turns into the body of ``CREATE FEATURE`` and ``to_sql("duckdb")`` /
``to_sql("spark")`` into window-function SQL over a spine (``asofdb.local``).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

from .errors import DefinitionError
from .expr import ASOFDB, Column, Dialect, Expr, dialect
from .windows import Duration, Window, interval_sql, lifetime, micros

# Aggregate functions: pandas-like name -> (asofdb's function, takes a column, parameter kind).
AGGREGATES: Dict[str, Tuple[str, bool, Optional[str]]] = {
    "size": ("count", False, None),
    "count": ("count", True, None),
    "sum": ("sum", True, None),
    "mean": ("avg", True, None),
    "min": ("min", True, None),
    "max": ("max", True, None),
    "nunique": ("count_distinct", True, None),
    "std": ("stddev_samp", True, None),
    "var": ("var_samp", True, None),
    "first": ("first_value", True, None),
    "last": ("last_value", True, None),
    "approx_nunique": ("approx_distinct", True, None),
    "last_k": ("last_k", True, "k"),
    "max_k": ("max_k", True, "k"),
    "min_k": ("min_k", True, "k"),
    "quantile": ("approx_percentile", True, "q"),
    "decayed_sum": ("decayed_sum", True, "half_life"),
    "decayed_count": ("decayed_count", False, "half_life"),
}
# SQL names accepted in `.agg(name=(column, "avg"))` as well.
ALIASES = {sql: name for name, (sql, _, _) in AGGREGATES.items() if sql not in ("count",)}
ALIASES.update({"avg": "mean", "count_star": "size"})


@dataclass(frozen=True, eq=False)
class Aggregate:
    """One value column: ``func`` (asofdb's name) of ``arg``, named ``name`` once bound."""

    func: str
    arg: Optional[Expr]
    param: Union[int, float, None] = None
    name: Optional[str] = None

    def to_sql(self, d: Dialect = ASOFDB) -> str:
        """The aggregate in asofdb's CREATE FEATURE."""
        arg = self.arg.to_sql(d) if self.arg is not None else None
        if self.func == "count":
            return f"count({arg or '*'})"
        if self.func == "count_distinct":
            return f"count(DISTINCT {arg})"
        if self.func in ("last_k", "max_k", "min_k", "approx_percentile"):
            return f"{self.func}({arg}, {self.param})"
        if self.func == "decayed_sum":
            return f"decayed_sum({arg}, {interval_sql(int(self.param or 0))})"
        if self.func == "decayed_count":
            return f"decayed_count({interval_sql(int(self.param or 0))})"
        return f"{self.func}({arg})"

    def default_name(self) -> str:
        column = self.arg.columns()[0] if self.arg is not None and self.arg.columns() else None
        short = {v[0]: k for k, v in AGGREGATES.items()}.get(self.func, self.func)
        return f"{column}_{short}" if column else short


@dataclass(frozen=True, eq=False)
class FeatureSpec:
    """A feature, as every backend compiles it: the rows of ``table`` that pass ``where``,
    grouped by ``keys``, aggregated by ``aggregates`` over ``window`` (evaluated at a time T).
    ``event_time`` is the table's event-time column, when known."""

    table: str
    keys: Tuple[str, ...]
    aggregates: Tuple[Aggregate, ...]
    window: Window
    where: Optional[Expr] = None
    event_time: Optional[str] = None

    def named(self, feature_name: Optional[str] = None) -> "FeatureSpec":
        """Every aggregate with a name: a lone unnamed one takes the feature's name."""
        lone = len(self.aggregates) == 1 and feature_name is not None
        named = tuple(
            a if a.name else replace(a, name=feature_name if lone else a.default_name()) for a in self.aggregates
        )
        names = [a.name for a in named]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise DefinitionError(f"two values of the feature are named {duplicate!r}: name them apart")
        clash = next((n for n in names if n in self.keys), None)
        if clash:
            raise DefinitionError(f"a value named {clash!r} would clash with the key column of that name")
        internal = next((n for n in names if n and n.startswith("__")), None)
        if internal:
            raise DefinitionError(f"a value named {internal!r}: names starting with '__' are kept for asofdb's own columns")
        return replace(self, aggregates=named)

    def columns(self) -> Tuple[str, ...]:
        """Every column of the table it reads."""
        out = list(self.keys)
        for a in self.aggregates:
            out.extend(a.arg.columns() if a.arg is not None else ())
        out.extend(self.where.columns() if self.where is not None else ())
        return tuple(dict.fromkeys(out))

    def to_sql(self, dialect_name: str = "asofdb", **local: Any) -> str:
        """``"asofdb"``: the SELECT of its ``CREATE FEATURE``. ``"duckdb"``/``"spark"``: the
        point-in-time query over a spine that ``asofdb.local`` runs (see ``local_sql.feature_query``
        for the arguments)."""
        d = dialect(dialect_name)
        spec = self.named(local.pop("name", None))
        if d.name == "asofdb":
            if local:
                raise DefinitionError(f"to_sql('asofdb') takes no {', '.join(local)}")
            return spec.select_sql()
        from .local_sql import feature_query

        return feature_query(spec, d, **local)

    def select_sql(self) -> str:
        d = ASOFDB
        keys = ", ".join(d.ident(k) for k in self.keys)
        values = ", ".join(f"{a.to_sql(d)} AS {d.ident(a.name or a.default_name())}" for a in self.aggregates)
        where = f" WHERE {self.where.to_sql(d)}" if self.where is not None else ""
        return f"SELECT {keys}, {values} FROM {d.ident(self.table)}{where} GROUP BY {keys} {self.window.to_sql()}"

    def create_sql(self, name: str, replace_existing: bool = False) -> str:
        """``CREATE [OR REPLACE] FEATURE name AS ...``."""
        verb = "CREATE OR REPLACE FEATURE" if replace_existing else "CREATE FEATURE"
        return f"{verb} {ASOFDB.ident(name)} AS {self.named(name).select_sql()}"


class Table:
    """A lazy expression over an event table: columns as attributes or items, filters as in
    pandas (``tx[tx.status == "failed"]``), then ``groupby``."""

    def __init__(
        self,
        name: str,
        columns: Optional[Sequence[str]] = None,
        event_time: Optional[str] = None,
        where: Optional[Expr] = None,
    ):
        self._name = name
        self._columns = tuple(columns) if columns is not None else None
        self._event_time = event_time
        self._where = where

    @property
    def table_name(self) -> str:
        return self._name

    @property
    def event_time(self) -> Optional[str]:
        return self._event_time

    def column(self, name: str) -> Column:
        if self._columns is not None and name not in self._columns:
            raise DefinitionError(f"table {self._name!r} has no column {name!r} (it has {', '.join(self._columns)})")
        return Column(name)

    def __getattr__(self, name: str) -> Column:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.column(name)

    def __getitem__(self, key: Union[str, Expr]) -> Any:
        if isinstance(key, str):
            return self.column(key)
        if isinstance(key, Expr):
            self._check(key)
            where = key if self._where is None else (self._where & key)
            return Table(self._name, self._columns, self._event_time, where)
        raise DefinitionError("index a table with a column name or a condition, as tx['amt'] or tx[tx.amt > 0]")

    def _check(self, expr: Expr) -> None:
        for c in expr.columns():
            self.column(c)

    def groupby(self, keys: Union[str, Iterable[str]]) -> "GroupBy":
        keys = (keys,) if isinstance(keys, str) else tuple(keys)
        if not keys:
            raise DefinitionError("a feature needs at least one key column")
        for k in keys:
            if not isinstance(k, str):
                raise DefinitionError("group by column names, as tx.groupby(['cc_num', 'merchant'])")
            self.column(k)
        return GroupBy(self, keys, None)

    def __repr__(self) -> str:
        where = f" WHERE {self._where.to_sql(ASOFDB)}" if self._where is not None else ""
        return f"<asofdb.Table {self._name}{where}>"


def table(name: str, columns: Optional[Sequence[str]] = None, event_time: Optional[str] = None) -> Table:
    """A table expression without a server (for ``asofdb.local`` or ``to_sql``)."""
    return Table(name, columns, event_time)


class GroupBy:
    """A table's rows grouped by key columns; ``[col]`` picks a value, ``window`` a window."""

    def __init__(self, source: Table, keys: Tuple[str, ...], window: Optional[Window]):
        self._source = source
        self._keys = keys
        self._window = window

    def __getitem__(self, value: Union[str, Expr]) -> "Grouped":
        expr = self._source.column(value) if isinstance(value, str) else value
        if not isinstance(expr, Expr):
            raise DefinitionError("pick a value column by name or expression, as ['amt'] or [tx.amt * 100]")
        self._source._check(expr)
        return Grouped(self, expr)

    def window(self, window: Window) -> "GroupBy":
        return GroupBy(self._source, self._keys, _window(window))

    def size(self) -> "FeatureExpr":
        """``count(*)``: the number of events."""
        return self._feature((Aggregate("count", None),))

    def agg(self, **values: Any) -> "FeatureExpr":
        """Several values at once: ``agg(n=("amt", "count"), top=("amt", "max_k", 3))``; a
        function is a pandas-like name (``mean``, ``nunique``, ...) or asofdb's (``avg``, ...)."""
        if not values:
            raise DefinitionError("agg() needs at least one value, as agg(max_amt=('amt', 'max'))")
        aggregates = []
        for name, spec in values.items():
            if not isinstance(spec, tuple) or len(spec) not in (2, 3):
                raise DefinitionError(f"value {name!r}: give (column, function) or (column, function, parameter)")
            column, func = spec[0], spec[1]
            param = spec[2] if len(spec) == 3 else None
            arg = None
            if column is not None:
                arg = self._source.column(column) if isinstance(column, str) else column
                self._source._check(arg)
            aggregates.append(replace(make_aggregate(func, arg, param), name=name))
        return self._feature(tuple(aggregates))

    def _feature(self, aggregates: Tuple[Aggregate, ...]) -> "FeatureExpr":
        source = self._source
        spec = FeatureSpec(
            table=source.table_name,
            keys=self._keys,
            aggregates=aggregates,
            window=self._window or lifetime(),
            where=source._where,
            event_time=source.event_time,
        )
        return FeatureExpr(spec, window_given=self._window is not None)


def make_aggregate(func: str, arg: Optional[Expr], param: Any = None) -> Aggregate:
    """An aggregate by its pandas-like (or asofdb) name, checked as the server would."""
    name = ALIASES.get(func, func)
    if name not in AGGREGATES:
        known = ", ".join(sorted(AGGREGATES))
        raise DefinitionError(f"unknown aggregate {func!r}: one of {known}")
    sql, takes_column, kind = AGGREGATES[name]
    if takes_column and arg is None:
        raise DefinitionError(f"{func} needs a value column")
    if not takes_column:
        arg = None
    if kind is None and param is not None:
        raise DefinitionError(f"{func} takes no parameter")
    if hasattr(param, "item") and not isinstance(param, (str, bytes)):
        param = param.item()  # a numpy scalar
    if kind == "k":
        if isinstance(param, bool) or not isinstance(param, int) or not 1 <= param <= 1000:
            raise DefinitionError(f"{func}: k must be an integer from 1 to 1000, not {param!r}")
    if kind == "q":
        if isinstance(param, bool) or not isinstance(param, (int, float)) or not 0 <= param <= 1:
            raise DefinitionError(f"{func}: q must be a number in [0, 1], not {param!r}")
        param = float(param)
    if kind == "half_life":
        if param is None:
            raise DefinitionError(f"{func} needs a half-life, as '1h'")
        param = micros(param)
    return Aggregate(sql, arg, param)


class Grouped:
    """One value of grouped rows: a window, then an aggregate makes a feature."""

    def __init__(self, group: GroupBy, value: Expr):
        self._group = group
        self._value = value

    def window(self, window: Window) -> "Grouped":
        return Grouped(self._group.window(window), self._value)

    def _one(self, func: str, param: Any = None) -> "FeatureExpr":
        return self._group._feature((make_aggregate(func, self._value, param),))

    def count(self) -> "FeatureExpr":
        return self._one("count")

    def size(self) -> "FeatureExpr":
        """``count(*)``: the number of events, whatever the value."""
        return self._group.size()

    def sum(self) -> "FeatureExpr":
        return self._one("sum")

    def mean(self) -> "FeatureExpr":
        return self._one("mean")

    def min(self) -> "FeatureExpr":
        return self._one("min")

    def max(self) -> "FeatureExpr":
        return self._one("max")

    def nunique(self) -> "FeatureExpr":
        return self._one("nunique")

    def std(self) -> "FeatureExpr":
        return self._one("std")

    def var(self) -> "FeatureExpr":
        return self._one("var")

    def first(self) -> "FeatureExpr":
        return self._one("first")

    def last(self) -> "FeatureExpr":
        return self._one("last")

    def approx_nunique(self) -> "FeatureExpr":
        return self._one("approx_nunique")

    def last_k(self, k: int) -> "FeatureExpr":
        return self._one("last_k", k)

    def max_k(self, k: int) -> "FeatureExpr":
        return self._one("max_k", k)

    def min_k(self, k: int) -> "FeatureExpr":
        return self._one("min_k", k)

    def quantile(self, q: float) -> "FeatureExpr":
        return self._one("quantile", q)

    def decayed_sum(self, half_life: Duration) -> "FeatureExpr":
        return self._one("decayed_sum", half_life)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise DefinitionError(
            f"{name} is not an aggregate a feature can use: one of {', '.join(sorted(AGGREGATES))} "
            "(a feature's values must be aggregates of the grouped rows)"
        )


class FeatureExpr:
    """A feature definition not yet named: ``spec`` is its relational form."""

    def __init__(self, spec: FeatureSpec, window_given: bool = True):
        self.spec = spec
        self.window_given = window_given

    def to_sql(self, dialect_name: str = "asofdb", **local: Any) -> str:
        return self.spec.to_sql(dialect_name, **local)

    def __repr__(self) -> str:
        return f"<asofdb.FeatureExpr {self.spec.select_sql()}>"


class FeatureFunction:
    """A function of a table expression declared with ``@asofdb.feature``: its name is the
    feature's, and it is compiled against a table when created or computed."""

    def __init__(self, fn: Callable[..., Any], window: Optional[Window], table: Union[str, Table, None], name: str):
        self.fn = fn
        self.window = _window(window) if window is not None else None
        self.table = table
        self.name = name
        self.__doc__ = fn.__doc__
        self.__name__ = name

    def __call__(self, source: Union[str, Table, None] = None) -> FeatureExpr:
        """The feature over ``source`` (default: the table it was declared on), with its window."""
        return FeatureExpr(self.spec(source, named=False))

    def spec(self, source: Union[str, Table, None] = None, named: bool = True) -> FeatureSpec:
        """The feature's relational form over ``source`` (default: the table it was declared on),
        its values named (a lone one after the function) unless ``named`` is false."""
        source = source if source is not None else self.table
        if isinstance(source, str):
            source = Table(source)
        if not isinstance(source, Table):
            raise DefinitionError(
                f"feature {self.name!r} names no table: declare it with @asofdb.feature(table=...) or pass one"
            )
        takes_window = len(inspect.signature(self.fn).parameters) >= 2
        result = self.fn(source, self.window or lifetime()) if takes_window else self.fn(source)
        if isinstance(result, Grouped):
            raise DefinitionError(f"feature {self.name!r} returns a grouped column, not an aggregate (add .mean() or such)")
        if not isinstance(result, FeatureExpr):
            raise DefinitionError(
                f"feature {self.name!r} must return an aggregate of grouped rows, as "
                f"tx.groupby('cc_num')['amt'].max(), not {type(result).__name__}"
            )
        spec = result.spec
        if self.window is not None and not result.window_given:
            spec = replace(spec, window=self.window)
        elif self.window is not None and spec.window != self.window:
            raise DefinitionError(f"feature {self.name!r} uses {spec.window!r}, not the {self.window!r} it declares")
        return spec.named(self.name) if named else spec

    def to_sql(self, dialect_name: str = "asofdb", **local: Any) -> str:
        return self.spec().to_sql(dialect_name, name=self.name, **local)

    def __repr__(self) -> str:
        return f"<asofdb.feature {self.name}>"


def feature(
    window: Optional[Window] = None, table: Union[str, Table, None] = None, name: Optional[str] = None
) -> Callable[[Callable[..., Any]], FeatureFunction]:
    """Declares a feature as a function of a table expression (and, if it takes two
    arguments, of the window), named after the function::

        @asofdb.feature(window=asofdb.sliding("1h"), table="transactions")
        def card_max_1h(tx):
            return tx.groupby("cc_num")["amt"].max()
    """

    def declare(fn: Callable[..., Any]) -> FeatureFunction:
        return FeatureFunction(fn, window, table, name or fn.__name__)

    return declare


def _window(window: Any) -> Window:
    if not isinstance(window, Window):
        raise DefinitionError(
            "a window is asofdb.sliding(...), tumbling(...), session(...) or lifetime(), not " + type(window).__name__
        )
    return window


FeatureLike = Union[str, FeatureExpr, FeatureFunction]

"""Row expressions of a table (filters, aggregate arguments), written as in pandas and
rendered as SQL for each backend.

``tx.status == "failed"``, ``tx.amt * 100``, ``(a > 1) & ~b.isna()``, ``tx.merchant.isin([...])``
build a tree of ``Expr`` nodes; ``to_sql(dialect)`` renders it. Division is true division in
every backend, as in pandas (``CAST(a AS DOUBLE PRECISION) / b`` in asofdb, where ``/`` between
integers truncates as PostgreSQL's does).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any, Iterable, Tuple

from .errors import DefinitionError


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL of the backends for row expressions."""

    name: str
    quote: str
    double: str
    backslash_strings: bool

    def ident(self, name: str) -> str:
        return f"{self.quote}{name.replace(self.quote, self.quote * 2)}{self.quote}"

    def string(self, value: str) -> str:
        if self.backslash_strings:
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return "'" + value.replace("'", "''") + "'"


ASOFDB = Dialect("asofdb", '"', "DOUBLE PRECISION", False)
DUCKDB = Dialect("duckdb", '"', "DOUBLE", False)
SPARK = Dialect("spark", "`", "DOUBLE", True)
DIALECTS = {d.name: d for d in (ASOFDB, DUCKDB, SPARK)}


def dialect(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise DefinitionError(f"unknown dialect {name!r}: one of {', '.join(DIALECTS)}") from None


class Expr:
    """A scalar expression of a table's row."""

    def to_sql(self, d: "Dialect | str" = "asofdb") -> str:
        """The expression as SQL of a dialect (``"asofdb"``, ``"duckdb"``, ``"spark"``)."""
        return self.render(dialect(d) if isinstance(d, str) else d)

    def render(self, d: Dialect) -> str:
        raise NotImplementedError

    def columns(self) -> Tuple[str, ...]:
        """The columns it reads."""
        return ()

    # Comparisons and arithmetic build new expressions, as pandas' operators do.
    def __eq__(self, other: Any) -> "Expr":  # type: ignore[override]
        # As pandas compares with missing values: `== None` asks for them.
        return IsNull(self, True) if other is None else Binary("=", self, wrap(other))

    def __ne__(self, other: Any) -> "Expr":  # type: ignore[override]
        return IsNull(self, False) if other is None else Binary("<>", self, wrap(other))

    def __lt__(self, other: Any) -> "Expr":
        return Binary("<", self, wrap(other))

    def __le__(self, other: Any) -> "Expr":
        return Binary("<=", self, wrap(other))

    def __gt__(self, other: Any) -> "Expr":
        return Binary(">", self, wrap(other))

    def __ge__(self, other: Any) -> "Expr":
        return Binary(">=", self, wrap(other))

    def __add__(self, other: Any) -> "Expr":
        return Binary("+", self, wrap(other))

    def __radd__(self, other: Any) -> "Expr":
        return Binary("+", wrap(other), self)

    def __sub__(self, other: Any) -> "Expr":
        return Binary("-", self, wrap(other))

    def __rsub__(self, other: Any) -> "Expr":
        return Binary("-", wrap(other), self)

    def __mul__(self, other: Any) -> "Expr":
        return Binary("*", self, wrap(other))

    def __rmul__(self, other: Any) -> "Expr":
        return Binary("*", wrap(other), self)

    def __truediv__(self, other: Any) -> "Expr":
        return Divide(self, wrap(other))

    def __rtruediv__(self, other: Any) -> "Expr":
        return Divide(wrap(other), self)

    def __mod__(self, other: Any) -> "Expr":
        return Binary("%", self, wrap(other))

    def __and__(self, other: Any) -> "Expr":
        return Binary("AND", self, wrap(other))

    def __rand__(self, other: Any) -> "Expr":
        return Binary("AND", wrap(other), self)

    def __or__(self, other: Any) -> "Expr":
        return Binary("OR", self, wrap(other))

    def __ror__(self, other: Any) -> "Expr":
        return Binary("OR", wrap(other), self)

    def __invert__(self) -> "Expr":
        return Unary("NOT", self)

    def __neg__(self) -> "Expr":
        return Unary("-", self)

    def __bool__(self) -> bool:
        raise DefinitionError(
            "an expression has no truth value here: combine conditions with & | ~ (not and/or/not), as in pandas"
        )

    __hash__ = object.__hash__

    def isin(self, values: Iterable[Any]) -> "Expr":
        values = list(values)
        present = [v for v in values if v is not None]
        found: Expr = In(self, tuple(wrap(v) for v in present)) if present else Literal(False)
        # As pandas' isin: a missing value in the list matches missing values.
        return (found | IsNull(self, True)) if len(present) < len(values) else found

    def isna(self) -> "Expr":
        return IsNull(self, True)

    isnull = isna

    def notna(self) -> "Expr":
        return IsNull(self, False)

    notnull = notna


def wrap(value: Any) -> Expr:
    """``value`` as an expression: an ``Expr`` as it is, anything else a literal."""
    return value if isinstance(value, Expr) else Literal(value)


@dataclass(frozen=True, eq=False)
class Column(Expr):
    name: str

    def render(self, d: Dialect) -> str:
        return d.ident(self.name)

    def columns(self) -> Tuple[str, ...]:
        return (self.name,)

    def __repr__(self) -> str:
        return f"Column({self.name!r})"


@dataclass(frozen=True, eq=False)
class Literal(Expr):
    value: Any

    def render(self, d: Dialect) -> str:
        v = self.value
        if hasattr(v, "item") and not isinstance(v, (str, bytes)):
            v = v.item()  # a numpy scalar
        if v is None:
            return "NULL"
        if isinstance(v, bool):
            return "TRUE" if v else "FALSE"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            if not math.isfinite(v):
                raise DefinitionError(f"a literal must be finite, not {v}")
            return repr(v)
        if isinstance(v, str):
            return d.string(v)
        if isinstance(v, dt.datetime):
            if v.tzinfo is not None:
                v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
            return f"TIMESTAMP '{v.isoformat(sep=' ')}'"
        if isinstance(v, dt.date):
            return f"DATE '{v.isoformat()}'"
        raise DefinitionError(f"cannot use a {type(v).__name__} as a literal in a feature definition")


@dataclass(frozen=True, eq=False)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr

    def render(self, d: Dialect) -> str:
        return f"({self.left.to_sql(d)} {self.op} {self.right.to_sql(d)})"

    def columns(self) -> Tuple[str, ...]:
        return self.left.columns() + self.right.columns()


@dataclass(frozen=True, eq=False)
class Divide(Expr):
    left: Expr
    right: Expr

    def render(self, d: Dialect) -> str:
        return f"(CAST({self.left.to_sql(d)} AS {d.double}) / {self.right.to_sql(d)})"

    def columns(self) -> Tuple[str, ...]:
        return self.left.columns() + self.right.columns()


@dataclass(frozen=True, eq=False)
class Unary(Expr):
    op: str
    operand: Expr

    def render(self, d: Dialect) -> str:
        return f"({self.op} {self.operand.to_sql(d)})"

    def columns(self) -> Tuple[str, ...]:
        return self.operand.columns()


@dataclass(frozen=True, eq=False)
class In(Expr):
    operand: Expr
    values: Tuple[Expr, ...]

    def render(self, d: Dialect) -> str:
        return f"({self.operand.to_sql(d)} IN ({', '.join(v.to_sql(d) for v in self.values)}))"

    def columns(self) -> Tuple[str, ...]:
        return self.operand.columns()


@dataclass(frozen=True, eq=False)
class IsNull(Expr):
    operand: Expr
    null: bool

    def render(self, d: Dialect) -> str:
        return f"({self.operand.to_sql(d)} IS {'' if self.null else 'NOT '}NULL)"

    def columns(self) -> Tuple[str, ...]:
        return self.operand.columns()

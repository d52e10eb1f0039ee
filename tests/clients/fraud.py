"""The fraud example every tool script in this folder runs end to end (issue #22), on asofdb or,
with `--postgres`, on PostgreSQL 15, where the feature is a plain query and the ASOF LEFT JOIN
its correlated-subquery equivalent. Each script asserts the same results on both engines:
a difference is asofdb's bug unless docs/clients.md documents it.

Usage in a script: `PORT [--postgres]` on the command line; `fraud.target()` says which.
"""
import datetime as dt
import sys

T0 = dt.datetime(2025, 1, 1, 12, 0, 0)

# Card transactions: (card, amount, event time). A NULL amount, a card whose only event is
# older than the window, and events of one card out of time order.
EVENTS = [
    (1, 30.0, T0 + dt.timedelta(minutes=10)),
    (1, 10.0, T0),
    (2, 5.5, T0 + dt.timedelta(minutes=5)),
    (2, None, T0 + dt.timedelta(minutes=20)),
    (3, 7.0, T0 - dt.timedelta(hours=2)),
]

# The training spine: (card, time, label). Card 4 has no events at all.
SPINE = [
    (1, T0 - dt.timedelta(hours=1), 0),
    (1, T0 + dt.timedelta(minutes=5), 0),
    (1, T0 + dt.timedelta(minutes=30), 1),
    (2, T0 + dt.timedelta(minutes=30), 0),
    (3, T0 + dt.timedelta(minutes=30), 1),
    (4, T0 + dt.timedelta(minutes=30), 0),
]

WINDOW = dt.timedelta(hours=1)


class Target:
    def __init__(self, port: int, postgres: bool):
        self.port = port
        self.postgres = postgres
        self.name = "postgres" if postgres else "asofdb"
        # The PostgreSQL the test starts trusts the OS user `postgres` on loopback.
        self.user = "postgres" if postgres else "asofdb"
        self.database = "postgres" if postgres else "asofdb"

    def uri(self, scheme: str = "postgresql") -> str:
        return f"{scheme}://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def create_events(self) -> str:
        ddl = "CREATE TABLE tx (card BIGINT, amount DOUBLE PRECISION, ts TIMESTAMP NOT NULL)"
        return ddl if self.postgres else ddl + " WITH (event_time = 'ts')"

    def create_feature(self) -> str:
        if self.postgres:
            return "CREATE VIEW card_max_1h AS SELECT card, max(amount) AS max_amount FROM tx GROUP BY card"
        return ("CREATE FEATURE card_max_1h AS SELECT card, max(amount) AS max_amount FROM tx "
                "GROUP BY card WINDOW SLIDING INTERVAL '1 hour'")

    def training_set(self, spine: str = "spine") -> str:
        """The spine with each card's max amount over the hour up to each row's time."""
        if self.postgres:
            return (f"SELECT s.card, s.t, s.label, (SELECT max(amount) FROM tx WHERE tx.card = s.card "
                    f"AND tx.ts <= s.t AND tx.ts > s.t - interval '1 hour') AS max_amount "
                    f"FROM {spine} s ORDER BY s.card, s.t")
        return (f"SELECT s.card, s.t, s.label, f.max_amount FROM {spine} s "
                f"ASOF LEFT JOIN card_max_1h f ON s.card = f.card AND s.t >= f.ts ORDER BY s.card, s.t")


def target() -> Target:
    return Target(int(sys.argv[1]), "--postgres" in sys.argv[2:])


def expected_training():
    """(card, t, label, max_amount or None) per spine row, in (card, t) order."""
    rows = []
    for card, t, label in sorted(SPINE):
        amounts = [a for c, a, ts in EVENTS if c == card and a is not None and t - WINDOW < ts <= t]
        rows.append((card, t, label, max(amounts) if amounts else None))
    return rows


def same_rows(got, what: str):
    """Fails unless `got` (tuples, NaN or None for NULL) equals the expected training set."""
    def norm(value):
        if isinstance(value, float) and value != value:
            return None
        if hasattr(value, "to_pydatetime"):
            value = value.to_pydatetime()
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.replace(tzinfo=None)
        if hasattr(value, "item"):
            value = value.item()
        return value
    got = [tuple(norm(v) for v in row) for row in got]
    expected = expected_training()
    assert got == expected, f"{what}: got {got}, expected {expected}"

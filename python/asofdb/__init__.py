"""asofdb for Python: declare features with a pandas-like API, build point-in-time training
sets as DataFrames, serve current values, and compute the same definitions on DuckDB or Spark
without a server (``asofdb.local``).

    import asofdb
    db = asofdb.connect("postgresql://asofdb@127.0.0.1:5433/asofdb")
    tx = db.table("transactions")
    db.create_feature("card_max_1h", tx.groupby("cc_num")["amt"].window(asofdb.sliding("1h")).max())
    train = db.training_set(spine, features=["card_max_1h"], time="inference_ts")
"""

from . import local
from .client import Database, connect
from .errors import AsofdbError, DefinitionError, ServerError
from .expr import Expr
from .feature import Aggregate, FeatureExpr, FeatureFunction, FeatureSpec, Table, feature, table
from .windows import Window, lifetime, session, sliding, tumbling

__all__ = [
    "Aggregate",
    "AsofdbError",
    "Database",
    "DefinitionError",
    "Expr",
    "FeatureExpr",
    "FeatureFunction",
    "FeatureSpec",
    "ServerError",
    "Table",
    "Window",
    "connect",
    "feature",
    "lifetime",
    "local",
    "session",
    "sliding",
    "table",
    "tumbling",
]
__version__ = "0.1.0"

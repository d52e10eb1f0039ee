"""Exceptions: what the server refused (with its SQLSTATE) and what was refused before sending."""

from __future__ import annotations

from typing import Optional


class AsofdbError(Exception):
    """Base class of every error this package raises."""


class DefinitionError(AsofdbError, ValueError):
    """A feature definition that cannot work, refused before anything is sent to a server."""


class ServerError(AsofdbError):
    """A statement the server refused: ``sqlstate`` is its SQLSTATE (as ``"42501"``)."""

    def __init__(self, message: str, sqlstate: Optional[str] = None, statement: Optional[str] = None):
        super().__init__(message if sqlstate is None else f"{message} (SQLSTATE {sqlstate})")
        self.message = message
        self.sqlstate = sqlstate
        self.statement = statement


def from_driver(error: Exception, statement: Optional[str] = None) -> ServerError:
    """A psycopg error as a ``ServerError`` carrying the server's SQLSTATE and primary message."""
    diag = getattr(error, "diag", None)
    message = getattr(diag, "message_primary", None) or str(error).strip()
    return ServerError(message, getattr(error, "sqlstate", None), statement)

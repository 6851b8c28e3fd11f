"""Values written into SQL text: one quoting rule for every stage that builds a DuckDB or Spark statement.

Paths, campaign ids and entity kinds can carry a quote (a store under a user's own directory, an id from a
partner's bundle), and a literal is the only way some statements take them (``read_parquet`` lists, ``SET``).
Doubling the quote is the SQL standard's escape, read the same by both engines.
"""

from __future__ import annotations

from typing import Any


def sql_string(v: Any) -> str:
    """``v`` as a quoted SQL string literal."""
    return "'" + str(v).replace("'", "''") + "'"


def sql_literal(v: Any) -> str:
    """``v`` as a SQL literal of its own type: NULL, a boolean, a number or a quoted string."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int | float):
        return repr(v)
    return sql_string(v)

"""The one quoting rule every stage uses to write a value into SQL text."""

import duckdb

from distillguard.store.sqltext import sql_literal, sql_string


def test_a_quote_in_a_value_stays_inside_its_literal():
    hostile = "x'); DROP TABLE t; --"
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT 1 AS a")
    assert con.execute(f"SELECT {sql_string(hostile)}").fetchone()[0] == hostile
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 1


def test_literals_keep_their_type():
    con = duckdb.connect()
    row = con.execute(f"SELECT {sql_literal(None)}, {sql_literal(True)}, {sql_literal(3)}, {sql_literal(0.5)}, "
                      f"{sql_literal(chr(39))}").fetchone()
    assert row == (None, True, 3, 0.5, "'")

"""Per-account behaviour features from hourly partial aggregates.

Everything is computed in two steps so replay stays cheap: ``build_partials`` folds the
exchanges once into (account, hour) partial sums; ``account_features(until=T)`` rolls those
partials up for everything seen before T. Sums, counts and maxima roll up exactly; measures
that do not (burstiness, distinct prompts) are computed from their own partials. All SQL is
plain GROUP BY / window SQL so it ports to Spark SQL with the same partitioning (account_id).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import duckdb
import pyarrow as pa

from distillguard.scan.base import capability_signals, create_as, exact_partial, exact_sum
from distillguard.scan.config import BehaviorConfig


def build_partials(con: duckdb.DuckDBPyConnection, sigs: list[str], cfg: BehaviorConfig,
                   into: Callable[[str], str] = create_as) -> list[str]:
    """Tables beh_ah (account×hour), beh_am (account×model×hour), beh_pd (account×prompt first hour),
    beh_at (account×template×hour) and, with ``system_prompt_partials``, beh_as (account×system prompt×hour) from
    ``ex``. ``into(name)``: the SQL before each table's SELECT (a CREATE,
    or for ``prepare``'s later slices an INSERT into the table of all slices; distillguard/scan/chunks.py).
    Returns the names of the tables: ``prepare`` folds exactly these across slices, without asking the
    engine's catalog (the Spark engine has none of DuckDB's)."""
    hit = float(cfg.signal_hit)
    sig_aggs = "".join(f", {exact_partial(s)} AS sum_{s}, count(*) FILTER (WHERE {s} >= {hit}) AS hit_{s}" for s in sigs)
    con.execute(f"""
    {into("beh_ah")}
    WITH per_min AS (
      SELECT account_id, date_trunc('minute', ts) AS minute, count(*) AS c FROM ex GROUP BY 1, 2),
    peak AS (
      SELECT account_id, date_trunc('hour', minute) AS hour, max(c) AS peak_min FROM per_min GROUP BY 1, 2)
    SELECT a.*, p.peak_min FROM (
      SELECT account_id, hour, count(*) AS n,
             count(*) FILTER (WHERE n_turns <= 1) AS n_single, sum(n_turns) AS sum_turns,
             count(*) FILTER (WHERE reasoning) AS n_reason,
             count(max_tokens) AS n_maxtok, sum(max_tokens) AS sum_maxtok,
             count(*) FILTER (WHERE max_tokens >= {int(cfg.high_max_tokens)}) AS n_maxtok_high,
             count(temperature) AS n_temp, {exact_partial('temperature')} AS sum_temp,
             {exact_partial('temperature * temperature')} AS sum_temp2,
             sum(input_tokens) AS sum_in, sum(output_tokens) AS sum_out, count(output_tokens) AS n_out,
             count(*) FILTER (WHERE has_tools) AS n_tools, count(*) FILTER (WHERE has_images) AS n_images,
             count(task_item_key) AS n_task, count(template_key) AS n_tmpl
             {sig_aggs}
      FROM ex GROUP BY 1, 2) a JOIN peak p USING (account_id, hour)
    """)
    con.execute(f"""{into("beh_am")}
                   SELECT account_id, coalesce(model, '(none)') AS model, hour, count(*) AS n FROM ex GROUP BY 1, 2, 3""")
    con.execute(f"""{into("beh_pd")}
                   SELECT account_id, prompt_h, min(hour) AS hour FROM ex GROUP BY 1, 2""")
    # account × template × hour; with ``template_partials`` also what those exchanges look like (the counts
    # ``beh_as`` keeps per system prompt), so a pool member can be read on the exchanges carrying its pool's private
    # templates too (scoring/poolshare.py)
    shares = _share_counts(sigs, hit) if cfg.template_partials else ""
    con.execute(f"""{into("beh_at")}
                   SELECT account_id, template_key, hour, count(*) AS n {shares} FROM ex
                   WHERE template_key IS NOT NULL GROUP BY 1, 2, 3""")
    made = ["beh_ah", "beh_am", "beh_pd", "beh_at"]
    if cfg.system_prompt_partials:
        # account × system prompt × hour: what an account's exchanges under one system prompt look like (one-turn,
        # reasoning, max_tokens asked, output received, each signal's hits), so a pool member's suspicion can be
        # read on the exchanges carrying its pool's private system prompts alone (scoring/poolshare.py)
        con.execute(f"""{into("beh_as")}
                       SELECT account_id, system_prompt AS entity, hour, count(*) AS n {_share_counts(sigs, hit)}
                       FROM ex WHERE system_prompt IS NOT NULL GROUP BY 1, 2, 3""")
        made.append("beh_as")
    return made


def _share_counts(sigs: list[str], hit: float) -> str:
    """The counts the account model's share components are made of, for a partial grouped by some content entity:
    one-turn, reasoning, max_tokens asked, output received, task items and each signal's hits (scoring/poolshare.py
    reads them)."""
    hits = "".join(f", count(*) FILTER (WHERE {s} >= {hit}) AS hit_{s}" for s in sigs)
    return (", count(*) FILTER (WHERE n_turns <= 1) AS n_single, count(*) FILTER (WHERE reasoning) AS n_reason, "
            "count(max_tokens) AS n_maxtok, sum(max_tokens) AS sum_maxtok, sum(output_tokens) AS sum_out, "
            "count(output_tokens) AS n_out, count(task_item_key) AS n_task" + hits)


def _until(until: datetime | None, col: str = "hour", since: datetime | None = None) -> str:
    """SQL for ``since <= col < until`` (either end open when None)."""
    w = f"{col} < TIMESTAMPTZ '{until.isoformat()}'" if until is not None else "true"
    return w if since is None else f"{w} AND {col} >= TIMESTAMPTZ '{since.isoformat()}'"


def released_models(con: duckdb.DuckDBPyConnection, cfg: BehaviorConfig, until: datetime | None = None) -> list[tuple]:
    """Models first seen well after the span starts: releases an attacker may pivot to."""
    w = _until(until)
    return con.execute(f"""
      WITH m AS (SELECT model, min(hour) AS first_seen FROM beh_am WHERE {w} GROUP BY 1),
           s AS (SELECT min(first_seen) AS start FROM m)
      SELECT model, first_seen FROM m, s
      WHERE model <> '(none)' AND first_seen >= s.start + INTERVAL ({float(cfg.release_min_offset_hours)}) HOUR
      ORDER BY first_seen""").fetchall()


def account_features(con: duckdb.DuckDBPyConnection, sigs: list[str], cfg: BehaviorConfig,
                     until: datetime | None = None, since: datetime | None = None) -> pa.Table:
    """One row per account active before ``until`` (all time when None); with ``since``, on the traffic of
    ``[since, until)`` only (a windowed replay step: its cost follows the window, not the history)."""
    w = _until(until, since=since)
    sig_roll = "".join(f", {exact_sum('sum_' + s)} / sum(n) AS mean_{s[4:]}, sum(hit_{s}) / sum(n) AS share_{s[4:]}" for s in sigs)
    caps = capability_signals(sigs)
    cap_share = ("greatest(" + ", ".join(f"share_{c[4:]}" for c in caps) + ")") if len(caps) > 1 else \
        (f"share_{caps[0][4:]}" if caps else "0.0")
    rel = released_models(con, cfg, until)
    rel_list = ", ".join("'" + m.replace("'", "''") + "'" for m, _ in rel) or "NULL"
    rel_values = ", ".join(f"('{m.replace(chr(39), chr(39) * 2)}', TIMESTAMPTZ '{t.isoformat()}')" for m, t in rel)
    rel_cte = (f"rel(model, released) AS (VALUES {rel_values})" if rel
               else "rel(model, released) AS (SELECT CAST(NULL AS VARCHAR), CAST(NULL AS TIMESTAMPTZ) WHERE false)")
    sql = f"""
    WITH ah AS (SELECT * FROM beh_ah WHERE {w}),
    {rel_cte},
    roll AS (
      SELECT account_id, CAST(sum(n) AS BIGINT) AS n_exchanges, min(hour) AS first_ts, max(hour) + INTERVAL 1 HOUR AS last_ts,
             count(*) AS active_hours, count(DISTINCT date_trunc('day', hour)) AS active_days,
             CAST(max(peak_min) AS BIGINT) AS peak_rpm, CAST(sum(n * n) AS DOUBLE) AS sumsq,
             sum(n_single) / sum(n) AS single_turn_share, sum(sum_turns) / sum(n) AS mean_turns,
             sum(n_reason) / sum(n) AS reasoning_share,
             sum(sum_maxtok) / nullif(sum(n_maxtok), 0) AS mean_max_tokens, CAST(sum(n_maxtok) AS BIGINT) AS n_max_tokens,
             sum(n_maxtok_high) / sum(n) AS high_max_tokens_share,
             {exact_sum('sum_temp')} / nullif(sum(n_temp), 0) AS temp_mean,
             sqrt(greatest({exact_sum('sum_temp2')} / nullif(sum(n_temp), 0)
                           - pow({exact_sum('sum_temp')} / nullif(sum(n_temp), 0), 2), 0)) AS temp_std,
             sum(sum_out) / greatest(sum(sum_in), 1) AS out_in_ratio,
             sum(sum_out) FILTER (WHERE n_out IS NOT NULL) / nullif(sum(n_out), 0) AS mean_output_tokens, CAST(sum(n_out) AS BIGINT) AS n_output_tokens,
             sum(n_tools) / sum(n) AS tools_share, sum(n_images) / sum(n) AS images_share,
             sum(n_task) / sum(n) AS task_item_share, sum(n_tmpl) / sum(n) AS template_share
             {sig_roll}
      FROM ah GROUP BY 1),
    daily AS (SELECT account_id, CAST(max(c) AS BIGINT) AS peak_rpd FROM (
                SELECT account_id, date_trunc('day', hour) AS d, sum(n) AS c FROM ah GROUP BY 1, 2) GROUP BY 1),
    hod AS (SELECT account_id, -{exact_sum('p * ln(p)')} / ln(24) AS hour_entropy FROM (
              SELECT account_id, sum(n) / sum(sum(n)) OVER (PARTITION BY account_id) AS p
              FROM ah GROUP BY account_id, extract(hour FROM hour)) GROUP BY 1),
    pd AS (SELECT account_id, count(*) AS n_distinct_prompts FROM beh_pd WHERE {w} GROUP BY 1),
    tm AS (SELECT account_id, count(*) AS n_templates, max(c) AS top_template_n FROM (
             SELECT account_id, template_key, sum(n) AS c FROM beh_at WHERE {w} GROUP BY 1, 2) GROUP BY 1),
    -- top_model: ties go to the smallest name (arg_max took whichever row of a tie its thread saw first)
    mm AS (SELECT account_id, count(*) AS n_models, min(model) FILTER (WHERE c = top_c) AS top_model,
                  sum(c) FILTER (WHERE model IN ({rel_list})) AS n_new_model FROM (
             SELECT account_id, model, c, max(c) OVER (PARTITION BY account_id) AS top_c FROM (
               SELECT account_id, model, sum(n) AS c FROM beh_am WHERE {w} GROUP BY 1, 2)) GROUP BY 1),
    piv AS (SELECT account_id, min(epoch(am.hour - rel.released)) / 3600.0 AS pivot_delay_hours
            FROM beh_am am JOIN rel USING (model) WHERE {_until(until, 'am.hour', since)} GROUP BY 1)
    SELECT r.account_id, r.n_exchanges, r.first_ts, r.last_ts, r.active_hours, r.active_days,
           r.peak_rpm, d.peak_rpd, r.n_exchanges / r.active_days AS mean_rpd,
           a.rpm_limit, a.rpd_limit,
           r.peak_rpm / nullif(a.rpm_limit, 0) AS rpm_util,
           d.peak_rpd / nullif(a.rpd_limit, 0) AS rpd_util,
           (r.n_exchanges / r.active_days) / nullif(a.rpd_limit, 0) AS mean_rpd_util,
           -- sustained rate over the account's active span (at least 6 h), as a share of the daily limit:
           -- sees a pool account running just under its limit from its first hours, before a full day exists
           r.n_exchanges * 24.0 / greatest(span.h, 6.0) / nullif(a.rpd_limit, 0) AS rate_util,
           -- burstiness over hourly counts in the active span (Goh & Barabasi: -1 regular, 0 Poisson, 1 bursty)
           (sqrt(greatest(r.sumsq / span.h - pow(r.n_exchanges / span.h, 2), 0)) - r.n_exchanges / span.h)
             / nullif(sqrt(greatest(r.sumsq / span.h - pow(r.n_exchanges / span.h, 2), 0)) + r.n_exchanges / span.h, 0) AS burstiness,
           h.hour_entropy,
           r.single_turn_share, r.mean_turns, r.reasoning_share, r.mean_max_tokens, r.n_max_tokens, r.high_max_tokens_share,
           r.temp_mean, r.temp_std, r.out_in_ratio, r.mean_output_tokens, r.n_output_tokens, r.tools_share, r.images_share,
           r.task_item_share, r.template_share,
           coalesce(tm.n_templates, 0) AS n_templates,
           coalesce(tm.top_template_n, 0) / r.n_exchanges AS top_template_share,
           coalesce(pd.n_distinct_prompts, 0) / r.n_exchanges AS distinct_prompt_ratio,
           mm.n_models, mm.top_model, coalesce(mm.n_new_model, 0) / r.n_exchanges AS new_model_share,
           piv.pivot_delay_hours,
           epoch(r.first_ts - a.created_at) / 86400.0 AS account_age_days,
           a.created_at, a.signup_pathway, a.verification_level, a.org_id, a.status, a.status_changed_at
           {''.join(f', r.mean_{s[4:]}, r.share_{s[4:]}' for s in sigs)},
           {cap_share if sigs else '0.0'} AS top_capability_share
    FROM roll r
    CROSS JOIN LATERAL (SELECT greatest(epoch(r.last_ts - r.first_ts) / 3600.0, 1.0) AS h) span
    LEFT JOIN daily d USING (account_id) LEFT JOIN hod h USING (account_id)
    LEFT JOIN pd USING (account_id) LEFT JOIN tm USING (account_id) LEFT JOIN mm USING (account_id)
    LEFT JOIN piv USING (account_id) LEFT JOIN accounts a USING (account_id)
    ORDER BY r.account_id
    """
    return con.sql(sql).to_arrow_table()

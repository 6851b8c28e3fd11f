"""One place that knows how to build valid exchanges and accounts for tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from distillguard.events.record import Account, Exchange, Turn, accounts_to_table, exchanges_to_table
from distillguard.store import Store

_seq = itertools.count(1)
BASE_TS = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def make_exchange(**kw) -> Exchange:
    n = next(_seq)
    prompt = kw.pop("prompt", f"question number {n}")
    defaults = dict(
        exchange_id=f"ex-{n}", ts=BASE_TS + timedelta(seconds=n), account_id="acct-1", org_id="org-1",
        model="model-a", endpoint="chat.completions", client_ip="198.51.100.7",
        turns=[Turn("user", prompt)], prompt=prompt, n_turns=1, response_text="an answer",
        response_chars=9, input_tokens=12, output_tokens=30, http_status=200, latency_ms=800,
        source_format="native",
    )
    defaults.update(kw)
    return Exchange(**defaults)


def make_account(account_id: str = "acct-1", **kw) -> Account:
    defaults = dict(account_id=account_id, org_id="org-1", created_at=BASE_TS - timedelta(days=30),
                    email_domain="example.com", signup_country="US", signup_pathway="standard",
                    verification_level=1, tier="tier-1", rpm_limit=60, rpd_limit=10_000, status="active")
    defaults.update(kw)
    return Account(**defaults)


def write_world(store: Store, exchanges: list[Exchange], accounts: list[Account] | None = None,
                key: str = "test") -> Store:
    """Write records straight into a store (bypassing readers) for stage tests."""
    store.write_exchanges(exchanges_to_table(exchanges), key=key)
    if accounts:
        store.write_accounts(accounts_to_table(accounts), key=f"0-{key}")
    return store


def table_of(exchanges: list[Exchange]) -> pa.Table:
    return exchanges_to_table(exchanges)

import base64
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distillguard.errors import ConfigError
from distillguard.scan.cli import parse_duration
from distillguard.scan.config import load_config
from distillguard.scan.report import _inline
from distillguard.store import Store
from distillguard.testing.worlds import build_tiny_world

ROOT = Path(__file__).resolve().parents[2]
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "distillguard", *args], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "COLUMNS": "160"})


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    base = tmp_path_factory.mktemp("scan")
    st = Store(base / "store", create=True)
    w = build_tiny_world(st, seed=4, days=7, plant={"attacker": XSS})
    # attacker-controlled account fields too
    from distillguard.events.record import Account, accounts_to_table
    acc = st.accounts().to_arrow_table().to_pylist()
    victim = next(r for r in acc if w.labels[r["account_id"]][0] == "camp-slow")
    victim["email_local"] = XSS
    st.write_accounts(accounts_to_table([Account(**victim)]), key="9-xss")
    r = _cli("scan", "--store", str(st.path), "--out", str(base / "res"), "--replay", "--step", "1h", "--signals", "never")
    assert r.returncode == 0, r.stderr
    return w, base / "res", r


def test_results_contract(replayed):
    w, res, _ = replayed
    t = pq.read_table(res / "accounts.parquet")
    assert t.schema.field("account_id").type == pa.string()
    assert t.schema.field("risk").type == pa.float64()
    assert t.schema.field("flagged").type == pa.bool_()
    assert t.schema.field("first_flagged_at").type == pa.timestamp("ms", tz="UTC")
    assert t.schema.field("campaign_id").type == pa.string()
    assert set(t["account_id"].to_pylist()) == set(w.labels)
    rows = t.to_pylist()
    assert all(0 <= r["risk"] <= 1 for r in rows)
    assert all(r["first_flagged_at"] is not None for r in rows if r["flagged"])
    assert all(r["campaign_id"] is None for r in rows if not r["flagged"])
    camps = orjson.loads((res / "campaigns.json").read_bytes())
    assert 2 <= len(camps) <= 3 and all(c["first_flagged_at"] for c in camps)
    assert orjson.loads((res / "meta.json").read_bytes())["detector"] == "distillguard-scan"


def test_replay_flags_each_campaign_early(replayed):
    w, res, _ = replayed
    st = w.store
    t = pq.read_table(res / "accounts.parquet").to_pylist()
    con = st.connect()
    for camp in ("camp-slow", "camp-hydra"):
        members = [a for a, (c, _) in w.labels.items() if c == camp]
        first = min(r["first_flagged_at"] for r in t if r["account_id"] in members and r["flagged"])
        before, total = con.execute(
            "SELECT count(*) FILTER (WHERE ts < ?), count(*) FROM exchanges WHERE account_id IN (SELECT unnest(?))",
            [first, members]).fetchall()[0]
        # camp-hydra is bounded at 7%: in this tiny world it is half of the ~50 accounts active in its first
        # hours, and the scorer judges shared evidence against the store's own population (a template half the
        # store sends is what a random group shares too), so its templates count only once the rest of the
        # store has shown up (measured 6.1% after the calibration of issue 11; 5% before)
        bound = 0.05 if camp == "camp-slow" else 0.07
        assert before / total < bound, (camp, before / total)


def test_report_escapes_attacker_text(replayed):
    _, res, _ = replayed
    html = (res / "report.html").read_text()
    # The only code in the page is the console's own chart stack, inlined verbatim and allowed by hash.
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    for js in (_inline("chart.umd.min.js"), _inline("console.js")):
        assert html.count(js) == 1
        digest = base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
        html = html.replace(js, "")
    assert "'unsafe-inline'" not in csp.split("script-src")[1]
    tags = re.findall(r"<script[^>]*>", html)
    assert tags.count("<script>") == 2 and all(t == "<script>" or 'type="application/json"' in t for t in tags)
    assert "<img src=x" not in html and "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, escaped
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html
    assert "Baseline" in html and 'data-graph="bg-1"' in html
    assert "first flagged" in html  # a replay scan records first flags: the harvest chart marks them


def test_report_baseline_is_the_baseline_command(replayed, tmp_path):
    """One definition of "baseline": the report's numbers are what `distillguard baseline` flags."""
    w, res, _ = replayed
    r = _cli("baseline", "--store", str(w.store.path), "--out", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    t = pq.read_table(tmp_path / "b" / "accounts.parquet")
    n = sum(t["flagged"].to_pylist())
    html = (res / "report.html").read_text()
    para = re.search(r'<section id="baseline">(.*?)</section>', html, re.S).group(1)
    assert re.search(rf"That rule flags <b>{n:,}</b> of {t.num_rows:,} accounts", para), para


def test_terminal_summary(replayed):
    _, _, r = replayed
    assert "campaigns" in r.stdout and "report" in r.stdout


def test_config_errors_name_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("graph:\n  clique_capp: 3\n")
    with pytest.raises(ConfigError, match="graph.clique_capp"):
        load_config(p)
    p.write_text("scoring:\n  flag_threshold: 2\n")
    with pytest.raises(ConfigError, match="scoring.flag_threshold"):
        load_config(p)
    with pytest.raises(ConfigError, match="--step"):
        parse_duration("soon")


def test_scan_on_empty_store_is_a_clear_error(tmp_path):
    Store(tmp_path / "e", create=True)
    r = _cli("scan", "--store", str(tmp_path / "e"), "--out", str(tmp_path / "o"), "--signals", "never")
    assert r.returncode == 2 and "no exchanges" in r.stderr


def test_a_full_scan_says_where_first_flag_times_come_from(replayed, tmp_path):
    """Empty first-flag columns say that --replay fills them: table, JSON (null + a note) and report."""
    from distillguard.ui import REPLAY_HINT, REPLAY_NOTE

    w, _, _ = replayed
    r = _cli("scan", "--store", str(w.store.path), "--out", str(tmp_path / "full"), "--signals", "never")
    assert r.returncode == 0, r.stderr
    assert REPLAY_HINT in r.stdout
    camps = orjson.loads((tmp_path / "full" / "campaigns.json").read_bytes())
    assert camps and all(c["first_flagged_at"] is None and c["first_flagged_at_note"] == REPLAY_NOTE for c in camps)
    assert orjson.loads((tmp_path / "full" / "meta.json").read_bytes())["notes"]["first_flagged_at"] == REPLAY_NOTE
    assert REPLAY_HINT in (tmp_path / "full" / "report.html").read_text()
    r = _cli("scan", "--store", str(w.store.path), "--out", str(tmp_path / "j"), "--signals", "never", "--json",
             "--no-report")
    assert orjson.loads(r.stdout)["notes"]["first_flagged_at"] == REPLAY_NOTE


def test_a_replay_scan_has_no_hint(replayed):
    from distillguard.ui import REPLAY_HINT

    _, res, r = replayed
    assert REPLAY_HINT not in r.stdout and REPLAY_HINT not in (res / "report.html").read_text()
    assert "first_flagged_at_note" not in (res / "campaigns.json").read_text()

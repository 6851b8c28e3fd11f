"""How much of each campaign is served before `watch` flags it and before enforcement applies, on a simulated clock.

Two modes:

    python bench/loop_replay.py --world WORLD_DIR --through-gateway [--hours 48] [--interval-minutes 60] [--replicas 2]
    python bench/loop_replay.py --world WORLD_DIR [--step-hours 12] [--work /tmp/loop-replay]   # direct, no gateway

**Through the gateway** (the measurement issue 14 asks for).
Real parts: the bundled mock upstream and ``--replicas`` gateways as separate processes
(``distillguard mock-upstream`` / ``distillguard gateway``), recording to a Redis stream (127.0.0.1:6379,
db ``--redis-db``, keys under a fresh ``dg-replay-<id>`` prefix, deleted at the end); the official
``openai`` SDK (chat completions) and ``anthropic`` SDK (the world's ``messages`` exchanges) as clients,
one API key per world account, the world's client address in X-Forwarded-For (the replay host is a trusted
proxy) and its User-Agent; `watch` (stream writer, signals, detection, publish) in a thread of this process.
With ``--world-lengths`` (the default since loop20) the mock answers each request with the world exchange's answer
and reasoning lengths, so what each account *receives* is the world's; without it every reply has the mock's fixed
sizes and detection's received-output evidence reads nothing (seeds 2 and 4's agentic trio flagged after 1%).

Accelerated time, in lock-step: the world's first ``--hours`` simulated hours are sent one loop interval at
a time, in time order, each request carrying its simulated time in the replay-clock header (the
gateways run with ``replay_clock.enabled``, bench only). After a window has been sent and `watch` has
stored it (every exchange a gateway answered is in the store, not merely the stream momentarily empty: a
gateway records after it answers), the simulated clock moves to the window's end, `watch` (whose clock is the simulated one)
runs its detection, publishes, and the driver waits until every replica serves the new enforcement
version before sending the next window. So enforcement decided at the end of window k is what the
gateways apply to window k+1: "within one loop interval" holds by construction in simulated time, and
the wall seconds from publish to the last replica are measured.

Gateway rate limits run on the wall clock, which the replay compresses about a thousand-fold, so they are set
out of reach: what the policy decided (throttle, protect, block) is recorded as each exchange's action and
measured from there; no 429 here is a real limit.

Scoring uses the simulator's labels only here, after the fact. Per campaign: exchanges in the whole
world, the share sent before the first detection that flagged any of its accounts, the share sent before
the gateway first applied a decision to any of its requests (and before each account was under one,
summed), and, after that, how many requests the gateways refused (403/429) or protected/throttled.
Benign personas: every request the gateways answered with anything but allow.

**Direct** (no gateway): the world's exchanges arrive in a fresh store one window of ``--step-hours`` at a
time, in time order; after each window one `watch` tick runs (signals for the new part, partials,
detection, recommendations and the enforcement the default policy applies by itself). Detection judges the
last ``--window-hours`` of traffic as `watch` does (default: the scan config's ``watch_window_hours``), so a
tick costs the window, not the history. Per campaign: the share of its exchanges sent before the first tick
that flagged any of its accounts, the hours from its first exchange to that tick's window end, and the share
before its accounts came under an applied decision; every benign account that was ever under one; the CPU
seconds of every tick and in all (compare with one `scan` of the world, signals included: the replay scores
signals too).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import redis
import yaml

PY = sys.executable
_TOOL = re.compile(r"[^a-zA-Z0-9_-]")


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([PY, "-m", "distillguard", *args], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env=env)


def _wait_http(url: str, timeout: float = 600) -> None:  # a loaded machine starts a gateway slowly
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def _messages(ex: dict) -> list[dict]:
    msgs = []
    for t in ex["turns"] or [{"role": "user", "text": ex["prompt"] or "hi"}]:
        role = t["role"] if t["role"] in ("user", "assistant") else "user"
        msgs.append({"role": role, "content": t["text"] or "."})
    if msgs[-1]["role"] != "user":
        msgs.append({"role": "user", "content": ex["prompt"] or "continue"})
    return msgs


class Sender:
    """One request per world exchange through the official SDKs; returns (status, exchange id)."""

    def __init__(self, urls: list[str], http_client=None, world_lengths: bool = False):
        # http_client: the SDKs' own client (tests: a mock transport)
        import anthropic
        import openai

        self.world_lengths = world_lengths

        self.openai, self.anthropic = openai, anthropic
        kw = {"http_client": http_client} if http_client is not None else {}
        self.oa = [openai.OpenAI(base_url=u + "/v1", api_key="unused", max_retries=0, timeout=60, **kw) for u in urls]
        self.an = [anthropic.Anthropic(base_url=u, api_key="unused", max_retries=0, timeout=60, **kw) for u in urls]

    def send(self, ex: dict, replica: int) -> tuple[int, str | None]:
        key = "sk-replay-" + ex["account_id"]
        hdrs = {"x-distillguard-replay-ts": str(int(ex["ts"].timestamp() * 1000)),
                "x-forwarded-for": ex["client_ip"] or "192.0.2.1"}
        if ex["user_agent"]:
            hdrs["user-agent"] = ex["user_agent"]
        # what a TLS-terminating edge tells the gateway about the client (gateway ``identity.ja4_header`` /
        # ``asn_header``; the gateways ignore these unless configured with --edge-facts)
        if ex.get("tls_ja4"):
            hdrs["x-client-ja4"] = ex["tls_ja4"]
        if ex.get("client_asn") is not None:
            hdrs["x-client-asn"] = str(ex["client_asn"])
        if ex["conversation_id"]:
            hdrs["x-conversation-id"] = ex["conversation_id"][:200]
        if self.world_lengths:  # the mock upstream answers as long as the world's teacher did (both, always: one
            # header set for every request, so the header order is the same whatever the exchange)
            reas = int(ex.get("reasoning_tokens") or 0)
            hdrs["x-mock-answer-words"] = str(max(int(ex.get("output_tokens") or 0) - reas, 0))
            hdrs["x-mock-reasoning-words"] = str(reas)
        tools = [t for t in (_TOOL.sub("_", n)[:64] for n in (ex["tools_offered"] or [])) if t]
        mt = max(1, min(int(ex["max_tokens"] or 256), 4096))
        try:
            if ex["endpoint"] == "messages":
                kw = {"system": ex["system_prompt"]} if ex["system_prompt"] else {}
                if tools:
                    kw["tools"] = [{"name": t, "input_schema": {"type": "object", "properties": {}}} for t in tools]
                # the key as the client's own credential: an x-api-key header on top of the client's would send two
                # (the anthropic SDK puts its api_key in the authorization header; the gateway refuses two keys)
                r = self.an[replica].with_options(api_key=key).messages.with_raw_response.create(
                    model=ex["model"] or "m", max_tokens=mt, messages=_messages(ex), extra_headers=hdrs, **kw)
            else:
                msgs = _messages(ex)
                if ex["system_prompt"]:
                    msgs = [{"role": "system", "content": ex["system_prompt"]}, *msgs]
                kw = {}
                if tools:
                    kw["tools"] = [{"type": "function", "function": {"name": t, "parameters": {"type": "object",
                                                                                            "properties": {}}}}
                                   for t in tools]
                if ex["reasoning_requested"]:
                    kw["reasoning_effort"] = ex["reasoning_effort"] or "medium"
                if ex["temperature"] is not None:
                    kw["temperature"] = float(ex["temperature"])
                r = self.oa[replica].with_options(api_key=key).chat.completions.with_raw_response.create(
                    model=ex["model"] or "m", messages=msgs, max_tokens=mt, extra_headers=hdrs, **kw)
            return r.status_code, r.headers.get("x-distillguard-exchange-id")
        except (self.openai.APIStatusError, self.anthropic.APIStatusError) as e:
            return e.status_code, e.response.headers.get("x-distillguard-exchange-id")


def _stream_drained(r: redis.Redis, stream: str, group: str) -> bool:
    try:
        groups = r.xinfo_groups(stream)
    except redis.ResponseError:
        return False
    g = next((g for g in groups if g["name"] in (group, group.encode())), None)
    return g is not None and g["pending"] == 0 and (g.get("lag") or 0) == 0


def _stored(con, st) -> int:
    """Exchanges in the store's parts now (the writer adds parts while the driver waits)."""
    files = st.exchange_files()
    if not files:
        return 0
    lst = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    return con.execute(f"SELECT count(*) FROM read_parquet([{lst}], union_by_name=true)").fetchone()[0]


def gateway_main(argv=None) -> None:  # noqa: C901 - one measured run, in order
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", required=True)
    ap.add_argument("--work", default="/tmp/loop-gw-replay")
    ap.add_argument("--hours", type=float, default=48.0, help="Simulated hours replayed (from the world's start).")
    ap.add_argument("--interval-minutes", type=float, default=60.0, help="watch's detection interval (simulated).")
    ap.add_argument("--step-minutes", type=float, default=None,
                    help="Send in steps of this many simulated minutes after the first interval (default: the "
                         "interval): between two scheduled detections `watch` gets a tick at every step's end and "
                         "detects early when its volume trigger fires (scan config watch_trigger_*).")
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--clients", type=int, default=8, help="Client threads sending at once.")
    ap.add_argument("--redis-db", type=int, default=7)
    ap.add_argument("--edge-facts", action=argparse.BooleanOptionalAction, default=False,
                    help="The gateways believe the replay host's JA4 and ASN headers, as behind a TLS-terminating "
                         "edge that forwards them (identity.ja4_header / asn_header). Off (the default, as every "
                         "run before 2026-12-04): the world's TLS fingerprints and ASNs are not recorded.")
    ap.add_argument("--world-lengths", action=argparse.BooleanOptionalAction, default=True,
                    help="The mock upstream answers each request with the world's recorded answer and reasoning "
                         "lengths (output_tokens, reasoning_tokens), so what each account receives is the world's. "
                         "Off (every run before loop20, 2026-12-05): every reply has the mock's 20 + 40 words, and "
                         "detection's received-output evidence reads nothing.")
    ap.add_argument("--stop-after-wall", type=float, default=None,
                    help="Send no new window after this many wall seconds; score what was sent (a loaded machine).")
    a = ap.parse_args(argv)
    import duckdb

    from distillguard.gateway.identity import hash_key, pepper_from_env
    from distillguard.scan.config import load_config
    from distillguard.store import Store
    from distillguard.testing.net import free_port
    from distillguard.watch import WatchOptions, run_watch

    os.environ.setdefault("DISTILLGUARD_KEY_PEPPER", "replay-bench-pepper")
    os.environ.setdefault("DISTILLGUARD_REASONING_SECRET", "replay-bench-secret")
    redis_url = f"redis://127.0.0.1:6379/{a.redis_db}"
    prefix = f"dg-replay-{uuid.uuid4().hex[:8]}"
    stream, group = f"{prefix}:exchanges", "distillguard-writer"
    enf_prefix = f"{prefix}:enforcement"
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src = Store(a.world)
    st = Store(work / "store", create=True)
    accounts = src.accounts().to_arrow_table()
    st.write_accounts(accounts)
    pepper = pepper_from_env("DISTILLGUARD_KEY_PEPPER")
    keys = [{"key_hash": hash_key("sk-replay-" + r["account_id"], pepper), "key_id": "k-" + r["account_id"][-12:],
             "account_id": r["account_id"], "org_id": r.get("org_id")}
            for r in accounts.select(["account_id", "org_id"]).to_pylist()]
    (work / "keys.yaml").write_text(yaml.safe_dump({"keys": keys}, sort_keys=False))

    procs: list[subprocess.Popen] = []
    rc = redis.Redis.from_url(redis_url)
    out: dict = {"world": a.world, "hours": a.hours, "interval_minutes": a.interval_minutes, "replicas": a.replicas,
                 "edge_facts": a.edge_facts, "world_lengths": a.world_lengths,
                 "date": datetime.now(UTC).isoformat(timespec="seconds"), "load_before": os.getloadavg()}
    stop = threading.Event()
    watch_t = None
    try:
        up_port = free_port()
        procs.append(_spawn(["mock-upstream", "--port", str(up_port), "--reasoning-words", "40",
                             "--answer-words", "20"], work / "upstream.log"))
        _wait_http(f"http://127.0.0.1:{up_port}/v1/models")
        urls = []
        for i in range(a.replicas):
            port = free_port()
            cfg = {"server": {"port": port}, "upstream": {"url": f"http://127.0.0.1:{up_port}/v1"},
                   "identity": {"keys_file": str(work / "keys.yaml"), "trusted_proxies": ["127.0.0.1/32"],
                                **({"ja4_header": "x-client-ja4", "asn_header": "x-client-asn"} if a.edge_facts else {})},
                   "recorder": {"mode": "redis", "redis_url": redis_url, "redis_stream": stream},
                   # rate limits run on the wall clock, which an accelerated replay compresses ~1,000-fold: set
                   # out of reach, so only what the policy decided (throttle, protect, block — recorded as the
                   # exchange's action) is measured, not a replay artefact (a busy benign app hit 429s at 600/min)
                   "limits": {"account": {"requests": {"rate": 1e9}, "tokens": {"rate": 1e12}}},
                   "logging": {"level": "warning"},
                   "store": str(st.path), "enforcement_redis_url": redis_url, "enforcement_redis_prefix": enf_prefix,
                   "reload_seconds": 0.5, "replay_clock": {"enabled": True}}
            (work / f"gw{i}.yaml").write_text(yaml.safe_dump(cfg))
            procs.append(_spawn(["gateway", "-c", str(work / f"gw{i}.yaml")], work / f"gw{i}.log"))
            urls.append(f"http://127.0.0.1:{port}")
        for u in urls:
            _wait_http(u + "/readyz")

        # watch, on the simulated clock
        sim = {"now": 0.0}
        ticks: list = []
        cond = threading.Condition()

        def on_tick(rep):
            with cond:
                ticks.append(rep)
                cond.notify_all()

        # as `distillguard watch` runs: windowed detection (the scan config's watch_window_hours) and with it the
        # carrying forward of earlier findings, which decides how long a transient flag stays enforced
        window_hours = load_config(None).watch_window_hours
        out["watch_window_hours"] = window_hours
        opts = WatchOptions(interval_seconds=a.interval_minutes * 60, redis_url=redis_url, stream=stream, group=group,
                            publish_url=redis_url, publish_prefix=enf_prefix, clock=lambda: sim["now"],
                            window_hours=window_hours)
        scon = duckdb.connect()
        scon.execute("SET threads TO 1")
        xglob = f"{Path(a.world) / 'exchanges'}/**/*.parquet"
        t0, = scon.execute(f"SELECT min(ts) FROM read_parquet('{xglob}', hive_partitioning=false)").fetchone()
        sim["now"] = t0.timestamp()
        with cond:
            watch_t = threading.Thread(target=run_watch, args=(st, opts, stop, 0.3, on_tick), daemon=True)
            watch_t.start()
            cond.wait_for(lambda: ticks, timeout=60)  # the first tick marks the loop's start (nothing to detect)
        interval = timedelta(minutes=a.interval_minutes)
        step = timedelta(minutes=a.step_minutes or a.interval_minutes)
        out["step_minutes"] = a.step_minutes or a.interval_minutes
        out["trigger"] = {k: getattr(load_config(None), k) for k in
                          ("watch_trigger_min_requests", "watch_trigger_growth", "watch_trigger_min_minutes")}
        end_all = t0 + timedelta(hours=a.hours)
        sender = Sender(urls, world_lengths=a.world_lengths)
        cols = ("exchange_id, ts, account_id, endpoint, model, client_ip, user_agent, conversation_id, system_prompt, "
                "turns, prompt, tools_offered, max_tokens, temperature, reasoning_requested, reasoning_effort, "
                "tls_ja4, client_asn, output_tokens, reasoning_tokens")
        names = [c.strip() for c in cols.split(",")]
        sent: list[tuple[str, datetime, int, str | None]] = []  # (account, ts, status, gateway exchange id)
        lags, windows = [], []
        statuses: dict[str, int] = {}  # "endpoint status" -> requests
        expected = 0  # exchanges the gateways answered with an exchange id: each is recorded once
        per_replica: list[list[float]] = [[] for _ in urls]  # publish → this replica serves it, wall s
        flagged_at: dict[str, datetime] = {}
        wall0 = time.perf_counter()
        w = t0
        k = 0
        pool = ThreadPoolExecutor(a.clients)
        while w < end_all:
            if a.stop_after_wall and time.perf_counter() - wall0 > a.stop_after_wall:
                out["stopped_early"] = f"after {k} windows ({a.stop_after_wall:.0f} wall seconds); scored what was sent"
                break
            w_end = min(w + (interval if k == 0 else step), end_all)  # the loop starts after one interval
            rows = scon.execute(f"SELECT {cols} FROM read_parquet('{xglob}', hive_partitioning=false) "
                                "WHERE ts >= ? AND ts < ? ORDER BY ts", [w, w_end]).fetchall()
            rows = [dict(zip(names, r, strict=True)) for r in rows]
            s0 = time.perf_counter()
            res = list(pool.map(lambda ix, k=k: sender.send(ix[1], (k + ix[0]) % a.replicas), enumerate(rows)))
            send_s = time.perf_counter() - s0
            sent.extend((ex["account_id"], ex["ts"], s, x) for ex, (s, x) in zip(rows, res, strict=True))
            for ex, (s, _) in zip(rows, res, strict=True):
                statuses[f'{ex["endpoint"]} {s}'] = statuses.get(f'{ex["endpoint"]} {s}', 0) + 1
            bad = sum(n for kst, n in statuses.items() if not kst.endswith((" 200", " 403", " 429")))
            if bad > 0.01 * len(sent):  # requests the gateway refused as malformed are never recorded: no measurement
                raise RuntimeError(f"{bad} of {len(sent)} requests failed (not 200/403/429): {statuses}")
            d0 = time.perf_counter()
            # A gateway answers before its recorder has put the exchange on the stream (group commit every
            # flush_interval_ms, later under load): an empty stream is not yet a stored window. Wait until the
            # store holds every exchange the gateways answered with an id, and the stream is drained.
            expected += sum(1 for _, x in res if x is not None)
            drained_at = None
            while True:
                if _stream_drained(rc, stream, group):
                    n_stored = _stored(scon, st)
                    if n_stored >= expected:
                        break
                    drained_at = drained_at or time.perf_counter()
                    if time.perf_counter() - drained_at > 120:  # answered but never recorded: say so, go on
                        out.setdefault("unrecorded_after_120s", []).append({"window": k, "missing": expected - n_stored})
                        break
                time.sleep(0.2)
            n_ticks = len(ticks)
            rep = None
            with cond:
                sim["now"] = w_end.timestamp()
                # a loaded machine can take many minutes per detection: wait for it, unless the run must end
                # (then the window's requests are scored, its detection is not)
                give_up = wall0 + 1.5 * a.stop_after_wall if a.stop_after_wall else float("inf")
                # the first tick that started at the window's end has scored and folded all of it, and detected
                # if an interval was up (or the volume trigger fired)
                while rep is None and time.perf_counter() < give_up:
                    cond.wait_for(lambda n=n_ticks: any((r.clock_at or 0) >= sim["now"] for r in ticks[n:]),
                                  timeout=60)
                    rep = next((r for r in ticks[n_ticks:] if (r.clock_at or 0) >= sim["now"]), None)
            if rep is None:
                out["stopped_early"] = f"window {k}'s detection unfinished after {time.perf_counter() - d0:.0f} s"
                w = w_end
                break
            version = rep.published_version  # published in the same tick, after detection (None: unchanged)
            detect_s = time.perf_counter() - d0
            if st.has_table("account_risk"):
                con = st.connect(threads=1)
                for (acct,) in con.execute("SELECT account_id FROM account_risk WHERE flagged").fetchall():
                    flagged_at.setdefault(acct, w_end)
                con.close()
            lag = None
            if version is not None:
                p0 = time.monotonic()
                pending = set(urls)
                while pending:
                    for u in list(pending):
                        try:
                            ver = httpx.get(u + "/readyz", timeout=30).json().get("enforcement_version") or 0
                        except httpx.HTTPError:
                            continue  # a replica slow to answer on a loaded machine: ask again
                        if ver >= version:
                            pending.discard(u)
                            per_replica[urls.index(u)].append(round(time.monotonic() - p0, 2))
                    time.sleep(0.05)
                lag = time.monotonic() - p0
                lags.append(round(lag, 2))
            windows.append({"end": w_end.isoformat(), "sent": len(rows), "send_s": round(send_s, 1),
                            "detect_s": round(detect_s, 1), "campaigns": rep.campaigns, "version": version,
                            "detected": rep.detected, "triggered_by": rep.triggered_by,
                            "trigger_accounts": rep.trigger_accounts, "withheld": rep.withheld,
                            "detect_cpu_s": round(rep.cpu.get("tick.detect_cpu", 0.0), 2),
                            "tick_cpu_s": round(sum(v for kk, v in rep.cpu.items() if kk.startswith("tick.")), 2)})
            print(f"window {k} → {w_end:%m-%d %H:%M}: {len(rows)} sent in {send_s:.1f}s, tick {detect_s:.1f}s, "
                  f"detected {rep.detected} (trigger {rep.triggered_by}), detect CPU "
                  f"{windows[-1]['detect_cpu_s']}s, {rep.campaigns} campaigns, version {version}, replicas {lag}",
                  file=sys.stderr, flush=True)
            w, k = w_end, k + 1
        pool.shutdown()
        out["hours_replayed"] = round((w - t0).total_seconds() / 3600, 2)
        out["wall_seconds"] = round(time.perf_counter() - wall0)
        out["sent"] = len(sent)
        out["statuses"] = dict(sorted(statuses.items()))
        out["windows"] = len(windows)
        out["detect_seconds"] = [x["detect_s"] for x in windows if x["detected"]]
        out["detections"] = sum(1 for x in windows if x["detected"])
        out["triggered_detections"] = [x["end"] for x in windows if x["detected"] and x["triggered_by"]]
        out["trigger_accounts"] = {x["end"]: x["trigger_accounts"] for x in windows if x["trigger_accounts"]}
        # new flags of a triggered detection whose enforcement waited for the next detection (watch_trigger_confirm)
        out["withheld"] = {x["end"]: x["withheld"] for x in windows if x["withheld"]}
        out["detect_cpu_s"] = [x["detect_cpu_s"] for x in windows if x["detected"]]
        out["tick_cpu_s_without_detection"] = [x["tick_cpu_s"] for x in windows if not x["detected"]]
        out["publish_to_all_replicas_s"] = {"n": len(lags), "max": max(lags) if lags else None,
                                            "median": sorted(lags)[len(lags) // 2] if lags else None}
        out["publish_to_replica_s"] = [{"replica": i, "n": len(x), "median": sorted(x)[len(x) // 2] if x else None,
                                        "max": max(x) if x else None} for i, x in enumerate(per_replica)]
        out["send_rate_per_s"] = round(len(sent) / max(1e-9, sum(x["send_s"] for x in windows)), 1)
        out.update(_score(a.world, xglob, st, sent, flagged_at))
    finally:
        stop.set()
        if watch_t is not None:
            watch_t.join(30)
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        for key in rc.scan_iter(prefix + ":*"):
            rc.delete(key)
    out["peak_rss_mb_driver"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["load_after"] = os.getloadavg()
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2, default=str).decode())


def _score(world: str, xglob: str, st, sent, flagged_at) -> dict:
    """Per campaign and for benign personas, from the labels (measurement only) and what the gateways recorded."""
    import duckdb

    con = duckdb.connect()
    labels = {r[0]: (r[1], r[2]) for r in con.execute(
        f"SELECT account_id, campaign_id, persona FROM read_parquet('{Path(world) / 'labels.parquet'}')").fetchall()}
    totals = dict(con.execute(f"""SELECT l.campaign_id, count(*) FROM read_parquet('{xglob}', hive_partitioning=false) e
        JOIN read_parquet('{Path(world) / 'labels.parquet'}') l USING (account_id)
        WHERE l.campaign_id IS NOT NULL GROUP BY 1""").fetchall())
    scon = st.connect(threads=1)
    action = dict(scon.execute("SELECT exchange_id, action FROM exchanges").fetchall())
    scon.close()
    camp: dict[str, dict] = {}
    first_flag: dict[str, datetime] = {}
    for acct, t in flagged_at.items():
        cid = labels.get(acct, (None, None))[0]
        if cid:
            first_flag[cid] = min(first_flag.get(cid, t), t)
    # One pass in time order: the first request of each campaign / account the gateway answered with anything
    # but allow is known before any later request of it is counted (a request at that very time counts as after).
    first_enf: dict[str, datetime] = {}
    acct_enf: dict[str, datetime] = {}
    benign: dict[str, dict] = {}
    for acct, ts, status, xid in sorted(sent, key=lambda r: r[1]):
        cid, persona = labels.get(acct, (None, "unknown"))
        act = action.get(xid) or "allow"
        hit = act != "allow" or status in (403, 429)
        if hit:
            acct_enf.setdefault(acct, ts)
            if cid:
                first_enf.setdefault(cid, ts)
        if cid is None:
            if hit:
                b = benign.setdefault(persona, {"requests": 0, "accounts": set(), "actions": {}})
                b["requests"] += 1
                b["accounts"].add(acct)
                k = "refused_403" if status == 403 else "rate_limited_429" if status == 429 else act
                b["actions"][k] = b["actions"].get(k, 0) + 1
            continue
        c = camp.setdefault(cid, {"exchanges_world": totals.get(cid, 0), "replayed": 0, "before_first_flag": 0,
                                  "before_first_enforcement": 0, "before_own_account_enforced": 0,
                                  "after": {"refused_403": 0, "rate_limited_429": 0, "protect": 0, "throttle": 0,
                                            "block": 0, "verify": 0, "allow": 0}, "accounts": set(),
                                  "accounts_enforced": set()})
        c["replayed"] += 1
        c["accounts"].add(acct)
        if cid not in first_flag or ts < first_flag[cid]:
            c["before_first_flag"] += 1
        if cid not in first_enf or ts < first_enf[cid]:
            c["before_first_enforcement"] += 1
        if acct not in acct_enf or ts < acct_enf[acct]:
            c["before_own_account_enforced"] += 1
        else:
            c["accounts_enforced"].add(acct)
            c["after"]["refused_403" if status == 403 else "rate_limited_429" if status == 429 else act] += 1
    for cid, c in camp.items():
        n = c["exchanges_world"] or 1
        c["accounts"], c["accounts_enforced"] = len(c["accounts"]), len(c["accounts_enforced"])
        c["first_flag"] = first_flag[cid].isoformat() if cid in first_flag else None
        c["first_enforcement"] = first_enf[cid].isoformat() if cid in first_enf else None
        c["share_before_first_flag"] = round(c["before_first_flag"] / n, 4) if cid in first_flag else None
        c["share_before_first_enforcement"] = round(c["before_first_enforcement"] / n, 4) if cid in first_enf else None
    return {"campaigns": dict(sorted(camp.items())),
            "benign_not_allowed": {p: {"requests": b["requests"], "accounts": len(b["accounts"]),
                                       "account_ids": sorted(b["accounts"]), "actions": dict(sorted(b["actions"].items()))}
                                   for p, b in sorted(benign.items())},
            # benign accounts some detection flagged (whether or not a request of theirs was answered otherwise)
            "benign_flagged": sorted([acct, labels.get(acct, (None, "unknown"))[1], t.isoformat()]
                                     for acct, t in flagged_at.items() if not labels.get(acct, (None, None))[0])}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the signals workers watch forks)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _window_rows(src, scon, t: datetime, end: datetime):
    """The world's exchanges in [t, end) in time order, read from the day parts that can hold them only (the
    world's parts are one directory a day): the same rows as a query over every part, at about 60% of its CPU."""
    days = {(t.date() + timedelta(days=i)).isoformat() for i in range((end.date() - t.date()).days + 1)}
    files = [f for f in src.exchange_files() if any(f"day={d}" in str(f) for d in days)]
    if not files:
        return scon.sql("SELECT * FROM exchanges WHERE false").to_arrow_table()
    return scon.sql(f"SELECT * FROM ({src.exchanges_sql(files=files)}) WHERE ts >= $1 AND ts < $2 ORDER BY ts",
                    params=[t, end]).to_arrow_table()


def _campaign_shares(scon, flagged_at: dict, enforced_at: dict) -> dict[str, dict]:
    """Per campaign (the simulator's labels, after the fact): its exchanges, those sent before its first flag and
    before their own account's enforcement, its first exchange, first flag, accounts and accounts enforced.

    In DuckDB over the labels view: the loop this replaces fetched every campaign exchange into Python (2.1M rows
    at scale 0.1, about 6 CPU-s of main's replay; ~21M at 1.0)."""
    import pyarrow as pa

    def reg(name: str, d: dict) -> None:
        scon.register(name, pa.table({"account_id": pa.array(list(d), pa.string()),
                                      "t": pa.array(list(d.values()), pa.timestamp("us", tz="UTC"))}))

    reg("_flagged", flagged_at)
    reg("_enforced", enforced_at)
    rows = scon.execute("""
        WITH ff AS (SELECT l.campaign_id, min(f.t) AS first_flag FROM labels l JOIN _flagged f USING (account_id)
                    WHERE l.campaign_id IS NOT NULL GROUP BY 1)
        SELECT l.campaign_id, count(*), count(*) FILTER (WHERE ff.first_flag IS NULL OR e.ts < ff.first_flag),
               count(*) FILTER (WHERE n.t IS NULL OR e.ts < n.t), min(e.ts), count(DISTINCT e.account_id),
               count(DISTINCT e.account_id) FILTER (WHERE n.t IS NOT NULL), any_value(ff.first_flag)
        FROM exchanges e JOIN labels l USING (account_id) LEFT JOIN ff USING (campaign_id)
        LEFT JOIN _enforced n USING (account_id)
        WHERE l.campaign_id IS NOT NULL GROUP BY 1 ORDER BY 1""").fetchall()
    return {r[0]: {"exchanges": r[1], "before_first_flag": r[2], "before_enforcement": r[3], "first_exchange": r[4],
                   "accounts": r[5], "accounts_enforced": r[6], "first_flag": r[7]} for r in rows}


def direct_main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", required=True)
    ap.add_argument("--work", default="/tmp/loop-replay")
    ap.add_argument("--step-hours", type=float, default=12.0)
    ap.add_argument("--hours", type=float, default=None,
                    help="replay only the world's first this many hours (scored over the whole world's exchanges)")
    ap.add_argument("--window-hours", type=float, default=-1,
                    help="each detection on the last this many hours of traffic, as `distillguard watch` runs "
                         "(default: the scan config's watch_window_hours; 0: every detection on all traffic)")
    ap.add_argument("--config", default=None, help="scan config YAML (default: the built-in configuration)")
    ap.add_argument("--full-every", type=int, default=None,
                    help="watch_full_every: a full detection every this many, light ones between (watchlight.py)")
    a = ap.parse_args(argv)
    from distillguard.scan.config import load_config
    from distillguard.store import Store
    from distillguard.watch import WatchOptions, load_state, tick

    src = Store(a.world)
    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    dst = Store(work / "store", create=True)
    dst.write_accounts(src.accounts().to_arrow_table())
    scon = src.connect(threads=2)
    t0, t1 = scon.execute("SELECT min(ts), max(ts) FROM exchanges").fetchall()[0]
    if a.hours is not None:
        t1 = min(t1, t0 + timedelta(hours=a.hours) - timedelta(microseconds=1))
    # labels for the progress lines only (which campaign a tick first flagged); detection never sees them
    camp_of = dict(scon.execute(f"SELECT account_id, campaign_id FROM read_parquet('{Path(a.world) / 'labels.parquet'}') "
                                "WHERE campaign_id IS NOT NULL").fetchall())
    seen: set[str] = set()
    step = timedelta(hours=a.step_hours)
    cfg, state = load_config(Path(a.config) if a.config else None), load_state(dst)
    if a.full_every is not None:
        cfg = cfg.model_copy(update={"watch_full_every": a.full_every})
    window = cfg.watch_window_hours if a.window_hours < 0 else (a.window_hours or None)
    opts = WatchOptions(interval_seconds=0, window_hours=window)
    flagged_at: dict[str, object] = {}   # account -> end of the window after which it was first flagged
    enforced_at: dict[str, object] = {}  # account -> end of the window after which a decision applied to it
    ticks, wall, cpu0, copy_cpu = [], time.perf_counter(), _cpu(), 0.0
    t = t0
    i = 0
    while t <= t1:
        end = t + step
        c = _cpu()
        part = _window_rows(src, scon, t, min(end, t1 + timedelta(microseconds=1)))
        if part.num_rows:
            dst.write_exchanges(part, key=f"w{i:04d}")
        copy_cpu += _cpu() - c
        if part.num_rows:
            s, c = time.perf_counter(), _cpu()
            rep = tick(dst, opts, state, cfg, force_detect=True)
            ticks.append({"window_end": str(end), "exchanges": part.num_rows, "seconds": round(time.perf_counter() - s, 1),
                          "cpu_seconds": round(_cpu() - c, 1), "campaigns": rep.campaigns,
                          "light": rep.light, "joined": len(rep.joined), "joined_accounts": rep.joined,
                          "cpu_parts": {k: round(v, 2) for k, v in rep.cpu.items()}})

            con = dst.connect(threads=2)
            for (acct,) in con.execute("SELECT account_id FROM account_risk WHERE flagged").fetchall():
                flagged_at.setdefault(acct, end)
            if dst.has_table("enforcement"):
                for (acct,) in con.execute("""
                        WITH cur AS (SELECT * FROM enforcement WHERE source = 'scan' AND action <> 'allow'
                                     AND (expires_at IS NULL OR expires_at > ?))
                        SELECT subject_id FROM cur WHERE subject_type = 'account'
                        UNION SELECT ac.account_id FROM cur JOIN account_clusters ac
                              ON cur.subject_type = 'cluster' AND ac.cluster_id = cur.subject_id""", [end]).fetchall():
                    enforced_at.setdefault(acct, end)
            con.close()
            new = sorted({camp_of[x] for x in flagged_at if x in camp_of} - seen)
            seen.update(new)
            light = f" (light, {len(rep.joined)} joined)" if rep.light else ""
            print(f"tick {i} → {end:%m-%d %H:%M}: {part.num_rows:,} exchanges, {ticks[-1]['seconds']} s, "
                  f"{ticks[-1]['cpu_seconds']} CPU-s, {rep.campaigns} campaigns{light}; first flagged: {new}; "
                  f"CPU-s by part: {orjson.dumps(ticks[-1]['cpu_parts']).decode()}", file=sys.stderr, flush=True)
        t, i = end, i + 1
    scon.execute(f"CREATE VIEW labels AS SELECT * FROM read_parquet('{Path(a.world) / 'labels.parquet'}')")
    per = _campaign_shares(scon, flagged_at, enforced_at)
    cpu = _cpu() - cpu0
    out = {"world": a.world, "step_hours": a.step_hours, "watch_full_every": cfg.watch_full_every, "window_hours": window, "ticks": len(ticks), "wall_seconds": round(time.perf_counter() - wall),
           "cpu_seconds": round(cpu, 1), "exchanges": sum(x["exchanges"] for x in ticks),
           "cpu_seconds_per_m_exchanges": round(cpu / max(1e-9, sum(x["exchanges"] for x in ticks) / 1e6), 1),
           # the ticks' own CPU, and what the bench spent copying each day's traffic from the world into the
           # replay store (a gateway's recorder's work in a real `watch`) and scoring: the rest of cpu_seconds
           "tick_cpu_seconds_sum": round(sum(x["cpu_seconds"] for x in ticks), 1),
           "copy_cpu_seconds": round(copy_cpu, 1),
           "campaigns": {}, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "load": os.getloadavg()}
    for cid, p in per.items():
        first = p.pop("first_flag")
        ttd = first - p["first_exchange"] if first is not None else None
        out["campaigns"][cid] = {**p, "share_before_first_flag": round(p["before_first_flag"] / p["exchanges"], 4),
                                 # time-to-detect: from the campaign's first exchange to the end of the window
                                 # whose tick first flagged one of its accounts (a multiple of --step-hours at best)
                                 "hours_to_detect": round(ttd.total_seconds() / 3600, 2) if ttd is not None else None,
                                 "share_before_enforcement": round(p["before_enforcement"] / p["exchanges"], 4),
                                 "first_flag": str(first)}
    benign = {r[0]: r[1] for r in scon.execute("SELECT account_id, persona FROM labels WHERE campaign_id IS NULL").fetchall()}
    hit = sorted(a for a in enforced_at if a in benign)
    out["benign_ever_enforced"] = {"n": len(hit), "personas": sorted({benign[a] for a in hit})}
    fl = sorted(a for a in flagged_at if a in benign)
    out["benign_ever_flagged"] = {"n": len(fl), "personas": sorted({benign[a] for a in fl})}
    out["tick_campaigns"] = [x["campaigns"] for x in ticks]
    out["tick_light"] = [x["light"] for x in ticks]
    out["tick_joined"] = [x["joined"] for x in ticks]
    # benign accounts a light detection joined to a campaign (the rest of the benign flags are full detections')
    joined = sorted({a for x in ticks for a in x["joined_accounts"]} & set(benign))
    out["benign_joined"] = {"n": len(joined), "personas": sorted({benign[a] for a in joined})}
    out["tick_seconds"] = [x["seconds"] for x in ticks]
    out["tick_cpu_seconds"] = [x["cpu_seconds"] for x in ticks]
    # CPU seconds of each tick's parts (watch.TickReport.cpu: signals, fold, the scan's stages and detect parts,
    # writing, carrying forward), and their sums over the replay: where a replay's cost goes
    out["tick_cpu_parts"] = [x["cpu_parts"] for x in ticks]
    keys = sorted({k for x in ticks for k in x["cpu_parts"]})
    out["cpu_parts_total"] = {k: round(sum(x["cpu_parts"].get(k, 0.0) for x in ticks), 1) for k in keys}
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2, default=str).decode())



def main() -> None:
    argv = sys.argv[1:]
    if "--through-gateway" in argv:
        argv.remove("--through-gateway")
        gateway_main(argv)
    else:
        direct_main(argv)


if __name__ == "__main__":
    main()

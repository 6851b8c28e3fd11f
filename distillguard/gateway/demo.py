"""`distillguard gateway-demo`: the bundled mock upstream and a gateway on a store, driven by the official SDKs.

Shows in one screen what the gateway does: a normal account served (reasoning bound), an account
the enforcement table marks protected (reasoning stripped, leaking answer withheld), a hydra
cluster of 40 accounts stopped by the shared cluster limit although each stays under its own,
reasoning replayed by another account refused, and every exchange recorded in the store.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from distillguard.errors import DistillguardError
from distillguard.testing.net import free_port


def _serve(app, port: int):
    import uvicorn

    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, loop="asyncio", http="httptools",
                                        lifespan="on", log_level="warning", access_log=False))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    while not srv.started:
        if not t.is_alive():
            raise RuntimeError("server failed to start")
        time.sleep(0.02)
    return srv, t


def run_demo(store_path: Path, console) -> list[dict]:
    try:
        import anthropic
        import openai
    except ModuleNotFoundError as e:
        raise DistillguardError(f"gateway-demo needs the official SDKs (missing module {e.name}): "
                                "pip install 'distillguard[gateway,demo]'") from None
    from rich.table import Table

    from distillguard.gateway.app import build_app
    from distillguard.gateway.config import GatewayConfig
    from distillguard.gateway.identity import hash_key, pepper_from_env
    from distillguard.gateway.mock_upstream import MockUpstream
    from distillguard.store import Store

    os.environ.setdefault("DISTILLGUARD_KEY_PEPPER", "demo-pepper")
    os.environ.setdefault("DISTILLGUARD_REASONING_SECRET", "demo-secret")
    store = Store(store_path, create=True)
    work = Path(tempfile.mkdtemp(prefix="dg-gateway-demo-"))
    pepper = pepper_from_env("DISTILLGUARD_KEY_PEPPER")
    accounts = ["demo-normal", "demo-marked"] + [f"demo-hydra-{i:02d}" for i in range(40)]
    keys = {a: f"sk-demo-{a}-{os.urandom(6).hex()}" for a in accounts}
    import yaml

    from distillguard.gateway.pepper import pepper_id

    (work / "keys.yaml").write_text(yaml.safe_dump({"pepper_id": pepper_id(pepper), "keys": [
        {"key_hash": hash_key(k, pepper), "key_id": f"key-{a}", "account_id": a, "org_id": "demo-org"}
        for a, k in keys.items()]}))
    # The demo's own decisions go to files next to it, so a scan's tables in the store are left alone.
    now = datetime.now(UTC).isoformat()
    (work / "enforcement.jsonl").write_bytes(orjson.dumps(
        {"subject_type": "account", "subject_id": "demo-marked", "action": "protect_reasoning",
         "reason": "CoT harvesting pattern", "source": "scan", "created_at": now, "expires_at": None,
         "campaign_id": "demo-campaign", "actor": "gateway-demo"}) + b"\n")
    (work / "clusters.jsonl").write_bytes(b"".join(
        orjson.dumps({"account_id": a, "cluster_id": "demo-cluster"}) + b"\n"
        for a in accounts if a.startswith("demo-hydra")))
    mport, gport = free_port(), free_port()
    msrv, mt = _serve(MockUpstream(reasoning_words=80, answer_words=30), mport)
    cfg = GatewayConfig.model_validate({
        "upstream": {"url": f"http://127.0.0.1:{mport}/v1"}, "store": str(store_path),
        "identity": {"keys_file": str(work / "keys.yaml")}, "enforcement_file": str(work / "enforcement.jsonl"),
        "clusters_file": str(work / "clusters.jsonl"),
        "limits": {"account": {"requests": {"rate": 10, "per_seconds": 60}},
                   "cluster": {"requests": {"rate": 30, "per_seconds": 60}}},
        "recorder": {"flush_interval_ms": 10}})
    app = build_app(cfg)
    gsrv, gt = _serve(app, gport)
    base = f"http://127.0.0.1:{gport}"
    rows = []

    http = __import__("httpx").Client()
    clients: dict[str, openai.OpenAI] = {}

    def oai(acct):
        if acct not in clients:
            clients[acct] = openai.OpenAI(base_url=base + "/v1", api_key=keys[acct], max_retries=0, http_client=http)
        return clients[acct]

    def note(what, acct, status, detail):
        rows.append({"what": what, "account": acct, "status": status, "detail": detail})

    try:
        r = oai("demo-normal").chat.completions.create(model="mock-reasoner",
                                                       messages=[{"role": "user", "content": "plan a budget"}])
        ex = r.choices[0].message.model_extra
        note("chat, normal account", "demo-normal", 200,
             f"reasoning {len(ex['reasoning_content'])} chars, signed {ex['reasoning_signature'][:18]}…")
        text = "".join((c.choices[0].delta.content or "") for c in oai("demo-marked").chat.completions.create(
            model="mock-reasoner", messages=[{"role": "user", "content": "plan a budget"}], stream=True) if c.choices)
        note("chat stream, protected account", "demo-marked", 200, f"reasoning stripped; answer {len(text)} chars")
        leak = oai("demo-marked").chat.completions.create(model="mock-reasoner",
                                                          messages=[{"role": "user", "content": "explain [leak]"}])
        note("answer copying its reasoning", "demo-marked", 200, leak.choices[0].message.content[:60])
        a = anthropic.Anthropic(base_url=base, api_key=keys["demo-normal"], max_retries=0)
        conv = [{"role": "user", "content": "derive it"}]
        m = a.messages.create(model="mock-reasoner", max_tokens=500, messages=conv,
                              thinking={"type": "enabled", "budget_tokens": 1024})
        note("messages + thinking", "demo-normal", 200, f"thinking signed {m.content[0].signature[:18]}…")
        replay = conv + [{"role": "assistant", "content": [m.content[0].model_dump()]},
                         {"role": "user", "content": "go on"}]
        try:
            anthropic.Anthropic(base_url=base, api_key=keys["demo-hydra-00"], max_retries=0).messages.create(
                model="mock-reasoner", max_tokens=100, messages=replay)
            note("thinking replayed by another account", "demo-hydra-00", 200, "NOT refused")
        except anthropic.BadRequestError as e:
            note("thinking replayed by another account", "demo-hydra-00", 400, e.body["error"]["code"])
        ok = limited = 0
        for acct in [x for x in accounts if x.startswith("demo-hydra")]:
            for _ in range(2):  # 2 each: well under the per-account 10/min
                try:
                    oai(acct).chat.completions.create(model="mock-small", messages=[{"role": "user", "content": "q"}])
                    ok += 1
                except openai.RateLimitError:
                    limited += 1
        note("hydra cluster, 40 accounts × 2", "demo-hydra-*", "200/429",
             f"{ok} served, {limited} rate-limited by the shared cluster limit")
        assert app.gateway.recorder.flush_wait(10)
    finally:
        http.close()
        gsrv.should_exit = True
        gt.join(15)
        msrv.should_exit = True
        mt.join(15)
    t = Table(title="gateway demo (mock upstream, official SDKs)", title_justify="left")
    for c in ("what", "account", "status", "detail"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["what"], r["account"], str(r["status"]), str(r["detail"]))
    console.print(t)
    con = store.connect()
    recorded = con.sql("SELECT action, count(*) FROM exchanges WHERE source_format = 'gateway' "
                       "GROUP BY 1 ORDER BY 2 DESC").fetchall()
    console.print("recorded in the store: " + ", ".join(f"{a} {n}" for a, n in recorded))
    rows.append({"recorded": dict(recorded)})
    return orjson.loads(orjson.dumps(rows))

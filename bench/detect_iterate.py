"""Iterate on the graph's operations join, scoring and campaigns without re-running prepare and Leiden.

    PYTHONPATH=. python bench/detect_iterate.py save STORE STATE [CONFIG]
    PYTHONPATH=. python bench/detect_iterate.py ops STORE STATE OUT [CONFIG] [--rescore] [--old]

``save`` runs what a scan runs up to the communities (prepare, account features, incidence, edges, pairs, dense
blocks, Leiden at every resolution) and writes the connection's tables and the step's inputs under STATE (the
scan's own checkpoint format, ``scan/checkpoint.py``) plus the level memberships. ``ops`` loads them and runs the
rest in-process — every level's cluster scoring (cached in STATE after the first run; ``--rescore`` redoes it
after a scoring change; the levels go through the scan's own ``score_level``, harvesting sub-clusters cut into
operations as the scan cuts them), the operations join and its scoring, campaigns — and writes a results directory OUT
(``accounts.parquet``, ``campaigns.json``: what ``distillguard bench --results`` reads) with ``risk.parquet``
(cluster, campaign, reasons per account), ``ops.json`` (the joined operations) and ``dbg.pkl`` (per member of an
operation: own suspicion, distinctive ties, core, fit). ``--old`` scores operations without member ties. At
scale 1.0 ``save`` costs what a scan's prepare + detect cost (~850 CPU s) and ``ops`` ~3 minutes; the same
results as ``distillguard scan`` (checked on the scale-0.01 and 0.1 default worlds). Store paths are read only
(the spill goes under STORE/tmp); never point it at a shared store without a copy or symlinked tree of it.
"""
import json
import pickle
import resource
import sys
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.scan.checkpoint import Checkpoints
from distillguard.scan.config import load_config
from distillguard.scan.engine import StepResult, open_connection, prepare
from distillguard.scan.resources import temp_space
from distillguard.store import Store


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def save(store_p, state, cfgp=None):
    from distillguard.behavior import account_features
    from distillguard.engine.communities import community_input, find_community_levels, pair_graph
    from distillguard.graph import coordination_edges, dense_blocks, incidence
    from distillguard.scan.run import _learned
    from distillguard.scoring import account_suspicion

    cfg = load_config(cfgp)
    store = Store(store_p)
    space = temp_space(store.path, cfg.temp_directory, cfg.temp_max_size, cfg.temp_free_margin)
    store.spill = (space.path, space.limit)
    t = cpu()
    con = open_connection(store, cfg)
    con, sigs = prepare(store, cfg, con)
    print("prepare", cpu() - t, flush=True)
    cfg, _ = _learned(store, con, sigs, cfg)
    feats = account_suspicion(account_features(con, sigs, cfg.behavior, None, None),
                              tuple(cfg.behavior.non_intent_signals), cfg.scoring.account_model)
    incidence(con, cfg.graph, feats, None, None)
    edges = coordination_edges(con, cfg.graph, cfg.scoring.declared_org_verification)
    pairs = pair_graph(con, cfg.graph, cfg.engine.communities)
    inc = con.sql("SELECT account_id, kind, entity, w FROM inc").to_arrow_table()
    blocks = dense_blocks(inc, cfg.graph.dense_blocks, cfg.graph.dense_epsilon, cfg.graph.min_cluster_size)
    del inc
    levels = find_community_levels(community_input(pairs), cfg.graph, cfg.engine.communities, cfg.graph.resolutions)
    print("detect-before-scoring", cpu() - t, flush=True)
    ck = Checkpoints(Path(state), "dev")
    step = StepResult(None, feats, edges, [], pa.table({"account_id": feats["account_id"]}), blocks, levels[0])
    ck.save("detect", con, {"sigs": sigs}, step)
    (Path(state) / "levels.pkl").write_bytes(pickle.dumps(levels))
    print("saved", cpu() - t, flush=True)
    space.cleanup()


def ops(store_p, state, out, cfgp=None, rescore=False):
    from distillguard.graph.operations import operation_groups
    from distillguard.scan import engine as eng
    from distillguard.scan.run import _campaigns, _learned, results_accounts
    from distillguard.scoring import score_clusters

    cfg = load_config(cfgp)
    store = Store(store_p)
    space = temp_space(store.path, cfg.temp_directory, cfg.temp_max_size, cfg.temp_free_margin)
    store.spill = (space.path, space.limit)
    ck = Checkpoints(Path(state), "dev")
    con = open_connection(store, cfg)
    t0 = cpu()
    ck.load("detect", con)
    step = ck.load_step("detect")
    sigs = json.loads((Path(state) / "detect" / "manifest.json").read_text())["sigs"]
    levels = pickle.loads((Path(state) / "levels.pkl").read_bytes())
    cfg, _ = _learned(store, con, sigs, cfg)
    feats, blocks = step.features, step.blocks
    print("load", cpu() - t0, flush=True)
    cache = Path(state) / "levels_scored.pkl"
    t = cpu()
    if rescore or not cache.exists():
        clusters, best = [], {}
        for level, m in enumerate(levels):
            cs, steps = eng.score_level(con, feats, m, level, blocks, cfg)
            clusters += cs
            risk = steps[0]
            eng.keep_highest(best, steps)
        schema = risk.schema
        cache.write_bytes(pickle.dumps((clusters, best, schema)))
    else:
        clusters, best, schema = pickle.loads(cache.read_bytes())
    print("levels", cpu() - t, flush=True)
    t = cpu()
    membership = levels[0]
    opsg = operation_groups(con, membership, feats.num_rows, cfg.graph)
    print("operations", cpu() - t, "accounts", len(opsg), "ops", len(set(opsg.values())), flush=True)
    t = cpu()
    Path(out).mkdir(parents=True, exist_ok=True)
    cap = {}
    def prof(frame, event, arg):
        if event == "return" and frame.f_code.co_name == "score_clusters":
            cap.update({k: frame.f_locals.get(k) for k in ("distinct", "member_groups", "fit", "intra_w", "ref_w", "core", "pooled_of", "sends_shared")})
    if opsg:
        sys.setprofile(prof)
        cs, risk_op = eng.score_operations(con, feats, opsg, membership, blocks, cfg) if "--old" not in sys.argv and hasattr(eng, "score_operations") \
            else score_clusters(con, feats, opsg, blocks, cfg.scoring, id_prefix="clop")
        clusters += cs
        eng.keep_highest(best, [risk_op])
    sys.setprofile(None)
    print("score_operations", cpu() - t, flush=True)
    if cap:
        from distillguard.scoring.suspicion import member_suspicion
        susp = dict(zip(feats["account_id"].to_pylist(), feats["suspicion"].to_pylist(), strict=True))
        frow = {r["account_id"]: r for r in feats.select([c for c in feats.column_names if c.startswith("c_") or c in ("account_id", "suspicion", "n_exchanges")]).to_pylist()}
        core = set().union(*cap["core"].values())
        dbg = {}
        for a in opsg:
            pg = next(iter(cap["pooled_of"].values()), None) if cap["pooled_of"] else None
            dbg[a] = dict(s=susp[a], ps=member_suspicion(frow[a], pg) if pg else None, distinct=sorted(cap["distinct"].get(a, ())),
                          groups=sorted(cap["member_groups"].get(a, ())), fit=cap["fit"].get(a, (0,))[0], iw=cap["intra_w"].get(a, 0),
                          core=a in core, sends=a in cap["sends_shared"], n=frow[a].get("n_exchanges"), op=opsg[a], comm=levels[0][a])
        pickle.dump(dbg, open(Path(out) / "dbg.pkl", "wb"))
    risk = pa.Table.from_pylist([best[a] for a in feats["account_id"].to_pylist()], schema=schema)
    risk = risk.append_column("flagged", pa.compute.greater_equal(risk["risk"], cfg.scoring.flag_threshold))
    step = StepResult(None, feats, step.edges, clusters, risk, blocks, membership)
    t = cpu()
    fr, campaigns, members, org_keys, links, released = _campaigns(con, cfg, step, {}, False)
    print("campaigns", cpu() - t, flush=True)

    class R:
        pass
    res = R()
    res.account_risk = fr
    Path(out).mkdir(parents=True, exist_ok=True)
    pq.write_table(results_accounts(res, fr), Path(out) / "accounts.parquet")
    from distillguard.scan.cli import _jsonable
    (Path(out) / "campaigns.json").write_bytes(orjson.dumps([_jsonable(c, False) for c in campaigns],
                                                            option=orjson.OPT_INDENT_2, default=str))
    # operations summary for analysis
    opsum = [{"cluster_id": c.cluster_id, "n": len(c.members), "risk": round(c.risk, 3),
              "coord": round(c.coordination, 3), "susp": round(c.suspicion, 3), "gs": c.group_share}
             for c in clusters if c.cluster_id.startswith("clop")]
    (Path(out) / "ops.json").write_text(json.dumps(opsum, indent=1))
    pickle.dump(opsg, open(Path(out) / "opsg.pkl", "wb"))
    pq.write_table(fr.select(["account_id", "risk", "flagged", "cluster_id", "campaign_id", "reasons"]), Path(out) / "risk.parquet")
    print("total cpu", cpu() - t0, "maxrss MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    space.cleanup()


if __name__ == "__main__":
    a = [x for x in sys.argv[1:] if not x.startswith("--")]
    if a[0] == "save":
        save(*a[1:])
    else:
        ops(*a[1:], rescore="--rescore" in sys.argv)

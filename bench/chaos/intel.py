"""Fault injection for intel: hostile partner bundles and a TAXII server that never ends.

    PYTHONPATH=. python bench/chaos/intel.py [--scenario NAME ...] [--json]

Each scenario starts from the two-provider fixture (provider B: 6 campaign accounts its scan
missed, 30 legitimate ones), feeds B one piece of hostile input under the most trusting
configuration there is (partner trust 1.0, may_enforce, `intel.enforce.allow` with `block`), then
runs match and apply with `--enforce block`, and reports what was accepted, what was rejected and
whether any legitimate account was flagged or blocked. ``SCENARIOS`` maps names to zero-argument
functions returning one result dict each (the registry ``bench/chaos/run.py`` reads: ``sent``,
``accepted``, ``rejected``, ``legit_flagged``, ``legit_blocked``, ``seconds``, ...);
docs/benchmarks.md ("Fault injection — intel") has a run.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from distillguard.errors import DistillguardError
from distillguard.intel.apply import apply_intel
from distillguard.intel.config import IntelConfig
from distillguard.intel.importer import import_bundle
from distillguard.intel.keys import parse_key
from distillguard.intel.match import match_store
from distillguard.intel.poll import poll_collection
from distillguard.testing import hostile_intel as H
from distillguard.testing.intel_fixture import make_two_providers
from distillguard.testing.net import serving

PARTNER = "Provider A"
KEY = parse_key("8f1c2b7d9e0a4c6b3d5e7f9a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e", "chaos")


def _cfg(**extra) -> IntelConfig:
    doc = {"partners": [{"name": PARTNER, "trust": 1.0, "may_enforce": True, "taxii": extra.pop("taxii", [])},
                        {"name": "Outsider", "trust": 0.2}],
           "enforce": {"allow": True, "actions": ["block"]}, **extra}
    return IntelConfig.model_validate(doc)


def _outcome(two, cfg: IntelConfig, sent: int, rep=None, error: str | None = None, **more) -> dict:
    """Match + apply(--enforce block) on B, then count legitimate accounts flagged and block rows."""
    st = two.store_b
    flagged = blocked = 0
    if st.has_table("intel_indicators"):
        match_store(st, KEY, cfg)
        apply_intel(st, cfg, enforce_action="block")
        risk = st.read_table("account_risk").to_pylist()
        flagged = sum(1 for r in risk if r["flagged"] and r["account_id"] in set(two.b_benign))
        if st.has_table("enforcement"):
            blocked = sum(1 for r in st.read_table("enforcement").to_pylist()
                          if r["action"] == "block" and r["subject_id"] in set(two.b_benign))
    accepted = rep.indicators if rep is not None else 0
    return {"sent": sent, "accepted": accepted, "rejected": sent - accepted, "legit_flagged": flagged,
            "legit_blocked": blocked, "error": error, **more}


def _import(two, data: bytes | str, sent: int, partner: str = PARTNER, cfg: IntelConfig | None = None,
            **more) -> dict:
    cfg = cfg or _cfg()
    try:
        rep = import_bundle(data, two.store_b, partner, cfg)
    except DistillguardError as e:
        return _outcome(two, cfg, sent, error=str(e)[:110], **more)
    reasons = sorted({r["reason"].split(" (")[0] for r in rep.rejected})
    return _outcome(two, cfg, sent, rep, duplicates=rep.duplicates, reasons=reasons[:4], **more)


def catch_alls(two) -> dict:
    return _import(two, H.catch_all(), len(H.CATCH_ALL_PATTERNS))


def repetition_50k(two) -> dict:
    return _import(two, H.repeated_asn(64512, 50_000), 50_000)


def repetition_5k(two) -> dict:
    """Under the caps: 5,000 copies of the campaign ASN are one indicator (weight 0.1), not certainty."""
    return _import(two, H.repeated_asn(64512, 5_000), 5_000)


def huge_61mb(two) -> dict:
    data = H.huge(61 * 1024 * 1024)
    n = data.count(b'"type":"indicator"')
    path = H.write(two.store_b.path.parent / "huge.json", data)
    return _import(two, path, n, bytes=len(data))


def binary(two) -> dict:
    return _import(two, H.binary(1 << 20), 1)


def unknown_extension(two) -> dict:
    return _import(two, H.unknown_extension(), 1)


def impersonation(two) -> dict:
    """An outsider's bundle calling itself Provider A, naming a legitimate account's address."""
    ip = two.store_b.connect().sql(
        f"SELECT min(client_ip) FROM exchanges WHERE account_id = '{two.b_benign_nat}'").fetchall()[0][0]
    out = _import(two, H.impersonation([ip]), 1, partner="Outsider")
    rows = two.store_b.read_table("intel_indicators").to_pylist()
    out["stored_as"] = sorted({r["source"] for r in rows})
    return out


def endless_poll(two) -> dict:
    cid = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
    with serving(H.endless_taxii_app(cid)) as base:
        url = base + "/taxii2/"
        cfg = _cfg(taxii=[{"url": url, "collection": cid}])
        try:
            rep = poll_collection(url, cid, two.store_b, cfg, per_request=1)
        except DistillguardError as e:
            return _outcome(two, cfg, 0, error=str(e)[:110])
    return _outcome(two, cfg, rep.objects, None, pages=rep.pages, stopped=rep.stopped) | {"accepted": rep.indicators,
                                                                                          "rejected": rep.rejected}


def _scenario(name: str, body):
    """A zero-argument scenario (the ``bench/chaos`` registry convention): a fresh fixture, the body, timings."""
    def run_one() -> dict:
        with tempfile.TemporaryDirectory(prefix="chaos-intel-") as d:
            two = make_two_providers(Path(d))
            t = time.perf_counter()
            res = body(two)
            return {"scenario": name, **res, "seconds": round(time.perf_counter() - t, 2),
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    run_one.__doc__ = body.__doc__
    return run_one


SCENARIOS = {name: _scenario(name, body) for name, body in {
    "catch_alls": catch_alls, "repetition_50k": repetition_50k, "repetition_5k": repetition_5k,
    "huge_61mb": huge_61mb, "binary": binary, "unknown_extension": unknown_extension,
    "impersonation": impersonation, "endless_poll": endless_poll}.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="run only these (repeatable)")
    ap.add_argument("--json", action="store_true", help="one JSON line per scenario")
    args = ap.parse_args()
    rows = [SCENARIOS[n]() for n in args.scenario or list(SCENARIOS)]
    if args.json:
        for r in rows:
            sys.stdout.write(json.dumps(r, default=str) + "\n")
        return
    print(f"{'scenario':18} {'sent':>7} {'accepted':>8} {'rejected':>8} {'legit flagged':>13} {'legit blocked':>13} "
          f"{'s':>6}  note")
    for r in rows:
        note = r.get("error") or r.get("stopped") or ", ".join(r.get("reasons") or []) or (
            f"{r['duplicates']} repeats collapsed into one" if r.get("duplicates") else "")
        if r.get("stored_as"):
            note = f"stored as {r['stored_as']}"
        print(f"{r['scenario']:18} {r['sent']:>7} {r['accepted']:>8} {r['rejected']:>8} {r['legit_flagged']:>13} "
              f"{r['legit_blocked']:>13} {r['seconds']:>6}  {note}")
    print(f"peak RSS {max(r['peak_rss_mb'] for r in rows)} MB")


if __name__ == "__main__":
    main()

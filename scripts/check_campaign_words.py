"""Check that a scanned store names and counts its campaigns one way everywhere (issue 17).

    python scripts/check_campaign_words.py --store demo-out/world

For every campaign: its title is unique and ends with its member count; every "X of the campaign's N accounts"
in its evidence has N = its members and X <= N; each kind in its evidence sentence and its stored infrastructure
counts what the console's evidence board counts; every member's account page ("In its campaign") shows the
board's number for each entity; and every cluster sentence counts within its cluster. Prints the titles and
the first evidence lines; exit code 1 on any disagreement.
"""

from __future__ import annotations

import argparse
import re
import sys

import orjson

from distillguard.campaigns.describe import kind_words
from distillguard.console import evidence
from distillguard.store import Store

SENT = re.compile(r"(all (\d+)|(\d+)) share (one|\d+) ([a-zA-Z /()-]+?)(?=,| and |$)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", required=True)
    ap.add_argument("--accounts", type=int, default=20, help="account pages checked per campaign")
    args = ap.parse_args()
    st = Store(args.store)
    con = st.connect()
    bad: list[str] = []
    camps = con.execute("SELECT campaign_id, title, n_accounts, evidence, infrastructure FROM campaigns "
                        "ORDER BY n_accounts DESC").fetchall()
    titles = [t for _, t, _, _, _ in camps]
    if len(set(titles)) != len(titles):
        bad.append(f"duplicate titles: {titles}")
    for cid, title, n, ev, infra in camps:
        ids = evidence.members(con, cid)
        print(f"{cid}: {title}")
        for line in ev[:3]:
            print(f"    {line}")
        if len(ids) != n or not title.endswith(f"— {n} accounts"):
            bad.append(f"{cid}: title/n_accounts {title!r}/{n} but {len(ids)} members")
        for line in ev:
            for a, b in re.findall(r"(\d+) of the campaign's (\d+) accounts", line):
                if not int(a) <= int(b) == len(ids):
                    bad.append(f"{cid}: {line!r}")
            for m in re.finditer(r"Of the campaign's (\d+) accounts", line):
                if int(m.group(1)) != len(ids):
                    bad.append(f"{cid}: {line!r}")
        board = evidence.campaign_evidence(con, cid)
        kinds = {k["kind"]: k for k in board["kinds"]}
        stored = {k: (v["n"], v.get("n_accounts")) for k, v in orjson.loads(infra)["shared"].items()}
        if stored != {k: (v["n_entities"], v["n_accounts"]) for k, v in kinds.items()}:
            bad.append(f"{cid}: infrastructure {stored} vs board {kinds}")
        head = next((e for e in ev if e.startswith("Of the campaign's")), "")
        for m in SENT.finditer(head):
            k = next((k for k, v in kinds.items() if kind_words(k, v["n_entities"]) == m.group(5)), None)
            if k is None or int(m.group(2) or m.group(3)) != kinds[k]["n_accounts"]:
                bad.append(f"{cid}: evidence {m.group(0)!r} vs board {kinds.get(k)}")
        per_ent = {(e["kind"], e["entity"]): e["n_accounts"] for e in board["entities"]}
        for a in ids[:args.accounts]:
            for row in evidence.account_partners(con, a, [cid]):
                want = per_ent.get((row["kind"], row["entity"]))
                if want is not None and row["n_in_campaign"] != want:
                    bad.append(f"{cid}: account {a} {row['kind']} {row['entity']}: {row['n_in_campaign']} vs board {want}")
    for cl, n, reasons in con.execute("SELECT cluster_id, n_accounts, reasons FROM clusters").fetchall():
        for line in reasons or []:
            for a, b in re.findall(r"(\d+) of cluster [\w-]+'s (\d+) accounts", line):
                if not int(a) <= int(b) == n:
                    bad.append(f"{cl}: {line!r}")
    for b in bad:
        print("DISAGREE", b)
    print(f"{len(camps)} campaigns, {len(set(titles))} distinct titles, {len(bad)} disagreements")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

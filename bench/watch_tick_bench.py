"""CPU-seconds of one `watch` tick against the size of the store, windowed detection vs all traffic.

    PYTHONPATH=. python bench/watch_tick_bench.py --world WORLD_DIR --days 3 12 [--window-hours 72]

For each ``--days D``: a fresh store holding the world's first D days (one part per day, as a writer's parts
follow time) is brought up to date by one untimed tick (signals, partials, detection); then the next hour of
the world arrives as one new part and one tick runs with detection, timed (process CPU-seconds, every thread),
once with ``watch_window_hours`` = ``--window-hours`` and once on all traffic (the same new part, the same
starting state: the store is copied before either). The tick's stages are reported as `watch` times them.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from datetime import timedelta
from pathlib import Path

import orjson


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", required=True)
    ap.add_argument("--days", type=float, nargs="+", default=[3.0, 12.0])
    ap.add_argument("--window-hours", type=float, default=72.0)
    ap.add_argument("--work", default="/tmp/watch-tick-bench")
    a = ap.parse_args(argv)
    from distillguard.scan.config import ScanConfig
    from distillguard.store import Store
    from distillguard.watch import WatchOptions, load_state, tick

    src = Store(a.world)
    scon = src.connect(threads=1)
    t0, = scon.execute("SELECT min(ts) FROM exchanges").fetchone()
    t0 = t0.replace(hour=0, minute=0, second=0, microsecond=0)
    cfg = ScanConfig()
    out = {"world": a.world, "window_hours": a.window_hours, "load_before": os.getloadavg(), "sizes": []}
    for days in a.days:
        work = Path(a.work) / f"d{days:g}"
        shutil.rmtree(work, ignore_errors=True)
        st = Store(work / "base", create=True)
        st.write_accounts(src.accounts().to_arrow_table())
        end = t0 + timedelta(days=days)
        d, i = t0, 0
        while d < end:
            part = scon.execute("SELECT * FROM exchanges WHERE ts >= ? AND ts < ?", [d, d + timedelta(days=1)]).to_arrow_table()
            st.write_exchanges(part, key=f"d{i:03d}")
            d, i = d + timedelta(days=1), i + 1
        c0 = time.process_time()
        tick(st, WatchOptions(interval_seconds=0, window_hours=a.window_hours), load_state(st), cfg, force_detect=True)
        setup_cpu = time.process_time() - c0
        new = scon.execute("SELECT * FROM exchanges WHERE ts >= ? AND ts < ?", [end, end + timedelta(hours=1)]).to_arrow_table()
        n_store = sum(st.parquet_file(f).metadata.num_rows for f in st.exchange_files())
        row = {"days": days, "exchanges_in_store": n_store, "new_exchanges": new.num_rows,
               "setup_cpu_s": round(setup_cpu, 1)}
        for label, window in (("windowed", a.window_hours), ("all_traffic", None)):
            run = work / label
            shutil.copytree(work / "base", run)
            s = Store(run)
            s.write_exchanges(new, key="new")
            c0, w0 = time.process_time(), time.perf_counter()
            rep = tick(s, WatchOptions(interval_seconds=0, window_hours=window), load_state(s), cfg, force_detect=True)
            row[label] = {"cpu_s": round(time.process_time() - c0, 2), "wall_s": round(time.perf_counter() - w0, 1),
                          "stages_wall_s": {k: round(v, 2) for k, v in rep.seconds.items()},
                          "window_since": str(rep.window_since), "campaigns": rep.campaigns}
            shutil.rmtree(run)
        out["sizes"].append(row)
        print(orjson.dumps(row).decode(), flush=True)
        shutil.rmtree(work, ignore_errors=True)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["load_after"] = os.getloadavg()
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()

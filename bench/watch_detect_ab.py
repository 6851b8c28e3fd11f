"""One windowed `watch` detection on a copy of a replay store: its CPU by part and a digest of the tables it writes.

    PYTHONPATH=<code> python bench/watch_detect_ab.py STORE COPY [time|prof]

STORE: a store a replay (bench/loop_replay.py --work W: W/store) left between two ticks; COPY is replaced by a copy
of it, so the same window can be judged by two versions of the code and their tables compared (rows, and a hash of
the sorted rows with the time columns dropped). ``prof``: also a cProfile of the detection into COPY.prof.
"""

import cProfile
import hashlib
import resource
import shutil
import sys

from distillguard.scan.config import ScanConfig
from distillguard.store import Store
from distillguard.watch import detect, detect_window, load_state

TIME_COLS = ("created_at", "detected_at", "updated_at", "first_flagged_at", "last_seen_at")


def _cpu() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def main() -> None:
    src, dst = sys.argv[1], sys.argv[2]
    mode = sys.argv[3] if len(sys.argv) > 3 else "time"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    st = Store(dst)
    state, cfg = load_state(st), ScanConfig()
    since = detect_window(state, cfg.watch_window_hours)
    parts: dict = {}
    prof = cProfile.Profile() if mode == "prof" else None
    c = _cpu()
    if prof:
        prof.enable()
    detect(st, cfg, incremental=True, since=since, state=state, timings=parts)
    if prof:
        prof.disable()
        prof.dump_stats(dst + ".prof")
    print("cpu", round(_cpu() - c, 2), {k: v for k, v in parts.items() if v > 0.2})
    for t in ("account_risk", "campaigns", "campaign_members", "account_clusters"):
        if st.has_table(t):
            rows = st.read_table(t)
            rows = rows if hasattr(rows, "drop_columns") else rows.to_arrow_table()
            rows = rows.drop_columns([x for x in rows.column_names if x in TIME_COLS])
            print(t, rows.num_rows, hashlib.sha1(str(sorted(map(str, rows.to_pylist()))).encode()).hexdigest()[:12])


if __name__ == "__main__":
    main()

"""CPU of one windowed `watch` merge (``watch.load_partials``) on a replay store, and a digest of the merged tables.

    PYTHONPATH=<checkout> python bench/watch_merge_bench.py STORE disk|mem [REPS]

Run it with PYTHONPATH at two checkouts on the same store (a copy of ``bench/loop_replay.py``'s work store, its
state and ``watch_partial_*`` tables) to compare their merge's cost; the digests (row count and sum of row hashes
per table) must agree, since the merge must build what ``prepare`` builds. ``disk``: the tables in a database file
in the spill directory (``tables_on_disk``), ``mem``: in memory (``watch_tables_in_memory``).
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

from distillguard import watch as W
from distillguard.scan.config import ScanConfig
from distillguard.scan.engine import open_connection
from distillguard.store import Store


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    path, mode = Path(sys.argv[1]), sys.argv[2]
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    st, cfg = Store(path), ScanConfig()
    state = W.load_state(st)
    since = W.detect_window(state, cfg.watch_window_hours)
    st.spill = (path.parent / f"spill-{mode}", 20 * 2**30)
    out = []
    for i in range(reps):
        con = open_connection(st, cfg.model_copy(update={"tables_on_disk": mode == "disk"}))
        c0 = _cpu()
        W.load_partials(st, con, since, state, cfg)
        out.append(round(_cpu() - c0, 2))
        if i == reps - 1:
            for t in W.PARTIALS[1:]:
                cols = [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()]
                n, h = con.execute(f"SELECT count(*), sum(hash({', '.join(cols)})) FROM {t}").fetchone()
                print(t, n, h)
        con.close()
    print(mode, "since", since, "load_partials CPU-s", out)


if __name__ == "__main__":
    main()

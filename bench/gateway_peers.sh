#!/usr/bin/env bash
# distillguard's gateway in the shared side-by-side proxy benchmark (../shared/bench-peers), next to
# LiteLLM and unmimic, in one interleaved run. Every check on: hashed-key auth, policy with an
# enforcement table and rules, GCRA limits on account/org/cluster/ip24/pathway, reasoning binding,
# and the spool recorder (fsync'd batches, compacted into the store).
#
#   bash bench/gateway_peers.sh                         # full run, ~8-10 min (first run installs peer venvs)
#   CELLS="ns:1:300:20:2,st:1:100:45:2" bash bench/gateway_peers.sh   # shorter
#
# Results: bench/results/peers/latest.{md,json} (the shared folder is read-only).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$ROOT/../../shared/bench-peers}
[[ -d $PEERS_DIR ]] || PEERS_DIR=/work/shared/bench-peers
PY=${PY:-$ROOT/.venv/bin/python}
[[ -x $PY ]] || PY=/work/main/.venv/bin/python
GW_PORT=${GW_PORT:-18003}
GW_DIR=${GW_DIR:-/tmp/dg-gateway-peers}
rm -rf "$GW_DIR"
export RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results/peers}
export EXTRA_NAME=distillguard
export EXTRA_URL=http://127.0.0.1:$GW_PORT/v1
export EXTRA_CMD="cd '$ROOT' && export PYTHONPATH='$ROOT' DISTILLGUARD_KEY_PEPPER=bench-pepper \
DISTILLGUARD_REASONING_SECRET=bench-secret && '$PY' bench/gateway_bench.py --write-config '$GW_DIR' && \
exec '$PY' -m distillguard gateway --upstream \"\$UPSTREAM_URL\" --config '$GW_DIR/gateway.yaml' \
--store '$GW_DIR/store' --port $GW_PORT"
bash "$PEERS_DIR/run.sh"
# what the recorder kept (the gateway was stopped by run.sh; its shutdown compacted the spool)
PYTHONPATH="$ROOT" "$PY" - "$GW_DIR/store" <<'PYEOF'
import sys
from distillguard.store import Store
n = Store(sys.argv[1]).exchanges().aggregate("count(*)").fetchall()[0][0]
print(f"distillguard recorded {n:,} exchanges into {sys.argv[1]}")
PYEOF

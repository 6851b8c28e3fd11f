"""Prometheus metrics, on a registry of their own so several gateways can live in one test process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LAT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class Metrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("distillguard_gateway_requests_total", "Requests by API and HTTP status",
                                ["api", "status"], registry=r)
        self.decisions = Counter("distillguard_gateway_decisions_total",
                                 "Policy decisions (enforced=false: shadow mode)", ["action", "enforced"], registry=r)
        self.limits_hit = Counter("distillguard_gateway_rate_limited_total", "Requests refused by a rate limit",
                                  ["dimension", "kind"], registry=r)
        self.added = Histogram("distillguard_gateway_added_latency_seconds",
                               "Time the gateway spent on a request before forwarding it upstream",
                               buckets=_LAT_BUCKETS, registry=r)
        self.upstream_errors = Counter("distillguard_gateway_upstream_errors_total",
                                       "Upstream failures (connect, timeout, 5xx)", ["kind"], registry=r)
        self.refused_conn = Counter("distillguard_gateway_refused_connections_total",
                                    "Connections closed by the server's limits before a request reached the app "
                                    "(header_bytes, header_lines, header_timeout)", ["reason"], registry=r)
        self.reasoning = Counter("distillguard_gateway_reasoning_total",
                                 "Reasoning protection events", ["event"], registry=r)
        self.binding = Counter("distillguard_gateway_reasoning_binding_total",
                               "Reasoning blocks sent back by clients, by binding state", ["state"], registry=r)
        self.recorder_written = Counter("distillguard_gateway_recorder_records_total",
                                        "Records durably written by the recorder", registry=r)
        self.recorder_dropped = Counter("distillguard_gateway_recorder_dropped_total",
                                        "Records lost: still unwritten when a shutdown gave up (should stay 0)",
                                        registry=r)
        self.recorder_refused = Counter("distillguard_gateway_recorder_refused_total",
                                        "Requests refused (503) because the recorder queue stayed full", registry=r)
        self.recorder_quarantined = Counter("distillguard_gateway_recorder_quarantined_total",
                                            "Records the recorder could not encode, written as quarantine lines",
                                            registry=r)
        self.recorder_write_errors = Counter("distillguard_gateway_recorder_write_errors_total",
                                             "Failed recorder writes (retried), by errno", ["kind"], registry=r)
        self.recorder_healthy = Gauge("distillguard_gateway_recorder_healthy",
                                      "1 while the recorder's writes succeed, 0 while they fail", registry=r)
        self.recorder_healthy.set(1)
        self.recorder_spilled = Counter("distillguard_gateway_recorder_spilled_total",
                                        "Records spooled locally because Redis was unreachable (sent later)",
                                        registry=r)
        self.recorder_sync_timeouts = Counter("distillguard_gateway_recorder_sync_timeouts_total",
                                              "Replies released before their record was durable (sync mode)",
                                              registry=r)
        self.recorder_pending = Gauge("distillguard_gateway_recorder_pending", "Records queued, not yet written",
                                      registry=r)
        self.limiter_degraded = Counter("distillguard_gateway_limiter_degraded_total",
                                        "Requests limited without Redis (fallback mode)", ["mode"], registry=r)
        self.policy_reloads = Counter("distillguard_gateway_policy_reloads_total", "Policy/enforcement reloads",
                                      ["what", "result"], registry=r)
        self.inflight = Gauge("distillguard_gateway_inflight_requests", "Requests in progress", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

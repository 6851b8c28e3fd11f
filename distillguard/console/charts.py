"""Chart payloads: plain JSON the page's static script hands to Chart.js.

Data travels in ``<script type="application/json">`` blocks (Jinja's ``tojson`` escapes ``<``,
``>`` and ``&``), so no page needs inline script and the CSP can forbid it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta


def _day(v) -> str:
    return v.isoformat()[:10] if v is not None else ""


def campaign_timeline(daily: list[dict], pivot_release: datetime | None) -> dict:
    """Exchanges per day, one stacked series per model: a pivot to a new model shows as a colour change."""
    days = sorted({_day(r["day"]) for r in daily})
    by_model: dict[str, dict[str, int]] = defaultdict(dict)
    for r in daily:
        by_model[r["model"] or "(none)"][_day(r["day"])] = int(r["n"])
    series = [{"label": m, "data": [vals.get(d, 0) for d in days]}
              for m, vals in sorted(by_model.items(), key=lambda kv: -sum(kv[1].values()))]
    return {"type": "bar", "stacked": True, "labels": days, "series": series,
            "marker": _day(pivot_release) if pivot_release else None, "y_label": "exchanges per day"}


def capability_mix(mix: dict) -> dict:
    items = []
    for k, v in mix.items():
        try:
            items.append((str(k), float(v)))
        except (TypeError, ValueError):
            continue
    items.sort(key=lambda kv: -kv[1])
    return {"type": "doughnut", "labels": [k for k, _ in items], "series": [{"label": "share",
                                                                            "data": [round(v, 4) for _, v in items]}]}


def account_activity(hourly: list[dict]) -> dict:
    """Hourly counts, or daily once the span passes three weeks (keeps the chart readable and the payload small)."""
    if not hourly:
        return {"type": "bar", "labels": [], "series": []}
    span = hourly[-1]["hour"] - hourly[0]["hour"]
    if span > timedelta(days=21):
        agg: dict[str, int] = defaultdict(int)
        for r in hourly:
            agg[_day(r["hour"])] += int(r["n"])
        labels = sorted(agg)
        return {"type": "bar", "labels": labels, "series": [{"label": "exchanges per day",
                                                            "data": [agg[d] for d in labels]}]}
    labels = [r["hour"].strftime("%Y-%m-%d %H:00") for r in hourly]
    return {"type": "bar", "labels": labels, "series": [{"label": "exchanges per hour",
                                                        "data": [int(r["n"]) for r in hourly]}]}

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
    first, last = hourly[0]["hour"], hourly[-1]["hour"]
    # Idle hours/days are drawn as zeros: a bot's 24/7 pattern and a person's working day look different.
    if last - first > timedelta(days=21):
        agg: dict[str, int] = defaultdict(int)
        for r in hourly:
            agg[_day(r["hour"])] += int(r["n"])
        d, end, labels = first.date(), last.date(), []
        while d <= end:
            labels.append(d.isoformat())
            d += timedelta(days=1)
        return {"type": "bar", "labels": labels, "series": [{"label": "exchanges per day",
                                                            "data": [agg.get(x, 0) for x in labels]}]}
    by_hour = {r["hour"]: int(r["n"]) for r in hourly}
    labels, data, h = [], [], first
    while h <= last:
        labels.append(h.strftime("%Y-%m-%d %H:00"))
        data.append(by_hour.get(h, 0))
        h += timedelta(hours=1)
    return {"type": "bar", "labels": labels, "series": [{"label": "exchanges per hour", "data": data}]}

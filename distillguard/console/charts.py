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
    markers = [{"at": _day(pivot_release), "text": "new model first seen", "colour": "#b91c1c"}] if pivot_release else []
    return {"type": "bar", "stacked": True, "labels": days, "series": series, "model_colours": True,
            "markers": markers, "y_label": "exchanges per day"}


def signal_bars(shares: list[dict], words) -> dict:
    """Share of requests carrying each signal, one labelled bar each: several can hold for one request,
    so the shares do not add up to 100% and must not be drawn as parts of a pie."""
    return {"type": "hbar", "labels": [words(r["detector"]) for r in shares],
            "series": [{"label": "share of requests", "data": [round(100 * r["share"], 1) for r in shares]}],
            "x_label": "% of the campaign's requests carrying the signal", "max": 100, "suffix": "%",
            "counts": [f"{r['n_high']:,} of {r['n']:,}" for r in shares]}


def harvest(h: dict) -> dict:
    """Cumulative exchanges per hour, with the first flag and the first enforcement drawn as markers."""
    labels, data, total = [], [], 0
    for hour, n in h["hourly"]:
        total += int(n)
        labels.append(hour.strftime("%Y-%m-%d %H:00"))
        data.append(total)
    markers = []
    for key, text, colour in (("first_flag", "first flagged", "#b45309"), ("enforced", "enforcement", "#b91c1c")):
        t = h.get(key)
        if t is not None:
            markers.append({"at": t.strftime("%Y-%m-%d %H:00"), "text": text, "colour": colour})
    return {"type": "line", "labels": labels, "series": [{"label": "exchanges so far", "data": data}],
            "markers": markers, "y_label": "cumulative exchanges"}


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

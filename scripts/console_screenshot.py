"""Screenshot a console page from any store (the README's docs/img/console-campaign.png comes from here).

    python scripts/console_screenshot.py --store demo-out/store [--campaign ID] [--out docs/img/console-campaign.png]
    python scripts/console_screenshot.py --fixture            # a fresh fixture store (no hostile payloads)
    python scripts/console_screenshot.py --page report --report demo-out/scan/report.html --width 1080 \
        --out docs/img/report-campaign.png                    # the scan report's first campaign section

Starts the real app under uvicorn on a free local port with a throw-away admin login (the enforcement page needs it), drives
Debian's chromium through Playwright, and saves a full-page PNG.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", help="store directory with campaigns (omit with --fixture)")
    ap.add_argument("--fixture", action="store_true", help="write and use a fixture store in a temp directory")
    ap.add_argument("--campaign", help="campaign id (default: the most confident one)")
    ap.add_argument("--page", default="campaign", choices=["campaign", "campaigns", "account", "enforcement", "report"],
                    help="which page")
    ap.add_argument("--account", help="account id for --page account (default: the riskiest member of the campaign)")
    ap.add_argument("--element", help="CSS selector: save only this element (e.g. '#evidence-board')")
    ap.add_argument("--report", help="report.html for --page report (opened from disk, as an analyst would)")
    ap.add_argument("--out", default="docs/img/console-campaign.png")
    ap.add_argument("--width", type=int, default=1360)
    ap.add_argument("--height", type=int, default=1900)
    ap.add_argument("--full-page", action="store_true", help="whole page instead of the first screen")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    if args.page == "report":
        return _report(args)

    import uvicorn
    from playwright.sync_api import sync_playwright

    from distillguard.console.aggregates import aggregates_fresh, build_aggregates
    from distillguard.console.app import create_app
    from distillguard.console.config import hash_secret, load_settings
    from distillguard.console.data import ConsoleData
    from distillguard.store import Store

    if args.fixture:
        from distillguard.testing.console_fixture import write_console_fixture

        store = write_console_fixture(Path(tempfile.mkdtemp(prefix="dg-console-")) / "store", hostile=False)
    elif args.store:
        store = Store(args.store)
    else:
        ap.error("give --store DIR or --fixture")
    if not aggregates_fresh(store):
        build_aggregates(store)
    pw = secrets.token_urlsafe(12)
    settings = load_settings(None, users=[{"name": "analyst", "role": "admin", "password_hash": hash_secret(pw)}])
    cid = args.campaign
    if args.page in ("campaign", "account") and not cid:
        rows = ConsoleData(store, settings).campaigns(sort="confidence")
        if not rows:
            print("store has no campaigns; run `distillguard scan` first or use --fixture", file=sys.stderr)
            return 2
        cid = rows[0]["campaign_id"]

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(store, settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    from urllib.parse import quote

    target = {"campaign": f"{base}/campaigns/{quote(cid or '', safe='')}", "campaigns": f"{base}/campaigns",
              "enforcement": f"{base}/admin/enforcement"}.get(args.page)
    if args.page == "account":
        aid = args.account
        if not aid:
            c = ConsoleData(store, settings).campaign(cid)
            aid = c["members"][0]["account_id"]
        target = f"{base}/accounts/{quote(aid, safe='')}"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
            page = b.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(f"{base}/login")
            page.fill("input[name=username]", "analyst")
            page.fill("input[name=secret]", pw)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/campaigns")
            page.goto(target)
            if page.locator("canvas[data-chart]").count():
                page.wait_for_selector("canvas[data-chart][data-drawn='1']", timeout=10_000)
            if page.locator("div[data-graph]").count():
                page.wait_for_selector("div[data-graph][data-drawn='1']", timeout=10_000)
            if args.element:
                page.locator(args.element).screenshot(path=str(out))
            else:
                page.screenshot(path=str(out), full_page=args.full_page)
            b.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        app.state.data.close()
    print(f"wrote {out}")
    return 0


def _report(args) -> int:
    """The report is one self-contained file: screenshot its first campaign section (or ``--element``)."""
    from playwright.sync_api import sync_playwright

    if not args.report or not Path(args.report).is_file():
        print("--page report needs --report PATH/report.html", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
        page = b.new_page(viewport={"width": args.width, "height": args.height})
        page.goto(Path(args.report).resolve().as_uri())
        if page.locator("canvas[data-chart]").count():
            page.wait_for_selector("canvas[data-chart][data-drawn='1']", timeout=10_000)
        page.locator(args.element or "main section[id^='camp']").first.screenshot(path=str(out))
        b.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

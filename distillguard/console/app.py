"""The console web app: server-rendered pages over the store, with login, roles and CSRF.

Security rests on a few fixed rules rather than care at each call site: Jinja autoescapes every
value (prompts, account ids and headers are attacker-controlled), the Content-Security-Policy
allows scripts only from /static (no inline script, so an escaping slip still cannot run code),
sessions are server-side (a signed cookie names a revocable session, console/security.py), every
POST must carry the session's CSRF token, and every security event lands in the hash-chained
audit log (console/audit.py).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import threading
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from distillguard.console import audit, charts
from distillguard.console.actions import (
    ACTION_LABELS,
    ACTIONS,
    ActionError,
    Actor,
    apply_action,
    reapply_decisions,
    set_enforcement,
)
from distillguard.console.config import ConsoleSettings, authenticate, dummy_hash
from distillguard.console.data import ConsoleData
from distillguard.console.security import LoginThrottle, SessionStore, client_address, parse_networks
from distillguard.console.tables import ENFORCEMENT_ACTIONS, SUBJECT_TYPES
from distillguard.scoring.reasons import signal_words
from distillguard.store import Store
from distillguard.ui import sentences

HERE = Path(__file__).parent

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


class SecurityHeaders:
    """Adds the security headers to every response, including errors and static files."""

    def __init__(self, app, hsts: bool = False):
        self.app = app
        self.headers = dict(SECURITY_HEADERS)
        if hsts:  # only when served over HTTPS (cookie_secure): HSTS on plain HTTP would lock users out
            self.headers["strict-transport-security"] = "max-age=31536000"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                for k, v in self.headers.items():
                    h[k] = v
                if not scope["path"].startswith("/static/"):
                    h["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


class LoginRequired(Exception):
    pass


class Forbidden(Exception):
    pass


class BadRequest(Exception):
    pass


#: Rows per page of the enforcement table.
ENFORCEMENT_PAGE = 100

#: Largest accepted numeric query parameter (a page offset): anything else is a 400, not a database error.
MAX_OFFSET = 999_999_999


def _offset(raw: str | None, name: str) -> int:
    if raw is None or raw == "":
        return 0
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise BadRequest(f"{name} must be a whole number from 0 to {MAX_OFFSET:,}")
    return int(raw)


def _fmt_ts(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def _fmt_num(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return f"{v:,}"


def _words(v, depth: int = 0) -> str:
    """A JSON value from a detector (infrastructure summaries) as one readable line of text."""
    if isinstance(v, dict):
        if "n" in v and "top" in v and depth:
            top = v.get("top") or []
            return f"{v['n']} shared" + (f" (top: {', '.join(str(t) for t in top)})" if top else "")
        return "; ".join(f"{k}: {_words(x, depth + 1)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ", ".join(_words(x, depth + 1) for x in v)
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters.update(ts=_fmt_ts, num=_fmt_num, q=lambda s: quote(str(s), safe=""), words=_words, sentences=sentences,
                       pct=lambda v: "—" if v is None else f"{100 * float(v):.0f}%")
    return env


def create_app(store: Store, settings: ConsoleSettings) -> Starlette:
    data = ConsoleData(store, settings)
    templates = Jinja2Templates(env=_env())
    secret = settings.secret_key.get_secret_value() if settings.secret_key else secrets.token_urlsafe(32)
    roles = {t.name: t.role for t in settings.tokens} | {u.name: u.role for u in settings.users}
    throttle = LoginThrottle(settings.login_window_s)
    sessions = SessionStore(audit.db_path(store), settings.session_max_age_s, settings.session_idle_s)
    trusted = parse_networks(settings.trusted_proxies)
    audit_cache: dict = {}  # audit parts already read, by (name, mtime, size); pages run in worker threads
    audit_cache_lock = threading.Lock()
    dummy_hash()  # made now, so the first unknown user name costs no more than a known one

    def client_of(request: Request) -> str:
        return client_address(request.client.host if request.client else None,
                              request.headers.get("x-forwarded-for"), trusted)

    def record(request: Request, actor: str, role: str, action: str, subject_type: str, subject_id: str,
               reason: str = "", **detail) -> None:
        """One security event into the audit log, with the client address it came from."""
        audit.append(store, datetime.now(UTC), actor[:64], role, action, subject_type, subject_id[:512], reason,
                     {"client": client_of(request), "path": request.url.path, **detail})

    def session_user(request: Request) -> Actor | None:
        sid = request.session.get("sid")
        if not sid:
            return None
        name = sessions.user(sid)
        # The role comes from the configuration now, not from login time: removing or demoting
        # a user takes effect on their next click.
        role = roles.get(name) if name else None
        if role is None:
            request.session.clear()
            return None
        return Actor(name, role)

    def need(request: Request, role: str = "viewer") -> Actor:
        actor = session_user(request)
        if actor is None:
            raise LoginRequired()
        if not actor.can(role):
            raise Forbidden()
        return actor

    def csrf_token(request: Request) -> str:
        tok = request.session.get("csrf")
        if not tok:
            tok = secrets.token_urlsafe(32)
            request.session["csrf"] = tok
        return tok

    async def form_with_csrf(request: Request):
        form = await request.form()
        sent = form.get("csrf") or ""
        want = request.session.get("csrf") or ""
        if not want or not isinstance(sent, str) or not hmac.compare_digest(sent, want):
            raise Forbidden("csrf")
        return form

    def render(request: Request, name: str, ctx: dict, status: int = 200) -> HTMLResponse:
        actor = session_user(request)
        ctx = {"actor": actor, "csrf": csrf_token(request), "flash": request.session.pop("flash", None),
               "actions": ACTIONS, "action_labels": ACTION_LABELS, **ctx}
        return templates.TemplateResponse(request, name, ctx, status_code=status)

    def flash(request: Request, msg: str, kind: str = "ok") -> None:
        request.session["flash"] = {"msg": msg, "kind": kind}

    # ------------------------------------------------------------------ auth
    async def login(request: Request):
        if request.method == "GET":
            return render(request, "login.html", {"next": _safe_next(request.query_params.get("next"))})
        form = await form_with_csrf(request)
        client = client_of(request)
        username = str(form.get("username") or "").strip()[:200]
        # Charged before the (slow) check and atomically, so parallel guesses cannot outrun the limit. Token logins
        # count per address only: a token is not guessable, and one shared key would let anyone lock all out.
        keys = {f"addr:{client}": settings.login_max_failures}
        if username:
            keys[f"user:{username.lower()}"] = settings.login_max_failures_per_user
        refused, first = throttle.begin(keys)
        if refused:
            if first:  # one row per refusing key and window: a flood must not become a flood of audit rows
                await run_in_threadpool(record, request, username or "(token)", "", "login_refused", "user",
                                        username, "too many failed logins", limit=refused.split(":", 1)[0])
            which = "this address" if refused.startswith("addr:") else "this user name"
            return render(request, "login.html", {"next": "/campaigns", "error": f"Too many failed logins for "
                                                  f"{which}; wait a few minutes."}, 429)
        # scrypt is deliberately slow: keep it off the event loop.
        who = await run_in_threadpool(authenticate, settings, username, str(form.get("secret") or ""))
        nxt = _safe_next(str(form.get("next") or ""))
        if who is None:
            await run_in_threadpool(record, request, username or "(token)", "", "login_failed", "user", username,
                                    "wrong user name, password or token")
            await asyncio.sleep(0.3)  # blunts online guessing
            return render(request, "login.html", {"next": nxt, "error": "Wrong user name, password or token."}, 401)
        throttle.succeeded(keys)
        old = request.session.get("sid")
        if old:
            sessions.revoke(old)
        request.session.clear()  # a fresh session and CSRF token on every login (no fixation)
        request.session["sid"] = await run_in_threadpool(sessions.create, who[0], client)
        request.session["csrf"] = secrets.token_urlsafe(32)
        await run_in_threadpool(record, request, who[0], who[1], "login", "user", who[0], "")
        return RedirectResponse(nxt, status_code=303)

    async def logout(request: Request):
        await form_with_csrf(request)
        actor = session_user(request)
        if sessions.revoke(request.session.get("sid")) and actor is not None:
            await run_in_threadpool(record, request, actor.name, actor.role, "logout", "user", actor.name, "")
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # ------------------------------------------------------------------ pages
    def home(request: Request):
        return RedirectResponse("/campaigns", status_code=303)

    def campaigns(request: Request):
        actor = need(request)
        sort = request.query_params.get("sort", "confidence")
        desc = request.query_params.get("dir", "desc") != "asc"
        status = request.query_params.get("status") or None
        rows = data.campaigns(sort=sort, desc=desc, status=status)
        return render(request, "campaigns.html", {
            "rows": rows, "sort": sort, "desc": desc, "status": status, "head": data.headline(),
            "has_campaigns": data.has("campaigns"), "page": "campaigns", "agg": data.aggregates_status(),
            "missing": data.missing_decisions().num_rows if actor.can("admin") else 0})

    def campaign(request: Request):
        need(request)
        cid = request.path_params["campaign_id"]
        offset = _offset(request.query_params.get("members_offset"), "members_offset")
        c = data.campaign(cid, members_offset=offset)
        if c is None:
            return render(request, "error.html", {"title": "No such campaign", "message": f"No campaign {cid!r}."}, 404)
        return render(request, "campaign.html", {
            "c": c, "board": c["board"], "page": "campaigns",
            "timeline": charts.campaign_timeline(c["daily"], c.get("pivot_release")),
            "signals": charts.signal_bars(c["shares"], signal_words), "harvest": charts.harvest(c["harvest"])})

    def account(request: Request):
        need(request)
        aid = request.path_params["account_id"]
        a = data.account(aid)
        if a is None:
            return render(request, "error.html", {"title": "No such account", "message": f"No account {aid!r} in "
                                                  "this store's aggregates or risk table."}, 404)
        return render(request, "account.html", {"a": a, "activity": charts.account_activity(a["hourly"]),
                                                "page": "search"})

    def search(request: Request):
        need(request)
        q = request.query_params.get("q", "")[:500]
        kind = request.query_params.get("kind", "all")
        if kind not in ("all", "account", "ip", "template", "text"):
            kind = "all"
        res = data.search(q, kind)
        return render(request, "search.html", {"r": res, "page": "search"})

    def audit_page(request: Request):
        need(request)
        subject = (request.query_params.get("subject") or "")[:512] or None
        with audit_cache_lock:
            check = audit.verify(store, audit_cache)
        return render(request, "audit.html", {"rows": data.audit(subject_id=subject), "subject": subject,
                                              "check": check, "page": "audit"})

    async def act(request: Request):
        actor = need(request, "analyst")
        form = await form_with_csrf(request)
        st, sid = str(form.get("subject_type") or ""), str(form.get("subject_id") or "")
        back = f"/campaigns/{quote(sid, safe='')}" if st == "campaign" else f"/accounts/{quote(sid, safe='')}"
        try:
            d = await run_in_threadpool(apply_action, data, settings, actor, str(form.get("action") or ""), st, sid,
                                        str(form.get("reason") or ""))
        except ActionError as e:
            flash(request, f"Not done: {e.message}", "error")
            return RedirectResponse(back, status_code=303)
        flash(request, f"{ACTION_LABELS[str(form.get('action'))]}: {d['accounts']} account(s) and {d['clusters']} "
                       f"cluster(s) set to '{d['enforcement_action']}'"
                       + (f", {d['labels']} labelled {d['label']}" if d["labels"] else "") + "; recorded in the audit log.")
        return RedirectResponse(back, status_code=303)

    async def admin(request: Request):
        actor = need(request, "admin")
        if request.method == "POST":
            form = await form_with_csrf(request)
            exp = str(form.get("expires_days") or "").strip()
            try:
                expd = float(exp) if exp else None
            except ValueError:
                expd = -1.0
            try:
                await run_in_threadpool(set_enforcement, data, actor, str(form.get("subject_type") or ""),
                                        str(form.get("subject_id") or ""), str(form.get("action") or ""),
                                        str(form.get("reason") or ""), expd)
                flash(request, "Decision recorded in the enforcement table and the audit log.")
            except ActionError as e:
                flash(request, f"Not done: {e.message}", "error")
            return RedirectResponse("/admin/enforcement", status_code=303)
        action = request.query_params.get("action") or None
        if action not in ENFORCEMENT_ACTIONS:
            action = None
        offset = _offset(request.query_params.get("offset"), "offset")
        sort = request.query_params.get("sort") or "created_at"
        desc = request.query_params.get("dir", "desc") != "asc"
        q = (request.query_params.get("q") or "")[:200]
        rows, total = await run_in_threadpool(data.current_enforcement, action, ENFORCEMENT_PAGE, offset, sort, desc, q)
        agg = await run_in_threadpool(data.aggregates_status)
        missing = (await run_in_threadpool(data.missing_decisions)).num_rows
        return render(request, "admin.html", {"rows": rows, "action": action, "agg": agg, "missing": missing,
                                              "total": total, "offset": offset, "page_size": ENFORCEMENT_PAGE,
                                              "sort": sort, "desc": desc, "q": q,
                                              "subject_types": SUBJECT_TYPES, "enf_actions": ENFORCEMENT_ACTIONS,
                                              "page": "admin"})

    async def reapply(request: Request):
        actor = need(request, "admin")
        await form_with_csrf(request)
        n = await run_in_threadpool(reapply_decisions, data, actor)
        flash(request, f"Re-applied {n} analyst decision row(s) to the enforcement table.")
        return RedirectResponse("/admin/enforcement", status_code=303)

    async def rebuild(request: Request):
        actor = need(request, "admin")
        await form_with_csrf(request)
        started = data.start_rebuild()
        await run_in_threadpool(record, request, actor.name, actor.role, "rebuild_aggregates", "console",
                                "aggregates", "", started=started)
        if started:
            flash(request, "Rebuilding the console aggregates in the background; pages keep working meanwhile.")
        else:
            flash(request, "A rebuild is already running.", "error")
        return RedirectResponse("/admin/enforcement", status_code=303)

    def healthz(request: Request):
        return PlainTextResponse("ok")

    # ------------------------------------------------------------------ errors
    async def on_login_required(request: Request, exc: Exception):
        if request.method != "GET":
            return PlainTextResponse("login required", status_code=401)
        return RedirectResponse(f"/login?next={quote(request.url.path, safe='/')}", status_code=303)

    async def on_forbidden(request: Request, exc: Exception):
        actor = session_user(request)
        csrf = bool(exc.args and exc.args[0] == "csrf")
        if actor is not None:  # refused attempts of logged-in users (anonymous ones never got this far)
            await run_in_threadpool(record, request, actor.name, actor.role, "refused", "request",
                                    f"{request.method} {request.url.path}",
                                    "CSRF token missing or wrong" if csrf else "role too low")
        if csrf:
            return PlainTextResponse("CSRF token missing or wrong; reload the page and try again.", status_code=403)
        return render(request, "error.html", {"title": "Not allowed", "message": "Your role cannot do this."}, 403)

    async def on_bad_request(request: Request, exc: Exception):
        return PlainTextResponse(f"bad request: {exc}", status_code=400)

    async def on_404(request: Request, exc: Exception):
        return PlainTextResponse("not found", status_code=404)

    routes = [
        Route("/", home), Route("/login", login, methods=["GET", "POST"]), Route("/logout", logout, methods=["POST"]),
        Route("/campaigns", campaigns), Route("/campaigns/{campaign_id:path}", campaign),
        Route("/accounts/{account_id:path}", account), Route("/search", search), Route("/audit", audit_page),
        Route("/act", act, methods=["POST"]), Route("/admin/enforcement", admin, methods=["GET", "POST"]),
        Route("/admin/rebuild", rebuild, methods=["POST"]),
        Route("/admin/reapply", reapply, methods=["POST"]),
        Route("/healthz", healthz),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders, hsts=settings.cookie_secure),
        Middleware(SessionMiddleware, secret_key=secret, session_cookie="dg_console", max_age=settings.session_max_age_s,
                   same_site="strict", https_only=settings.cookie_secure),
    ]
    @asynccontextmanager
    async def lifespan(app):
        yield
        data.close()

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={LoginRequired: on_login_required, Forbidden: on_forbidden, BadRequest: on_bad_request,
                                        404: on_404})
    app.state.data = data
    return app


def _safe_next(nxt: str | None) -> str:
    """Only same-site paths: an attacker's ``next=//evil.example`` must not turn login into a redirector."""
    if not nxt or not nxt.startswith("/") or nxt.startswith("//") or "\\" in nxt:
        return "/campaigns"
    return nxt



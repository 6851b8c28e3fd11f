"""`distillguard console` (serve the investigation console), `console-hash` (make a login hash) and
`console-verify-audit` (check the audit log's hash chain)."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import typer

from distillguard.ui import make_console


def register(app: typer.Typer) -> None:
    @app.command("console")
    def console_cmd(
        store: str = typer.Option(..., "--store", "-s", help="Store directory or s3:// gs:// abfs:// URL (created by ingest/simulate)."),
        config: Path = typer.Option(None, "--config", "-c", help="console.yaml (users, tokens, secret key, limits)."),
        host: str = typer.Option(None, "--host", help="Address to bind (default from config: 127.0.0.1)."),
        port: int = typer.Option(None, "--port", help="Port to bind (default from config: 8600)."),
        build_aggregates: bool = typer.Option(False, "--build-aggregates",
                                              help="Build the console_* aggregate tables, then exit."),
        rebuild: str = typer.Option("auto", "--rebuild",
                                    help="At start-up: auto (rebuild aggregates when inputs changed), always, never."),
        as_json: bool = typer.Option(False, "--json", help="With --build-aggregates: print the counts as JSON."),
    ) -> None:
        """Serve the investigation console: campaigns, evidence, accounts, search, and analyst actions.

        Without users or tokens in the config, a one-time admin token is printed at start-up.
        """

        from distillguard.console import aggregates as agg
        from distillguard.console.config import Token, hash_secret, load_settings
        from distillguard.errors import ConfigError
        from distillguard.store import Store

        err = make_console(stderr=True)
        if rebuild not in ("auto", "always", "never"):
            raise ConfigError(f"--rebuild must be auto, always or never, not {rebuild!r}")
        settings = load_settings(config, host=host, port=port)
        st = Store(store)

        def build() -> dict:
            with err.status("building console aggregates") as status:
                res = agg.build_aggregates(st, sample_prompts=settings.sample_prompts,
                                       account_samples=settings.account_samples,
                                       on_step=lambda s: status.update(f"building console aggregates: {s}"))
            err.print(f"console aggregates built from {res['n_exchanges']:,} exchanges in {res['seconds']:.1f}s")
            return res

        if build_aggregates:
            res = build()
            if as_json:
                import orjson
                sys.stdout.write(orjson.dumps(res).decode() + "\n")
            return
        if rebuild == "always" or (rebuild == "auto" and not agg.aggregates_fresh(st)):
            build()

        one_time = None
        if not settings.users and not settings.tokens:
            one_time = secrets.token_urlsafe(18)
            settings.tokens.append(Token(name="admin (one-time token)", role="admin", token_hash=hash_secret(one_time)))
        import uvicorn

        from distillguard.console.app import create_app

        app_ = create_app(st, settings)
        url = f"http://{settings.host}:{settings.port}/"
        err.print(f"[bold]distillguard console[/] on {url}  (store {st.location})")
        if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.cookie_secure:
            err.print("[yellow]warning:[/] listening beyond localhost without cookie_secure: put the console behind "
                      "HTTPS and set cookie_secure: true so session cookies never travel in clear text")
        if one_time:
            err.print("no users in config: log in with this one-time admin token (valid until restart):")
            err.print(f"  token: [bold]{one_time}[/]", soft_wrap=True)
        uvicorn.run(app_, host=settings.host, port=settings.port, log_level="warning", server_header=False,
                    proxy_headers=False)

    @app.command("console-verify-audit")
    def console_verify_audit(
        store: str = typer.Option(..., "--store", "-s", help="Store directory or URL the console writes its audit log to."),
        as_json: bool = typer.Option(False, "--json", help="Print the check as JSON."),
    ) -> None:
        """Check the audit log's hash chain: exit 0 when intact, 1 when rows were changed or deleted."""
        from distillguard.console.audit import verify
        from distillguard.store import Store

        res = verify(Store(store))
        if as_json:
            import orjson

            sys.stdout.write(orjson.dumps(res.to_dict()).decode() + "\n")
        else:
            for p in res.problems:
                typer.echo(f"PROBLEM: {p}")
            head = f"head seq {res.head_seq}, hash {res.head_hash}" if res.head_seq else "no chain head yet"
            typer.echo(f"{'intact' if res.ok else 'FAILED'}: {res.rows} audit rows, {res.chained} chained; {head}")
        if not res.ok:
            raise typer.Exit(1)

    @app.command("console-hash")
    def console_hash(
        stdin: bool = typer.Option(False, "--stdin", help="Read the password or token from standard input."),
        new_token: bool = typer.Option(False, "--new-token", help="Generate a random token, print it and its hash."),
    ) -> None:
        """Hash a password or token for console.yaml (users[].password_hash / tokens[].token_hash)."""
        from distillguard.console.config import hash_secret

        if new_token:
            tok = secrets.token_urlsafe(24)
            typer.echo(f"token: {tok}")
            typer.echo(f"token_hash: {hash_secret(tok)}")
            return
        if stdin:
            secret = sys.stdin.readline().rstrip("\n")
        else:
            secret = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        typer.echo(hash_secret(secret))

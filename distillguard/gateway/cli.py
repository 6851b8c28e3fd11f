"""`distillguard gateway`, `mock-upstream`, `gateway-keys`, `gateway-writer`, `gateway-compact`."""

from __future__ import annotations

from pathlib import Path

import typer

from distillguard.errors import DistillguardError
from distillguard.ui import make_console

console = make_console(stderr=True)
out = make_console()

# Options the inline gateway and the check service share: one file configures both.
ConfigOpt = typer.Option(None, "--config", "-c", help="Gateway YAML (see docs/gateway.md; the check service reads the same).")
PortOpt = typer.Option(None, "--port", "-p", help="Listen port (default 8080).")
HostOpt = typer.Option(None, "--host", help="Listen address (default 127.0.0.1).")
PolicyOpt = typer.Option(None, "--policy", help="Policy YAML (hot-reloaded).")
KeysFileOpt = typer.Option(None, "--keys-file", help="Hashed API keys file (gateway-keys add).")


def _load(config, store, port, host, policy, keys_file, **more):
    """The gateway YAML with the command-line overrides both serving commands take."""
    from distillguard.gateway.config import load_config

    return load_config(config, **{"store": str(store) if store else None, "server.port": port, "server.host": host,
                                  "policy": str(policy) if policy else None,
                                  "identity.keys_file": str(keys_file) if keys_file else None, **more})


def register(app: typer.Typer) -> None:
    @app.command("gateway")
    def gateway(
        upstream: str = typer.Option(None, "--upstream", "-u", help="Upstream base URL, e.g. http://127.0.0.1:8000/v1."),
        config: Path = ConfigOpt,
        store: Path = typer.Option(None, "--store", "-s", help="Store: accounts, enforcement, clusters; recording target."),
        port: int = PortOpt,
        host: str = HostOpt,
        policy: Path = PolicyOpt,
        keys_file: Path = KeysFileOpt,
        allow_no_keys: bool = typer.Option(False, "--allow-no-keys",
                                           help="Start even with no API keys (every request then gets 401)."),
    ) -> None:
        """Run the inline gateway in front of an OpenAI/Anthropic-compatible upstream."""
        import uvicorn

        from distillguard.gateway.app import build_app
        from distillguard.gateway.logs import setup_logging
        from distillguard.gateway.server import uvicorn_config

        cfg = _load(config, store, port, host, policy, keys_file, **{
            "upstream.url": upstream, "identity.allow_no_keys": True if allow_no_keys else None})
        setup_logging(cfg.logging.level)
        app = build_app(cfg)
        uvicorn.Server(uvicorn_config(app, cfg.server)).run()

    @app.command("gateway-check")
    def gateway_check(
        config: Path = ConfigOpt,
        store: Path = typer.Option(None, "--store", "-s", help="Store: accounts, enforcement, clusters."),
        port: int = PortOpt,
        host: str = HostOpt,
        policy: Path = PolicyOpt,
        keys_file: Path = KeysFileOpt,
    ) -> None:
        """Serve allow / deny / rate_limited checks for Envoy ext_authz (/envoy/...) and NGINX auth_request (/nginx/auth)."""
        import uvicorn

        from distillguard.gateway.check import build_check_app
        from distillguard.gateway.logs import setup_logging
        from distillguard.gateway.server import uvicorn_config

        cfg = _load(config, store, port, host, policy, keys_file)
        cfg.recorder.enabled = False  # the check service never sees the reply; the gateway's own logs are ingested
        setup_logging(cfg.logging.level)
        # the gateway's own hardened server: header limits and deadlines apply to the check service too
        uvicorn.Server(uvicorn_config(build_check_app(cfg), cfg.server)).run()

    @app.command("mock-upstream")
    def mock_upstream(
        port: int = typer.Option(18000, "--port", "-p"),
        host: str = typer.Option("127.0.0.1", "--host"),
        reasoning_words: int = typer.Option(200, help="Words of reasoning per reply."),
        answer_words: int = typer.Option(60, help="Words of answer per reply."),
    ) -> None:
        """A local OpenAI + Anthropic compatible model stand-in (reasoning, tool calls, SSE) for tests and demos."""
        from distillguard.gateway.mock_upstream import serve

        console.print(f"mock upstream on http://{host}:{port}/v1")
        serve(port, host, reasoning_words, answer_words)

    @app.command("gateway-demo")
    def gateway_demo(store: Path = typer.Option(..., "--store", "-s", help="Store to record into (created if absent)."),
                     as_json: bool = typer.Option(False, "--json")) -> None:
        """Start the mock upstream and a gateway on STORE, drive them with the SDKs, show what happened."""
        from distillguard.gateway.demo import run_demo

        rows = run_demo(store, console if as_json else out)
        if as_json:
            import orjson

            out.print_json(orjson.dumps(rows).decode())

    @app.command("gateway-keys")
    def gateway_keys(
        keys_file: Path = typer.Option(..., "--keys-file", "-f", help="Keys file to create or extend."),
        account: str = typer.Option(..., "--account", "-a", help="Account the key belongs to."),
        org: str = typer.Option(None, "--org", help="Organisation of the account."),
        key: str = typer.Option(None, "--key", help="Use this key instead of generating one (e.g. existing keys)."),
        key_id: str = typer.Option(None, "--key-id", help="Identifier recorded in exchanges (default from the hash)."),
        pepper_env: str = typer.Option("DISTILLGUARD_KEY_PEPPER", help="Environment variable holding the pepper."),
        pepper_file: Path = typer.Option(None, "--pepper-file",
                                         help="Pepper file used when the variable is unset; generated (mode 600) "
                                              "if absent. Default: KEYS_FILE.pepper."),
        as_json: bool = typer.Option(False, "--json", help="Print {key_id, account, key} as JSON (key only when generated)."),
    ) -> None:
        """Add an API key (stored only as HMAC-SHA256 with the pepper); prints a generated key once."""
        from distillguard.gateway.identity import add_key
        from distillguard.gateway.pepper import default_pepper_file, load_pepper

        pepper = load_pepper(pepper_env, pepper_file or default_pepper_file(keys_file), create=True)
        if pepper.source.endswith("(generated)"):
            console.print(f"generated a key pepper in {pepper.source[5:-12]} (mode 600); the gateway reads it from "
                          f"there unless {pepper_env} is set. Back it up: without it no key matches.")
        k, kid = add_key(keys_file, account, org, pepper.secret, key=key, key_id=key_id)
        if as_json:
            from distillguard.ui import print_json

            print_json({"key_id": kid, "account": account, "org": org, "keys_file": str(keys_file),
                        "key": k if key is None else None})
            return
        if key is None:
            out.print(k)
        console.print(f"added {kid} for account {account} to {keys_file}")

    @app.command("gateway-compact")
    def gateway_compact(
        store: Path = typer.Option(..., "--store", "-s"),
        spool: Path = typer.Option(None, "--spool", help="Spool directory (default STORE/spool)."),
    ) -> None:
        """Compact spool segments no running gateway holds into the store (also done at gateway start).

        Exit 0: all compacted; 3: compacted, some records quarantined (STORE/quarantine/gw-*.jsonl);
        1: some segments could not be compacted now (left in place; run again).
        """
        from distillguard.gateway.recorder import compact_spool
        from distillguard.store import Store

        st = Store(store)
        c = compact_spool(spool or store / "spool", st)
        out.print(f"compacted {c.exchanges:,} exchanges into {store} from {c.segments:,} segments; "
                  f"quarantined {c.quarantined:,}" + (f"; {len(c.failed)} segments failed (left in place): "
                                                      + ", ".join(c.failed[:5]) if c.failed else ""))
        if c.failed:
            raise typer.Exit(1)
        if c.quarantined:
            raise typer.Exit(3)

    @app.command("gateway-writer")
    def gateway_writer(
        store: Path = typer.Option(..., "--store", "-s"),
        redis_url: str = typer.Option("redis://127.0.0.1:6379/0", "--redis-url"),
        stream: str = typer.Option("distillguard:exchanges", "--stream"),
        group: str = typer.Option("distillguard-writer", "--group"),
        consumer: str = typer.Option("writer-1", "--consumer"),
        batch_seconds: float = typer.Option(5.0, help="Write a Parquet part at least this often."),
        once: bool = typer.Option(False, "--once", help="Drain what is in the stream now and exit."),
        as_json: bool = typer.Option(False, "--json", help="Print {exchanges, store} as JSON when done."),
    ) -> None:
        """Consume the gateways' Redis stream of exchanges into the store (production recording)."""
        from distillguard.gateway.writer import run_writer
        from distillguard.store import Store

        try:
            n = run_writer(Store(store, create=True), redis_url, stream, group, consumer, batch_seconds, once=once)
        except KeyboardInterrupt:
            return
        except OSError as e:
            raise DistillguardError(f"cannot reach Redis at {redis_url}: {e}") from None
        if as_json:
            from distillguard.ui import print_json

            print_json({"exchanges": n, "store": str(store)})
            return
        out.print(f"wrote {n:,} exchanges into {store}")

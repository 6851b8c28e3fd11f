"""`distillguard intel ...`: share campaign indicators with partners and match theirs."""

from __future__ import annotations

import os
import secrets
import sys
from datetime import datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from distillguard.errors import DistillguardError
from distillguard.ui import make_console

intel_app = typer.Typer(name="intel", help="Indicator sharing: STIX 2.1 export/import, matching, TAXII 2.1.",
                        no_args_is_help=True)
console = make_console(stderr=True)
out = make_console()

StoreOpt = typer.Option(..., "--store", "-s", help="Store directory.")
JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON on stdout instead of tables.")
KeyOpt = typer.Option(None, "--group-key-file", "-k", help="File holding the sharing group's key "
                      "(else $DISTILLGUARD_INTEL_GROUP_KEY_FILE or $DISTILLGUARD_INTEL_GROUP_KEY).")
ConfigOpt = typer.Option(None, "--config", "-c", help="YAML with an `intel:` section (see docs/intel.md).")


def _print_json(obj) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def _store(path: Path):
    from distillguard.store import Store

    return Store(path)


@intel_app.command("keygen")
def keygen(out_file: Path = typer.Option(..., "--out", "-o", help="Where to write the new key (mode 0600)."),
           force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
           as_json: bool = JsonOpt) -> None:
    """Create a new random group key (32 bytes, hex) to distribute to the sharing group out of band."""
    from distillguard.intel.keys import parse_key

    if out_file.exists() and not force:
        raise DistillguardError("refusing to overwrite an existing key file (use --force)", source=str(out_file))
    k = secrets.token_hex(32)
    fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(k + "\n")
    kid = parse_key(k, str(out_file)).key_id
    if as_json:
        _print_json({"key_file": str(out_file), "key_id": kid})  # never the key itself
        return
    out.print(f"wrote group key to {out_file} · key id {kid}")


@intel_app.command("export")
def export_cmd(
    store: Path = StoreOpt,
    out_path: Path = typer.Option(..., "--out", "-o", help="Bundle file to write (STIX 2.1 JSON)."),
    campaign: str = typer.Option(None, "--campaign", help="Campaign id to export."),
    confirmed: bool = typer.Option(False, "--confirmed", help="Export every campaign with status 'confirmed'."),
    raw: bool = typer.Option(False, "--raw", help="Export raw values (IPs, domains, masked template text) "
                             "instead of keyed hashes. Only for partners allowed to see them."),
    group_key_file: Path = KeyOpt,
    tlp: str = typer.Option(None, "--tlp", help="TLP marking: white/clear, green, amber (default), red."),
    provider_name: str = typer.Option(None, "--provider-name", help="Name of the exporting identity."),
    no_note: bool = typer.Option(False, "--no-note", help="Leave out the note with capability mix and scale."),
    keep_benign_overlap: bool = typer.Option(False, "--keep-benign-overlap",
                                             help="Keep values legitimate local accounts also use, at low confidence."),
    publish: bool = typer.Option(False, "--publish", help="Also add the bundle to this store's TAXII collection."),
    collection: str = typer.Option(None, "--collection", help="TAXII collection id for --publish."),
    config: Path = ConfigOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write campaign indicators as a STIX 2.1 bundle (keyed hashes unless --raw)."""
    from distillguard.intel.config import load_config
    from distillguard.intel.export import export_bundle
    from distillguard.intel.keys import load_group_key

    if bool(campaign) == bool(confirmed):
        raise DistillguardError("pass exactly one of --campaign ID or --confirmed")
    cfg = load_config(config)
    if provider_name:
        cfg.provider.name = provider_name
    if no_note:
        cfg.export.include_note = False
    if keep_benign_overlap:
        cfg.export.keep_benign_overlap = True
    key = load_group_key(group_key_file, required=not raw)
    st = _store(store)
    rep = export_bundle(st, out_path, campaign_id=campaign, confirmed=confirmed, key=key, raw=raw, config=cfg,
                        tlp=tlp)
    d = rep.to_dict()
    if publish:
        from distillguard.intel.taxii import DEFAULT_COLLECTION, publish_bundle

        d["published"] = publish_bundle(st, out_path.read_text(), collection or DEFAULT_COLLECTION)
    if as_json:
        _print_json(d)
        return
    t = Table(title=f"indicators in {out_path}", title_justify="left")
    t.add_column("kind")
    t.add_column("indicators", justify="right")
    for k, n in sorted(rep.indicators.items()):
        t.add_row(k, str(n))
    out.print(t)
    if rep.dropped:
        dt = Table(title="left out: legitimate local accounts use them too", title_justify="left")
        for c in ("kind", "value", "campaign accounts", "benign accounts"):
            dt.add_column(c)
        for r in rep.dropped:
            # Values such as user agents are attacker-controlled: never let them act as rich markup.
            dt.add_row(r["kind"], escape(str(r["value"])), str(r["campaign_accounts"]), str(r["benign_accounts"]))
        out.print(dt)
    mode = "raw values" if raw else f"keyed hashes (group key id {rep.key_id})"
    out.print(f"wrote {rep.objects} STIX objects for {len(rep.campaigns)} campaign(s) · {mode}"
              + (f" · published {d['published']} new objects" if publish else ""))


PartnerConfigOpt = typer.Option(..., "--config", "-c", help="YAML with an `intel:` section listing the partners "
                                "(intel.partners) and the import limits (see docs/intel.md).")


def _print_rejected(rejected: list[dict], duplicates: int) -> None:
    if duplicates:
        console.print(f"[yellow]{duplicates} repeated indicators collapsed into one each[/]")
    if not rejected:
        return
    t = Table(title=f"{len(rejected)} indicators rejected", title_justify="left")
    for c in ("indicator", "kind", "value", "reason"):
        t.add_column(c)
    for r in rejected[:20]:
        t.add_row(escape(r["indicator_id"]), escape(r["kind"]), escape(r["value"]), escape(r["reason"]))
    console.print(t)
    if len(rejected) > 20:
        console.print(f"… and {len(rejected) - 20} more (--json lists them all)")


@intel_app.command("import")
def import_cmd(bundle: Path = typer.Argument(..., help="STIX 2.1 bundle from a partner."), store: Path = StoreOpt,
               partner: str = typer.Option(..., "--partner", help="The configured partner (intel.partners) that "
                                           "delivered this bundle; its indicators are stored under this name."),
               config: Path = PartnerConfigOpt, as_json: bool = JsonOpt) -> None:
    """Validate a partner's bundle strictly and store its acceptable indicators in intel_indicators."""
    from distillguard.intel.config import load_config
    from distillguard.intel.importer import import_bundle

    rep = import_bundle(bundle, _store(store), partner, load_config(config))
    if as_json:
        _print_json(rep.to_dict())
        return
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(rep.by_kind.items()))
    claim = f" · the bundle calls itself {escape(repr(rep.claimed_by))}" if rep.claimed_by else ""
    out.print(f"imported {rep.indicators} indicators ({kinds}) from partner {escape(rep.source or '')} "
              f"(trust {rep.trust:g}){claim} · {rep.total_stored} in the store")
    _print_rejected(rep.rejected, rep.duplicates)
    if rep.unsupported:
        console.print(f"[yellow]{rep.unsupported} indicators have patterns distillguard cannot match; kept, not used[/]")


def _print_hits(rep, top: int) -> None:
    for w in rep.warnings:
        console.print(f"[yellow]{escape(w)}[/]")
    t = Table(title="accounts matching partner indicators", title_justify="left")
    for c in ("account", "boost", "indicators", "kinds", "partners"):
        t.add_column(c, justify="right" if c in ("boost", "indicators") else "left")
    for h in rep.hits[:top]:
        # Partner names come from the partner's bundle: print them as text, never as markup.
        t.add_row(escape(h["account_id"]), f"{h['boost']:.2f}", str(h["n_indicators"]), ", ".join(h["kinds"]),
                  escape(", ".join(h["sources"])))
    out.print(t)
    out.print(f"{rep.matches} matches · {rep.accounts} accounts · {rep.indicators_active} active indicators"
              + (f" · {rep.indicators_expired} expired" if rep.indicators_expired else "")
              + (f" · {rep.indicators_collapsed} repeats collapsed" if rep.indicators_collapsed else ""))


def _print_applied(applied) -> None:
    newly = ", ".join(applied.newly_flagged[:20]) + (" …" if len(applied.newly_flagged) > 20 else "")
    out.print(f"account_risk: {applied.accounts_boosted} raised · {len(applied.newly_flagged)} newly flagged"
              + (f" ({escape(newly)})" if newly else "")
              + (f" · {applied.enforcement_rows} enforcement rows" if applied.enforcement_rows else ""))
    if applied.recommended:
        console.print(f"[yellow]{applied.recommended} accounts recommended for review in intel_recommendations, not "
                      f"enforced: {escape('; '.join(applied.not_enforced_because))}[/]")


@intel_app.command("match")
def match_cmd(store: Path = StoreOpt, group_key_file: Path = KeyOpt, config: Path = PartnerConfigOpt,
              no_apply: bool = typer.Option(False, "--no-apply", help="Only write intel_matches/intel_boost/"
                                            "intel_edges; leave account_risk alone."),
              enforce: str = typer.Option(None, "--enforce", help="For every account the intel newly flags, write an "
                                          "`enforcement` row with this action where intel.enforce allows it, else "
                                          "a recommendation for review (intel_recommendations)."),
              top: int = typer.Option(30, help="Rows to show."), as_json: bool = JsonOpt) -> None:
    """Match imported indicators against local traffic and raise the risk of matching accounts."""
    from distillguard.intel.apply import apply_intel
    from distillguard.intel.config import load_config
    from distillguard.intel.keys import load_group_key
    from distillguard.intel.match import match_store

    cfg = load_config(config)
    st = _store(store)
    key = load_group_key(group_key_file, required=False)
    rep = match_store(st, key, cfg)
    applied = None
    if not no_apply:
        applied = apply_intel(st, cfg, enforce_action=enforce)
    if as_json:
        d = rep.to_dict()
        d["applied"] = applied.to_dict() if applied else None
        _print_json(d)
        return
    _print_hits(rep, top)
    if applied:
        _print_applied(applied)


@intel_app.command("apply")
def apply_cmd(store: Path = StoreOpt, config: Path = ConfigOpt,
              enforce: str = typer.Option(None, "--enforce", help="Enforcement action for newly flagged accounts."),
              as_json: bool = JsonOpt) -> None:
    """Fold intel_boost into account_risk again (e.g. after a scan rewrote account_risk)."""
    from distillguard.intel.apply import apply_intel
    from distillguard.intel.config import load_config

    rep = apply_intel(_store(store), load_config(config), enforce_action=enforce)
    if as_json:
        _print_json(rep.to_dict())
        return
    _print_applied(rep)


@intel_app.command("publish")
def publish_cmd(bundle: Path = typer.Argument(..., help="Bundle to publish."), store: Path = StoreOpt,
                collection: str = typer.Option(None, "--collection", help="Collection id (default collection if omitted)."),
                as_json: bool = JsonOpt) -> None:
    """Add a bundle's objects to this store's TAXII collection."""
    from distillguard.intel.taxii import DEFAULT_COLLECTION, publish_bundle

    if not bundle.is_file():
        raise DistillguardError("bundle file not found", source=str(bundle))
    n = publish_bundle(_store(store), bundle.read_text(), collection or DEFAULT_COLLECTION)
    if as_json:
        _print_json({"published": n, "collection": collection or DEFAULT_COLLECTION})
        return
    out.print(f"published {n} new objects to collection {collection or DEFAULT_COLLECTION}")


@intel_app.command("serve-taxii")
def serve_taxii(store: Path = StoreOpt,
                config: Path = typer.Option(None, "--config", "-c", help="YAML with a `taxii:` section."),
                host: str = typer.Option("127.0.0.1", help="Interface to bind."),
                port: int = typer.Option(8600, help="Port to bind."),
                user: str = typer.Option(None, "--user", help="Basic-auth user; password from $DISTILLGUARD_TAXII_PASSWORD."),
                token_env: str = typer.Option(None, "--token-env", help="Environment variable holding a bearer token.")) -> None:
    """Run the TAXII 2.1 server on its own (the console mounts the same app under /taxii)."""
    import uvicorn

    from distillguard.intel.taxii import build_taxii_app, load_taxii_config

    cfg = load_taxii_config(config)
    if user:
        cfg.users[user] = "${DISTILLGUARD_TAXII_PASSWORD}"
    if token_env:
        cfg.tokens.append(f"${{{token_env}}}")
    app = build_taxii_app(_store(store), cfg)
    console.print(f"TAXII 2.1 discovery at http://{host}:{port}/taxii2/ · API root /{cfg.api_root}/")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@intel_app.command("poll")
def poll_cmd(url: str = typer.Argument(..., help="Discovery URL (…/taxii2/) or API root URL of the partner's server."),
             collection: str = typer.Option(..., "--collection", help="Collection id (or alias)."),
             store: Path = StoreOpt,
             user: str = typer.Option(None, "--user", help="Basic-auth user; password from --password-env."),
             password_env: str = typer.Option("DISTILLGUARD_TAXII_PASSWORD", "--password-env",
                                              help="Environment variable holding the password."),
             token_env: str = typer.Option(None, "--token-env", help="Environment variable holding a bearer token."),
             added_after: str = typer.Option(None, "--added-after", help="Only objects added after this time "
                                             "(default: where the last poll stopped)."),
             limit: int = typer.Option(100, "--limit", help="Objects per request."),
             config: Path = PartnerConfigOpt,
             as_json: bool = JsonOpt) -> None:
    """Pull a partner's TAXII 2.1 collection into intel_indicators (incremental), under the partner the config
    names for this URL and collection."""
    from distillguard.intel.config import load_config
    from distillguard.intel.poll import poll_collection

    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise DistillguardError(f"environment variable {token_env} is not set")
    password = os.environ.get(password_env) if user else None
    if added_after:
        try:
            datetime.fromisoformat(added_after.replace("Z", "+00:00"))
        except ValueError as e:
            raise DistillguardError("--added-after must be an ISO 8601 timestamp") from e
    if limit < 1:
        raise DistillguardError("--limit must be at least 1")
    rep = poll_collection(url, collection, _store(store), load_config(config), user=user, password=password,
                          token=token, added_after=added_after, per_request=limit)
    if as_json:
        _print_json(rep.to_dict())
        return
    out.print(f"pulled {rep.objects} objects in {rep.pages} pages from partner {escape(rep.partner)} · "
              f"{rep.indicators} indicators stored" + (f", {rep.rejected} rejected" if rep.rejected else "")
              + (f" · next poll after {escape(rep.last_added)}" if rep.last_added else ""))
    if rep.stopped:
        console.print(f"[yellow]stopped after {escape(rep.stopped)} although the server has more; run poll again "
                      "to continue[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(intel_app, name="intel")

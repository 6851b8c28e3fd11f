"""Stores and inputs on object storage (``s3://``, ``gs://``, ``abfs://``) through one fsspec filesystem layer.

Why this shape: object stores have no rename, no append, no file locks and no memory mapping, which
are exactly what a store's bookkeeping (the DuckDB catalog, the exchange-id index, spill files, scan
checkpoints) relies on. So a store on object storage keeps its *data* there — exchange and account
parts, derived tables, quarantine, ``store.json`` — and keeps its bookkeeping in a local **working
directory** under the scratch root (``DISTILLGUARD_SCRATCH``, default ``$TMPDIR/distillguard-<uid>``),
copied from the object store when an ingest starts and back after each file. Parquet parts are
written as single objects (a PUT is atomic: readers see all of a part or none of it), DuckDB reads
them through the same filesystem registered on each connection, and a single-writer lock object
(created with a conditional PUT) stands in for ``flock``.

Credentials come from the environment the cloud SDK reads (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``,
``AWS_REGION``; ``GOOGLE_APPLICATION_CREDENTIALS``; ``AZURE_STORAGE_*``). They are never logged:
errors name the URL and the kind of failure only.
"""

from __future__ import annotations

import getpass
import hashlib
import importlib
import json
import os
import re
import socket
import tempfile
import time
from pathlib import Path

from distillguard.errors import StoreError

#: URL scheme -> (Python module that implements it, fsspec protocol name).
SCHEMES = {
    "s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs"),
    "abfs": ("adlfs", "abfs"), "abfss": ("adlfs", "abfs"), "az": ("adlfs", "abfs"),
}
#: Environment variable naming the local scratch root (working directories, staged inputs).
SCRATCH_ENV = "DISTILLGUARD_SCRATCH"
#: Seconds an ingest waits for another ingest's lock object before giving up (environment override).
LOCK_WAIT_ENV = "DISTILLGUARD_LOCK_WAIT"
LOCK_WAIT_DEFAULT = 60.0
LOCK_NAME = "_ingest.lock"
#: Seconds between copies of an ingest's bookkeeping to the object store while it runs (environment override).
PUSH_INTERVAL_ENV = "DISTILLGUARD_SYNC_INTERVAL"
PUSH_INTERVAL_DEFAULT = 60.0

# scheme ":" one or more "/" rest; also matches "s3:/bucket", what pathlib makes of "s3://bucket"
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/+(.*)$")


def split_url(location: str | os.PathLike) -> tuple[str | None, str]:
    """(scheme, "bucket/prefix") for an object-storage URL, (None, path) for a local path.

    Raises StoreError for a scheme no filesystem here implements, so a URL is never taken for a
    local directory name."""
    s = os.fspath(location)
    m = _URL.match(s)
    if not m:
        return None, s
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme == "file":
        return None, "/" + rest
    if scheme not in SCHEMES:
        raise StoreError(f"unsupported store URL scheme {scheme!r}: use a local path, s3://, gs:// or abfs://",
                         source=s)
    rest = rest.strip("/")
    if not rest:
        raise StoreError("the URL names no bucket", source=s)
    return scheme, rest


def is_url(location: str | os.PathLike) -> bool:
    return split_url(location)[0] is not None


def filesystem(scheme: str, url: str):
    """The fsspec filesystem for ``scheme`` (listing cache off: other processes write the same store)."""
    module, proto = SCHEMES[scheme]
    try:
        import fsspec

        importlib.import_module(module)
    except ImportError as e:
        raise StoreError(f"{scheme}:// needs the {module!r} package: pip install 'distillguard[cloud]'"
                         + ("" if module == "s3fs" else f" {module}"), source=url) from e
    return fsspec.filesystem(proto, use_listings_cache=False)


def check_access(fs, scheme: str, root: str, url: str) -> None:
    """Fail early, and clearly, when credentials are missing or the bucket does not exist."""
    bucket = root.split("/", 1)[0]
    try:
        if SCHEMES[scheme][1] == "s3":
            fs.call_s3("head_bucket", Bucket=bucket)
        else:
            fs.info(bucket)
    except Exception as e:  # noqa: BLE001 - SDKs raise many kinds; each is mapped to one clear message
        raise access_error(e, url, bucket) from e


def access_error(e: BaseException, url: str, bucket: str) -> StoreError:
    name = type(e).__name__
    if "Credential" in name or "credentials" in str(e).lower():
        return StoreError("no credentials for object storage: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                          "(or AWS_PROFILE / an instance role; GOOGLE_APPLICATION_CREDENTIALS for gs://, "
                          "AZURE_STORAGE_* for abfs://)", source=url)
    if isinstance(e, FileNotFoundError) or "NoSuchBucket" in str(e) or "Not Found" in str(e):
        return StoreError(f"bucket {bucket!r} does not exist (create it first)", source=url)
    if isinstance(e, PermissionError) or "403" in str(e) or "AccessDenied" in str(e):
        return StoreError(f"access to bucket {bucket!r} denied: check the credentials and their permissions",
                          source=url)
    return StoreError(f"cannot reach object storage ({name}); check AWS_ENDPOINT_URL / the network", source=url)


def scratch_root() -> Path:
    env = os.environ.get(SCRATCH_ENV)
    if env:
        return Path(env)
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = str(os.getuid())
    return Path(tempfile.gettempdir()) / f"distillguard-{user}"


def working_dir(url: str) -> Path:
    """The local directory holding a remote store's bookkeeping on this machine (one per URL)."""
    tag = re.sub(r"[^A-Za-z0-9]+", "-", url)[:48].strip("-")
    d = scratch_root() / "stores" / f"{tag}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _seconds(env: str, default: float) -> float:
    try:
        return float(os.environ.get(env, default))
    except ValueError as e:
        raise StoreError(f"{env} must be a number of seconds") from e


def lock_wait() -> float:
    return _seconds(LOCK_WAIT_ENV, LOCK_WAIT_DEFAULT)


def push_interval() -> float:
    return _seconds(PUSH_INTERVAL_ENV, PUSH_INTERVAL_DEFAULT)


class RemoteLock:
    """One writer per store across machines: a lock object created only if absent (conditional PUT).

    A filesystem that cannot create exclusively falls back to check-then-write, which two writers
    starting in the same instant can both pass (documented in docs/configuration.md)."""

    def __init__(self, fs, path: str, url: str):
        self.fs, self.path, self.url = fs, path, url
        self.held = False

    def __enter__(self) -> RemoteLock:
        body = json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                           "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode()
        deadline = time.monotonic() + lock_wait()
        while True:
            try:
                with self.fs.open(self.path, "xb") as fh:
                    fh.write(body)
                self.held = True
                return self
            except FileExistsError:
                pass
            except (ValueError, NotImplementedError):  # no exclusive create here
                if not self.fs.exists(self.path):
                    with self.fs.open(self.path, "wb") as fh:
                        fh.write(body)
                    self.held = True
                    return self
            if time.monotonic() > deadline:
                try:
                    holder = self.fs.cat_file(self.path).decode("utf-8", "replace")[:300]
                except Exception:  # noqa: BLE001 - released in the meantime, or unreadable
                    holder = "?"
                raise StoreError(f"another ingest holds the store's lock ({holder}); if it died, delete "
                                 f"{LOCK_NAME} under the store URL", source=self.url)
            time.sleep(0.5)

    def __exit__(self, *exc) -> None:
        if self.held:
            try:
                self.fs.rm_file(self.path)
            except FileNotFoundError:
                pass
            self.held = False


def stage_input(fs, remote: str, dest_dir: Path) -> Path:
    """Copy one input object to a local file (ingest reads files by offset); returns the local path.

    The copy keeps the object's name (readers sniff formats and compression from it)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / remote.rsplit("/", 1)[-1]
    fs.get_file(remote, str(dest))
    return dest

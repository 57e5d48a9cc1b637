"""Secrets never reach logs, reports or evidence files.

Every secret value the suite learns (API tokens, kubeconfig credentials, S3 keys read from
ObjectBucketClaim secrets, registry tokens) is `register`ed; then
- `install()` makes every log record redacted at creation (a log record factory, so it holds for
  every handler: pytest's captured logs, live logs, JUnit's system-out) and adds `RedactingFilter`
  to the root logger's handlers;
- `redact(text)` replaces every registered value by `***`;
- `redact_file(path)` / `redact_tree(dir)` rewrite evidence files (JUnit XML, allure results and
  attachments, logs) in place.
"""
from __future__ import annotations

import base64
import logging
import os
import threading
from pathlib import Path
from typing import Iterable

import yaml

MASK = "***"
MIN_LENGTH = 6                 # shorter values would redact ordinary words
MAX_FILE_BYTES = 64 * 1024 * 1024

_lock = threading.Lock()
_secrets: set[str] = set()
_sorted: list[str] = []        # longest first


def register(value, *, encodings: bool = True) -> None:
    """Remember a secret value (str or bytes); also its base64 forms when `encodings`."""
    if value is None:
        return
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            value = base64.b64encode(value).decode()
    value = str(value).strip()
    if len(value) < MIN_LENGTH:
        return
    forms = {value}
    if encodings:
        raw = value.encode()
        forms.add(base64.b64encode(raw).decode())
        forms.add(base64.b64encode(raw).decode().rstrip("="))
        forms.add(base64.urlsafe_b64encode(raw).decode().rstrip("="))
    global _sorted
    with _lock:
        new = forms - _secrets
        if not new:
            return
        _secrets.update(f for f in new if len(f) >= MIN_LENGTH)
        _sorted = sorted(_secrets, key=len, reverse=True)


def register_all(values: Iterable) -> None:
    for v in values:
        register(v)


def secrets() -> list[str]:
    """The registered values (for scans in selftests)."""
    return list(_sorted)


def clear() -> None:
    global _sorted
    with _lock:
        _secrets.clear()
        _sorted = []


def redact(text):
    """`text` with every registered secret replaced by `***` (str or bytes in, same type out)."""
    if not _sorted or text is None:
        return text
    if isinstance(text, bytes):
        out = text
        for s in _sorted:
            if s.encode() in out:
                out = out.replace(s.encode(), MASK.encode())
        return out
    if not isinstance(text, str):
        text = str(text)
    for s in _sorted:
        if s in text:
            text = text.replace(s, MASK)
    return text


def contains_secret(text) -> bool:
    if text is None:
        return False
    if isinstance(text, bytes):
        return any(s.encode() in text for s in _sorted)
    return any(s in str(text) for s in _sorted)


# --- kubeconfig credentials ----------------------------------------------------------------------
def kubeconfig_secrets(path) -> list[str]:
    """Every credential in a kubeconfig: tokens (and token files' contents), client keys and
    certificates data, passwords, auth-provider and exec secrets."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    out = []
    for u in data.get("users") or []:
        user = (u or {}).get("user") or {}
        for key in ("token", "password", "client-key-data"):
            if user.get(key):
                out.append(str(user[key]))
        if user.get("client-key-data"):
            try:
                out.append(base64.b64decode(user["client-key-data"]).decode())
            except Exception:  # noqa: BLE001 - not base64: the raw value is registered already
                pass
        if user.get("token-file"):
            try:
                out.append(Path(user["token-file"]).read_text().strip())
            except OSError:
                pass
        ap = (user.get("auth-provider") or {}).get("config") or {}
        out += [str(v) for k, v in ap.items() if "token" in k or "secret" in k]
    return out


def register_kubeconfig(path) -> None:
    for s in kubeconfig_secrets(path):
        register(s)
        # a PEM key: also each of its base64 lines (a log might wrap it)
        if "-----BEGIN" in s:
            for line in s.splitlines():
                if len(line) >= 40 and not line.startswith("-----"):
                    register(line, encodings=False)


# --- logging --------------------------------------------------------------------------------------
class RedactingFilter(logging.Filter):
    """Redacts a record's message (and its arguments) in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def _redact_record(record: logging.LogRecord) -> None:
    if not _sorted or getattr(record, "_redacted", False):
        return
    try:
        msg = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format: keep it, redacted as text
        msg = f"{record.msg} {record.args}"
    record.msg, record.args = redact(msg), ()
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    record._redacted = True


def register_secret_object(obj) -> None:
    """Register every value of a Secret (a V1Secret, a list of them, or a dict as the API serves it)."""
    if obj is None:
        return
    if isinstance(obj, dict):
        items = obj.get("items") if isinstance(obj.get("items"), list) else [obj]
        for item in items:
            if isinstance(item, dict) and (item.get("kind") in (None, "Secret") or "data" in item):
                _register_data(item.get("data"), encoded=True)
                _register_data(item.get("stringData"), encoded=False)
        return
    items = getattr(obj, "items", None)
    for item in (items if isinstance(items, list) else [obj]):
        _register_data(getattr(item, "data", None), encoded=True)
        _register_data(getattr(item, "string_data", None), encoded=False)


def _register_data(data, *, encoded: bool) -> None:
    if not isinstance(data, dict):
        return
    for v in data.values():
        if not v:
            continue
        if encoded:
            try:
                register(base64.b64decode(v))
            except Exception:  # noqa: BLE001 - not base64 after all
                pass
        register(v)


class SecretObserver:
    """A `utilities.kube` call observer: every Secret the suite reads or writes through `kube.call`
    (S3 keys of ObjectBucketClaims, the registry's S3 credentials...) is registered."""

    def before(self, name, args, kwargs):
        if "secret" in name and (name.startswith("create_") or name.startswith("replace_") or
                                 name.startswith("patch_")):
            body = kwargs.get("body", args[-1] if args else None)
            register_secret_object(body)

    def after(self, name, args, kwargs, result):
        if "secret" in name:
            register_secret_object(result)


_installed = False


def install() -> None:
    """Redact every log record from now on, and learn the Secrets the suite touches (idempotent)."""
    global _installed
    if _installed:
        return
    from utilities import kube
    kube.add_observer(SecretObserver())
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        _redact_record(record)
        return record
    logging.setLogRecordFactory(factory)
    flt = RedactingFilter()
    for h in logging.getLogger().handlers:
        h.addFilter(flt)
    _installed = True


# --- files ----------------------------------------------------------------------------------------
def redact_file(path) -> bool:
    """Rewrite `path` without secrets (atomically); True when it changed."""
    p = Path(path)
    try:
        if not p.is_file() or p.is_symlink() or p.stat().st_size > MAX_FILE_BYTES:
            return False
        data = p.read_bytes()
    except OSError:
        return False
    new = redact(data)
    if new == data:
        return False
    tmp = p.with_name(f".{p.name}.redact-{os.getpid()}")
    tmp.write_bytes(new)
    os.replace(tmp, p)
    return True


def redact_tree(root, skip: Iterable[str] = ()) -> list[Path]:
    """Redact every file under `root` (not following symlinks; paths relative to `root` listed in
    `skip`, files or directories, are left alone); returns the files changed."""
    changed = []
    root = Path(root)
    if not root.is_dir() or not _sorted:
        return changed
    skip = {Path(s) for s in skip}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if rel / d not in skip]
        for f in filenames:
            if rel / f in skip:
                continue
            if redact_file(Path(dirpath) / f):
                changed.append(Path(dirpath) / f)
    return changed

"""Secrets never reach logs, reports or evidence files.

Every secret value the suite learns (API tokens, kubeconfig credentials, S3 keys read from
ObjectBucketClaim secrets, registry tokens) is `register`ed; then
- `install()` makes every log record redacted at creation (a log record factory, so it holds for
  every handler: pytest's captured logs, live logs, JUnit's system-out) and adds `RedactingFilter`
  to the root logger's handlers;
- `redact(text)` replaces every registered value by `***`, and also every run of 8 or more characters
  that is part of a registered credential (`FRAGMENT`): pytest shortens long reprs (`token='sha256~abc...'`),
  a log line may cut a value, so whole values alone are not enough;
- `redact_file(path)` / `redact_tree(dir)` rewrite evidence files (JUnit XML, allure results and
  attachments, logs) in place.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Iterable

import yaml

MASK = "***"
MIN_LENGTH = 6                 # shorter values would redact ordinary words
FRAGMENT = 8                   # this many characters of a credential, anywhere, are redacted
MAX_FILE_BYTES = 64 * 1024 * 1024
# Secret keys whose values are public or plain words (a service-account Secret's namespace, CA and
# serving certificates): not credentials, and redacting them (or their fragments) would blank ordinary text.
PLAIN_KEYS = frozenset({"namespace", "ca.crt", "service-ca.crt", "tls.crt", "ca-bundle.crt"})
# JSON members holding a credential (docker config Secrets: .dockercfg, .dockerconfigjson)
CREDENTIAL_MEMBERS = frozenset({"auth", "password", "identitytoken", "registrytoken", "token"})

_lock = threading.Lock()
_secrets: set[str] = set()
_sorted: list[str] = []        # longest first
_grams: set[str] = set()       # every FRAGMENT-long substring of every credential (and its base64 forms)
_byte_grams: set[bytes] = set()
_runs: re.Pattern | None = None        # runs of FRAGMENT or more characters that credentials are made of
_byte_runs: re.Pattern | None = None


def register(value, *, encodings: bool = True, fragments: bool = True) -> None:
    """Remember a secret value (str or bytes); also its base64 forms when `encodings`. With `fragments`
    every FRAGMENT characters of it are redacted too, wherever they appear (see `fragment_pieces`)."""
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
    grams = set()
    if fragments:
        pieces = fragment_pieces(value)
        if encodings and pieces == [value]:
            pieces += [f for f in forms if f != value]
        for piece in pieces:
            grams.update(piece[i:i + FRAGMENT] for i in range(len(piece) - FRAGMENT + 1))
    global _sorted
    with _lock:
        new = forms - _secrets
        if not new and grams <= _grams:
            return
        _secrets.update(f for f in new if len(f) >= MIN_LENGTH)
        _sorted = sorted(_secrets, key=len, reverse=True)
        if not grams <= _grams:
            _add_grams(grams)


def fragment_pieces(value: str) -> list[str]:
    """The parts of a credential whose fragments are redacted: the value itself when it is one opaque
    word (a token, a key, a password); the base64 lines of a PEM private key; none for a certificate,
    a text with spaces or a JSON document (its credential members are registered on their own)."""
    if "-----BEGIN" in value:
        if "PRIVATE KEY" not in value:
            return []
        return [ln.strip() for ln in value.splitlines()
                if len(ln.strip()) >= FRAGMENT and not ln.startswith("-----") and ":" not in ln]
    if any(c.isspace() for c in value) or value.startswith(("{", "[")) or len(value) < FRAGMENT:
        return []
    return [value]


def _add_grams(grams: set[str]) -> None:
    """Add to the fragment index (the caller holds _lock)."""
    global _runs, _byte_runs
    _grams.update(grams)
    _byte_grams.update(g.encode() for g in grams)
    chars = sorted({c for g in _grams for c in g})
    _runs = re.compile("[" + "".join(re.escape(c) for c in chars) + "]{%d,}" % FRAGMENT)
    byte_chars = sorted({b for g in _byte_grams for b in g})
    _byte_runs = re.compile(b"[" + b"".join(re.escape(bytes([b])) for b in byte_chars) + b"]{%d,}" % FRAGMENT)


def register_all(values: Iterable) -> None:
    for v in values:
        register(v)


def secrets() -> list[str]:
    """The registered values (for scans in selftests)."""
    return list(_sorted)


def clear() -> None:
    global _sorted, _runs, _byte_runs
    with _lock:
        _secrets.clear()
        _sorted = []
        _grams.clear()
        _byte_grams.clear()
        _runs = _byte_runs = None


def redact(text):
    """`text` with every registered secret, and every fragment of a credential, replaced by `***` (str or
    bytes in, same type out)."""
    if not _sorted or text is None:
        return text
    if isinstance(text, bytes):
        out = text
        for s in _sorted:
            if s.encode() in out:
                out = out.replace(s.encode(), MASK.encode())
        return _mask_fragments(out, _byte_runs, _byte_grams, MASK.encode())
    if not isinstance(text, str):
        text = str(text)
    for s in _sorted:
        if s in text:
            text = text.replace(s, MASK)
    return _mask_fragments(text, _runs, _grams, MASK)


def _fragment_spans(text, runs: re.Pattern | None, grams: set):
    """(start, end) of each stretch of `text` made of credential fragments, merged where they touch."""
    if runs is None:
        return
    for m in runs.finditer(text):
        run, base = m.group(), m.start()
        start = end = -1
        for i in range(len(run) - FRAGMENT + 1):
            if run[i:i + FRAGMENT] in grams:
                if start >= 0 and i <= end:
                    end = i + FRAGMENT
                else:
                    if start >= 0:
                        yield base + start, base + end
                    start, end = i, i + FRAGMENT
        if start >= 0:
            yield base + start, base + end


def _mask_fragments(text, runs, grams, mask):
    parts, last = [], 0
    for start, end in _fragment_spans(text, runs, grams):
        parts += [text[last:start], mask]
        last = end
    if not parts:
        return text
    parts.append(text[last:])
    return text[:0].join(parts)


def contains_secret(text) -> bool:
    if text is None:
        return False
    if isinstance(text, bytes):
        return any(s.encode() in text for s in _sorted) or \
            next(_fragment_spans(text, _byte_runs, _byte_grams), None) is not None
    text = str(text)
    return any(s in text for s in _sorted) or next(_fragment_spans(text, _runs, _grams), None) is not None


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
    for k, v in data.items():
        if not v or str(k) in PLAIN_KEYS:
            continue
        if encoded:
            try:
                plain = base64.b64decode(v)
            except Exception:  # noqa: BLE001 - not base64 after all
                plain = None
            if plain is not None:
                register(plain)
                _register_members(plain)
        register(v)
        if not encoded:
            _register_members(v)


def _register_members(document) -> None:
    """The credentials inside a JSON Secret value (a docker config's auth, password, token...): the
    document is redacted whole, these also by fragment."""
    try:
        data = json.loads(document)
    except (TypeError, ValueError):
        return
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(v, str) and k.lower() in CREDENTIAL_MEMBERS:
                    register(v)
                    if k.lower() == "auth":         # base64 of "user:password"
                        try:
                            register(base64.b64decode(v).decode().partition(":")[2])
                        except Exception:  # noqa: BLE001 - not base64: registered as it is
                            pass
                else:
                    stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)


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


class RedactingStream:
    """A text stream (the terminal: sys.stdout, sys.stderr) that redacts what passes through it. Text is
    held back until a line ends or the stream is flushed, so that a credential written in pieces is
    still seen whole; everything else is the wrapped stream's (isatty, fileno, encoding...)."""

    HOLD_AT_MOST = 64 * 1024

    def __init__(self, stream):
        self._stream = stream
        self._pending = ""
        self._plock = threading.RLock()

    def write(self, text) -> int:
        with self._plock:
            self._pending += text
            cut = self._pending.rfind("\n") + 1
            if not cut and len(self._pending) > self.HOLD_AT_MOST:
                cut = len(self._pending)
            if cut:
                done, self._pending = self._pending[:cut], self._pending[cut:]
                self._stream.write(redact(done))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._plock:
            if self._pending:
                self._stream.write(redact(self._pending))
                self._pending = ""
            self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def redact_terminal() -> None:
    """sys.stdout and sys.stderr from now on redacted (pytest's terminal reporter writes to the
    sys.stdout it finds when it is configured; exit messages go to sys.stderr)."""
    import sys
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, RedactingStream):
            setattr(sys, name, RedactingStream(stream))


_installed = False


def install() -> None:
    """Redact every log record and the terminal from now on, and learn the Secrets the suite touches
    (idempotent)."""
    global _installed
    if _installed:
        return
    redact_terminal()
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

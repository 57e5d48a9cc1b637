"""Fault injection for the API server ("the local cluster misbehaves on purpose").

The configuration is read at request time, so it can change while the cluster runs:

- `errorRate`: fraction of non-watch requests answered with an error instead of being served, chosen
  uniformly from `errorCodes` (default 429, 500, 503) with kube-apiserver's Status bodies; 429 carries
  `Retry-After` (`retryAfterSeconds`, default 1) as API Priority and Fairness sends it.
- `latency`: seconds added to every request before it is served (watches included).
- `watchDropRate`: fraction of watches the server closes early, after a random time in
  [`watchDropMinSeconds`, `watchDropMaxSeconds`] (default 0.1-1.0 s); the stream simply ends, as when
  kube-apiserver closes a watch, and a client must re-watch from its last resourceVersion.
- `conflictRate`: fraction of updates and patches (PUT/PATCH, subresources included) of existing
  objects answered `409 Conflict` ("the object has been modified ...") without writing anything. Only
  writes whose body names `metadata.resourceVersion` are chosen, as only those can meet a conflict on
  kube-apiserver: an update without one is unconditional, and a patch without one is retried there.
- `seed`: seeds the random generator (one generator for all decisions, so a client making requests one
  after another sees the same sequence of faults for the same seed).

Requests carrying the header `X-Localcluster-Component` (sent by `localcluster.client.KubeClient`, i.e.
the local cluster's own controllers, and by the registry pods' front) are exempt: only the suite's
requests see faults. The initial values come from `Settings` (`api_error_rate`, `api_latency`,
`api_watch_drop_rate`, `api_conflict_rate`, `api_chaos_seed`); admins change them at run time with
`PUT /localcluster/chaos` (replace; absent keys take their defaults; counters restart at 0) or `PATCH /localcluster/chaos`
(merge), and read them with `GET /localcluster/chaos` (the answer also counts injected faults).
"""
from __future__ import annotations

import json
import random
import threading

from .errors import APIError

COMPONENT_HEADER = "X-Localcluster-Component"
CHAOS_PATH = "/localcluster/chaos"

DEFAULTS = {
    "errorRate": 0.0,
    "errorCodes": [429, 500, 503],
    "retryAfterSeconds": 1,
    "latency": 0.0,
    "watchDropRate": 0.0,
    "watchDropMinSeconds": 0.1,
    "watchDropMaxSeconds": 1.0,
    "conflictRate": 0.0,
    "seed": 0,
}
_RATES = ("errorRate", "watchDropRate", "conflictRate")
_SECONDS = ("latency", "watchDropMinSeconds", "watchDropMaxSeconds")
_CODES = (429, 500, 503)


def _bad(message):
    return APIError(400, "BadRequest", message)


def validate(config: dict) -> dict:
    """A complete, checked configuration from `config` (unknown keys and bad values: 400)."""
    if not isinstance(config, dict):
        raise _bad("the chaos configuration must be a JSON object")
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise _bad(f"unknown chaos settings: {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    out = json.loads(json.dumps(DEFAULTS))
    for k, v in config.items():
        if v is None:
            continue
        if k in _RATES:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise _bad(f"{k} must be a number between 0 and 1, got {json.dumps(v)}")
            v = float(v)
        elif k in _SECONDS:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise _bad(f"{k} must be a number of seconds >= 0, got {json.dumps(v)}")
            v = float(v)
        elif k == "errorCodes":
            if not isinstance(v, list) or not v or any(c not in _CODES for c in v):
                raise _bad(f"errorCodes must be a non-empty list of {list(_CODES)}, got {json.dumps(v)}")
        elif k in ("retryAfterSeconds", "seed"):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise _bad(f"{k} must be an integer >= 0, got {json.dumps(v)}")
        out[k] = v
    if out["watchDropMaxSeconds"] < out["watchDropMinSeconds"]:
        raise _bad("watchDropMaxSeconds must be >= watchDropMinSeconds")
    return out


class Chaos:
    """The fault configuration and its random generator (thread-safe decisions)."""

    def __init__(self, config: dict | None = None):
        self._lock = threading.Lock()
        self.counts = {"errors": 0, "conflicts": 0, "watchDrops": 0, "delayed": 0}
        self.config = validate(config or {})
        self._rng = random.Random(self.config["seed"])

    @classmethod
    def from_settings(cls, settings) -> "Chaos":
        g = lambda name, default: getattr(settings, name, default) if settings is not None else default  # noqa: E731
        return cls({
            "errorRate": float(g("api_error_rate", 0.0) or 0.0),
            "latency": float(g("api_latency", 0.0) or 0.0),
            "watchDropRate": float(g("api_watch_drop_rate", 0.0) or 0.0),
            "conflictRate": float(g("api_conflict_rate", 0.0) or 0.0),
            "seed": int(g("api_chaos_seed", 0) or 0),
        })

    # ---------------------------------------------------------------- configuration
    def replace(self, config: dict) -> dict:
        new = validate(config)
        with self._lock:
            self.config = new
            self._rng = random.Random(new["seed"])
            self.counts = dict.fromkeys(self.counts, 0)
        return self.describe()

    def merge(self, patch: dict) -> dict:
        if not isinstance(patch, dict):
            raise _bad("the chaos configuration must be a JSON object")
        merged = dict(self.config)
        merged.update({k: v for k, v in patch.items()})
        for k, v in patch.items():
            if v is None:
                merged[k] = DEFAULTS.get(k)
        new = validate(merged)
        with self._lock:
            self.config = new
            if "seed" in patch:
                self._rng = random.Random(new["seed"])
        return self.describe()

    def describe(self) -> dict:
        return {"kind": "LocalclusterChaos", "apiVersion": "localcluster/v1", "spec": dict(self.config),
                "status": {"injected": dict(self.counts)}}

    @property
    def active(self) -> bool:
        c = self.config
        return bool(c["errorRate"] or c["latency"] or c["watchDropRate"] or c["conflictRate"])

    # ---------------------------------------------------------------- decisions
    def _hit(self, rate: float) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def latency(self) -> float:
        d = self.config["latency"]
        if d > 0:
            self.counts["delayed"] += 1
        return d

    def error(self) -> APIError | None:
        """An injected error for a non-watch request, or None."""
        c = self.config
        if not self._hit(c["errorRate"]):
            return None
        with self._lock:
            code = self._rng.choice(c["errorCodes"])
        self.counts["errors"] += 1
        if code == 429:
            return APIError(429, "TooManyRequests", "Too many requests, please try again later.",
                            {"retryAfterSeconds": c["retryAfterSeconds"]})
        if code == 503:
            return APIError(503, "ServiceUnavailable", "the server is currently unable to handle the request")
        why = "localcluster chaos: injected internal error"
        return APIError(500, "InternalError", f"Internal error occurred: {why}", {"causes": [{"message": why}]})

    def retry_after(self) -> int:
        return int(self.config["retryAfterSeconds"])

    def conflict(self) -> bool:
        if self._hit(self.config["conflictRate"]):
            self.counts["conflicts"] += 1
            return True
        return False

    def watch_drop_after(self) -> float | None:
        """Seconds after which to close a new watch early, or None to leave it alone."""
        c = self.config
        if not self._hit(c["watchDropRate"]):
            return None
        self.counts["watchDrops"] += 1
        with self._lock:
            return self._rng.uniform(c["watchDropMinSeconds"], c["watchDropMaxSeconds"])

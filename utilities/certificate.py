"""What a run leaves for people: the backend x check matrix and the certification record.

Plain code (the pytest plugin `fixtures/reporting.py` fills a `RunRecord`; a notebook can `load` one):

- `reports/<run>/results.json`: the record (cluster, who, when, suite version, every check's outcome
  and duration, the procedure's steps and their durations, the restore verdict);
- `reports/<run>/matrix.md` / `matrix.html`: checks x backends, each cell passed / failed / skipped / n/a
  (the check does not apply, or the cluster lacks the backend's prerequisites: fixtures/verdicts.py) with
  the reason one line (markdown: a numbered note under the table) or one click (HTML) away;
- `reports/<run>/certificate.md` / `.html`: one page for a certification ticket.
"""
from __future__ import annotations

import dataclasses
import datetime
import html
import json
import os
import subprocess
from pathlib import Path

from utilities import redact

# The suite's version when `git describe` cannot tell (an installed copy, the container image).
SUITE_VERSION = "0.11.0"
RESULTS_FILE = "results.json"
NO_BACKEND = "-"           # checks that are not crossed with a storage backend

# Marks every common font has (DejaVu included), so the pages read the same everywhere.
NOT_APPLICABLE = "n/a"
OUTCOME_MARK = {"passed": "✓", "failed": "✗", "error": "✗", "skipped": "–", NOT_APPLICABLE: "○", "xfailed": "!",
                "xpassed": "!", "not run": "·"}
BAD = ("failed", "error")


@dataclasses.dataclass
class CheckResult:
    nodeid: str
    check: str                    # the test function, e.g. test_rollout_completes
    backend: str                  # backend id, or NO_BACKEND
    outcome: str                  # passed, failed, error, skipped, n/a, xfailed, xpassed
    reason: str = ""              # one line: the failure's message or the skip's reason
    duration: float = 0.0         # setup + call + teardown, seconds
    description: str = ""         # the check's expectation (its docstring's first line)


@dataclasses.dataclass
class RunRecord:
    run_id: str
    started: str                  # ISO 8601, UTC
    finished: str = ""
    suite_version: str = SUITE_VERSION
    ran_by: str = ""              # local user@host
    cluster: dict = dataclasses.field(default_factory=dict)   # api_url, openshift_version, platform, ...
    selected_backends: list = dataclasses.field(default_factory=list)
    results: list = dataclasses.field(default_factory=list)   # CheckResult
    steps: list = dataclasses.field(default_factory=list)     # {"name", "backend", "check", "duration", "status"}
    restore: dict = dataclasses.field(default_factory=dict)   # {"verdict", "detail"}
    exitstatus: int | None = None
    stopped: str = ""             # why the run stopped early (a preflight check, the lock, Ctrl-C)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "RunRecord":
        d = dict(d)
        d["results"] = [CheckResult(**r) for r in d.get("results") or []]
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def suite_version(root: Path | None = None) -> str:
    """`git describe --always --dirty --tags` of the suite's checkout; $SUITE_VERSION or SUITE_VERSION else."""
    if os.environ.get("SUITE_VERSION"):
        return os.environ["SUITE_VERSION"]
    root = root or Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return f"{SUITE_VERSION}+git.{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return SUITE_VERSION


def cluster_facts(cluster) -> dict:
    """API URL, OpenShift version, platform and infrastructure name as the cluster states them
    (ClusterVersion `version`, Infrastructure `cluster`), and the user; "unknown" where unreadable."""
    facts = {"api_url": getattr(cluster, "server", "") or "unknown", "openshift_version": "unknown",
             "platform": "unknown", "infrastructure_name": "unknown", "user": "unknown",
             "local": bool(getattr(cluster, "embedded", False)),
             # which cluster, in words (fixtures/cluster.py: --kubeconfig, KUBECONFIG or the local one)
             "source": (getattr(cluster, "info", None) or {}).get("cluster_source", "")}
    try:
        cv = cluster.get_cluster_object(("config.openshift.io", "v1", "clusterversions"), "version") or {}
        st = cv.get("status") or {}
        done = [h for h in st.get("history") or [] if h.get("state") == "Completed"]
        facts["openshift_version"] = (done[0]["version"] if done else None) or \
            (st.get("desired") or {}).get("version") or "unknown"
        facts["cluster_id"] = (cv.get("spec") or {}).get("clusterID", "")
    except Exception:  # noqa: BLE001 - a record with "unknown" is better than none
        pass
    try:
        infra = cluster.get_cluster_object(("config.openshift.io", "v1", "infrastructures"), "cluster") or {}
        st = infra.get("status") or {}
        facts["platform"] = (st.get("platformStatus") or {}).get("type") or st.get("platform") or "unknown"
        facts["infrastructure_name"] = st.get("infrastructureName") or "unknown"
    except Exception:  # noqa: BLE001
        pass
    try:
        from utilities import preflight
        facts["user"] = preflight.whoami(cluster)
    except Exception:  # noqa: BLE001
        pass
    return facts


def restore_verdict(run_dir: Path, teardown_errors: list[str] = ()) -> dict:
    """From the run's snapshot and final spec (utilities/snapshot.py) and the guard's failures."""
    from utilities.registry_steps import spec_diff
    run_dir = Path(run_dir)
    snap_p, final_p = run_dir / "config-snapshot.json", run_dir / "config-final.json"
    problems = [e for e in teardown_errors if "configuration left changed" in e or "not restored" in e
                or "did not come back" in e]
    if not snap_p.exists():
        return {"verdict": "not needed", "detail": "the run changed nothing (no snapshot was taken)"}
    if not final_p.exists():
        return {"verdict": "NOT RESTORED", "detail": "the restore did not run to its end; restore with "
                f"`python -m utilities restore --run-dir={run_dir}`" + (f": {problems[0]}" if problems else "")}
    try:
        before = json.loads(snap_p.read_text())["spec"]
        after = json.loads(final_p.read_text())["spec"]
    except (OSError, ValueError, KeyError) as e:
        return {"verdict": "unknown", "detail": f"cannot read the snapshot or the final spec: {e}"}
    diff = spec_diff(before, after)
    if diff or problems:
        return {"verdict": "NOT RESTORED", "detail": "; ".join(problems or ["configuration left changed: "
                                                                             + "; ".join(diff)])}
    return {"verdict": "restored", "detail": "the Config spec is back exactly as it was before the run"}


# --- the matrix -----------------------------------------------------------------------------------
def backends_of(rec: RunRecord) -> list[str]:
    seen = [b for b in rec.selected_backends]
    for r in rec.results:
        if r.backend != NO_BACKEND and r.backend not in seen:
            seen.append(r.backend)
    return seen


def checks_of(rec: RunRecord, crossed: bool = True) -> list[str]:
    out = []
    for r in rec.results:
        if (r.backend != NO_BACKEND) == crossed and r.check not in out:
            out.append(r.check)
    return out


def cell(rec: RunRecord, check: str, backend: str) -> CheckResult | None:
    found = [r for r in rec.results if r.check == check and r.backend == backend]
    if not found:
        return None
    found.sort(key=lambda r: (r.outcome not in BAD, r.outcome != "skipped"))
    return found[0]


def backend_verdicts(rec: RunRecord) -> dict[str, tuple[bool | None, str]]:
    """backend -> (certified, why). Certified (True): no check failed and at least one passed; None (n/a):
    nothing failed or was skipped, and every check ran was n/a; else False."""
    out = {}
    for b in backends_of(rec):
        rs = [r for r in rec.results if r.backend == b]
        bad = [r for r in rs if r.outcome in BAD]
        passed = [r for r in rs if r.outcome == "passed"]
        skipped = [r for r in rs if r.outcome == "skipped"]
        na = [r for r in rs if r.outcome == NOT_APPLICABLE]
        if not rs:
            out[b] = (False, "not run (deselected)")
        elif bad:
            first = bad[0]
            out[b] = (False, f"{len(bad)} check(s) failed; first: {first.check}: {first.reason}")
        elif not passed:
            first = (skipped or na or [None])[0]
            out[b] = (None if first is not None and not skipped else False,
                      f"{first.outcome}: {first.reason}" if first else "no check ran")
        else:
            out[b] = (True, ", ".join([f"{len(passed)} check(s) passed"] +
                                      ([f"{len(na)} not applicable"] if na else []) +
                                      ([f"{len(skipped)} skipped"] if skipped else [])))
    return out


def certified_text(ok: bool | None) -> str:
    """The certificate's "certified" cell: yes, no, or n/a (`backend_verdicts`' None)."""
    return "✓ yes" if ok else ("✗ no" if ok is False else f"{OUTCOME_MARK[NOT_APPLICABLE]} n/a")


def backend_durations(rec: RunRecord) -> dict[str, float]:
    out: dict[str, float] = {}
    for r in rec.results:
        out[r.backend] = out.get(r.backend, 0.0) + r.duration
    return out


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def matrix_md(rec: RunRecord) -> str:
    backends, checks = backends_of(rec), checks_of(rec)
    notes: list[str] = []
    lines = []
    if checks:
        lines += ["| check | " + " | ".join(backends) + " |", "|---|" + "---|" * len(backends)]
        for c in checks:
            row = [f"`{c}`"]
            for b in backends:
                r = cell(rec, c, b)
                if r is None:
                    row.append(f"{OUTCOME_MARK['not run']} not run")
                    continue
                text = f"{OUTCOME_MARK.get(r.outcome, '?')} {r.outcome}"
                if r.reason and r.outcome != "passed":
                    notes.append(f"{len(notes) + 1}. **{b} / {c}** ({r.outcome}): {_one_line(r.reason)}")
                    text += f" [{len(notes)}]"
                row.append(text)
            lines.append("| " + " | ".join(row) + " |")
    others = [r for r in rec.results if r.backend == NO_BACKEND]
    if others:
        lines += ["", "Checks of the procedure not crossed with a backend:", "",
                  "| check | outcome |", "|---|---|"]
        for r in others:
            text = f"{OUTCOME_MARK.get(r.outcome, '?')} {r.outcome}"
            if r.reason and r.outcome != "passed":
                notes.append(f"{len(notes) + 1}. **{r.check}** ({r.outcome}): {_one_line(r.reason)}")
                text += f" [{len(notes)}]"
            lines.append(f"| `{r.nodeid.split('::')[-1]}` | {text} |")
    if not lines:
        lines = ["No check ran."]
    if notes:
        lines += ["", "Reasons:", ""] + notes
    return "\n".join(lines) + "\n"


def _cell_html(r: CheckResult | None) -> str:
    if r is None:
        return '<td class="notrun">· not run</td>'
    mark = OUTCOME_MARK.get(r.outcome, "?")
    cls = "bad" if r.outcome in BAD else ("na" if r.outcome == NOT_APPLICABLE else r.outcome)
    if r.outcome == "passed" or not r.reason:
        return f'<td class="{cls}" title="{html.escape(r.nodeid)}">{mark} {r.outcome}</td>'
    return (f'<td class="{cls}"><details><summary>{mark} {r.outcome}</summary>'
            f'<div class="reason">{html.escape(r.reason)}</div></details></td>')


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.35em .6em;vertical-align:top;text-align:left}th{background:#f3f3f3}
.passed{background:#e6f4ea}.bad{background:#fce8e6}.skipped{background:#f1f3f4}.na{color:#5f6368}.notrun{color:#999}
.reason{max-width:40em;white-space:pre-wrap;font-size:.9em}summary{cursor:pointer}code{font-size:.95em}
.verdict-ok{color:#137333;font-weight:bold}.verdict-bad{color:#c5221f;font-weight:bold}"""


def matrix_html_table(rec: RunRecord) -> str:
    backends, checks = backends_of(rec), checks_of(rec)
    out = []
    if checks:
        out.append('<table class="matrix"><tr><th>check</th>' +
                   "".join(f"<th>{html.escape(b)}</th>" for b in backends) + "</tr>")
        for c in checks:
            out.append(f"<tr><th><code>{html.escape(c)}</code></th>" +
                       "".join(_cell_html(cell(rec, c, b)) for b in backends) + "</tr>")
        out.append("</table>")
    others = [r for r in rec.results if r.backend == NO_BACKEND]
    if others:
        out.append("<p>Checks of the procedure not crossed with a backend:</p><table><tr><th>check</th>"
                   "<th>outcome</th></tr>")
        for r in others:
            out.append(f"<tr><th><code>{html.escape(r.nodeid.split('::')[-1])}</code></th>{_cell_html(r)}</tr>")
        out.append("</table>")
    return "\n".join(out) or "<p>No check ran.</p>"


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def matrix_html(rec: RunRecord) -> str:
    return _page(f"Registry conformance matrix, run {rec.run_id}", matrix_html_table(rec))


def _summary_rows(rec: RunRecord) -> list[tuple[str, str]]:
    c = rec.cluster or {}
    counts: dict[str, int] = {}
    for r in rec.results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    stand_in = " (as the local stand-in cluster emulates it)" if c.get("local") else ""
    return [
        ("Cluster", c.get("source") or ("the embedded local stand-in cluster, not a real cluster" if c.get("local")
                                        else "a kubeconfig's cluster (not connected)")),
        ("Cluster API URL", c.get("api_url", "unknown")),
        ("OpenShift version", c.get("openshift_version", "unknown") + stand_in),
        ("Platform", c.get("platform", "unknown") + stand_in),
        ("Infrastructure name", c.get("infrastructure_name", "unknown")),
        ("Run by", f"{rec.ran_by} (cluster user {c.get('user', 'unknown')})"),
        ("Started / finished (UTC)", f"{rec.started} / {rec.finished or 'unfinished'}"),
        ("Suite version", rec.suite_version),
        ("Run id", rec.run_id),
        ("Outcomes", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no check ran"),
        ("Exit status", f"{rec.exitstatus}" + (f" (stopped: {rec.stopped})" if rec.stopped else "")),
        ("Restore", f"{(rec.restore or {}).get('verdict', 'unknown')}: {(rec.restore or {}).get('detail', '')}"),
    ]


STAND_IN_NOTICE = ("This run was against the embedded local stand-in cluster, not a real cluster: it shows the "
                   "suite works, it certifies no cluster's storage.")


def _backends_heading(rec: RunRecord) -> str:
    return "Backends" + (" (on the local stand-in cluster)" if (rec.cluster or {}).get("local") else "")


def certificate_md(rec: RunRecord) -> str:
    verdicts, durations = backend_verdicts(rec), backend_durations(rec)
    lines = [f"# Image registry storage certification: run {rec.run_id}", ""] + \
        ([f"**{STAND_IN_NOTICE}**", ""] if (rec.cluster or {}).get("local") else []) + \
        ["| | |", "|---|---|"] + [f"| {k} | {_one_line(v, 600)} |" for k, v in _summary_rows(rec)]
    lines += ["", "## " + _backends_heading(rec), "", "| backend | certified | why | time |", "|---|---|---|---|"]
    for b, (ok, why) in verdicts.items():
        lines.append(f"| {b} | {certified_text(ok)} | {_one_line(why)} | {durations.get(b, 0.0):.1f} s |")
    if NO_BACKEND in durations:
        lines.append(f"| (procedure checks) | | | {durations[NO_BACKEND]:.1f} s |")
    lines += ["", "## Matrix", "", matrix_md(rec)]
    return "\n".join(lines)


def certificate_html(rec: RunRecord) -> str:
    verdicts, durations = backend_verdicts(rec), backend_durations(rec)
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in _summary_rows(rec))
    verdict = (rec.restore or {}).get("verdict", "unknown")
    notice = f"<p><strong>{html.escape(STAND_IN_NOTICE)}</strong></p>" if (rec.cluster or {}).get("local") else ""
    body = [notice + f"<table>{rows}</table>",
            f'<p>Restore verdict: <span class="{"verdict-ok" if verdict in ("restored", "not needed") else "verdict-bad"}">'
            f"{html.escape(verdict)}</span></p>",
            f"<h2>{html.escape(_backends_heading(rec))}</h2><table><tr><th>backend</th><th>certified</th><th>why</th><th>time</th></tr>"]
    for b, (ok, why) in verdicts.items():
        cls = "passed" if ok else ("bad" if ok is False else "na")
        body.append(f'<tr><th>{html.escape(b)}</th><td class="{cls}">{certified_text(ok)}</td>'
                    f'<td class="reason">{html.escape(why)}</td><td>{durations.get(b, 0.0):.1f} s</td></tr>')
    body.append("</table><h2>Matrix</h2>" + matrix_html_table(rec))
    return _page(f"Image registry storage certification: run {rec.run_id}", "\n".join(body))


def write(run_dir: Path, rec: RunRecord) -> list[Path]:
    """results.json, matrix.md/.html, certificate.md/.html in `run_dir`."""
    run_dir = Path(run_dir)
    files = {RESULTS_FILE: json.dumps(rec.to_json(), indent=2, sort_keys=True) + "\n",
             "matrix.md": f"# Registry conformance matrix, run {rec.run_id}\n\n" + matrix_md(rec),
             "matrix.html": matrix_html(rec),
             "certificate.md": certificate_md(rec),
             "certificate.html": certificate_html(rec)}
    out = []
    for name, text in files.items():
        p = run_dir / name
        tmp = p.with_name(f".{name}.tmp")
        tmp.write_text(redact.redact(text), encoding="utf-8")     # reasons quote failures
        os.replace(tmp, p)
        out.append(p)
    return out


def load(run_dir: Path) -> RunRecord:
    return RunRecord.from_json(json.loads((Path(run_dir) / RESULTS_FILE).read_text()))


def load_runs(reports_root: Path) -> list[RunRecord]:
    """Every run under reports_root that left a results.json, oldest first."""
    runs = []
    for d in sorted(Path(reports_root).iterdir()) if Path(reports_root).is_dir() else []:
        if d.is_dir() and not d.is_symlink() and (d / RESULTS_FILE).exists():
            try:
                runs.append(load(d))
            except (OSError, ValueError, TypeError):
                continue
    return sorted(runs, key=lambda r: r.started)

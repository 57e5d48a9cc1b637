"""Recovery commands for a cluster the suite ran on.

    python -m utilities restore   --kubeconfig=PATH [--run-dir=DIR | --run-id=ID] [--force] [--break-lock]
    python -m utilities leftovers --kubeconfig=PATH
    python -m utilities sweep     --kubeconfig=PATH [--run-id=ID] [--dry-run]
    python -m utilities unlock    --kubeconfig=PATH [--force]

Without --kubeconfig, KUBECONFIG is used, as by oc (utilities/kubeconfig.py).
Exit statuses: README.md, "Exit statuses" (utilities/preflight.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from utilities import kubeconfig as kubeconfigs
from utilities import preflight, redact
from utilities import snapshot as snapshots
from utilities.leftovers import delete_leftovers, find_leftovers, summary
from utilities.lock import ClusterLock, LockHeld, break_lock, read_lock

ROOT = Path(__file__).resolve().parent.parent


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(preflight.EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m utilities", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sp):
        sp.add_argument("--kubeconfig", default=None,
                        help="kubeconfig of the cluster (default: KUBECONFIG, a list merged as oc merges it)")
        sp.add_argument("--context", default=None, help="kubeconfig context (default: the current one)")
        sp.add_argument("-v", "--verbose", action="store_true")
        sp.add_argument("--run-namespace", default=None, metavar="NAME",
                        help="the runs used --run-namespace=NAME: the rights checked are such a run's, and "
                             "leftovers are looked for where such runs make objects (restore: read from the "
                             "run's snapshot when not given)")

    r = sub.add_parser("restore", help="put back the Config a run snapshotted, delete what it created")
    common(r)
    r.add_argument("--run-dir", default=None, help="the run's report directory (default: reports/latest)")
    r.add_argument("--run-id", default=None, help="the run's id: --reports-dir/<id>")
    r.add_argument("--reports-dir", default=str(ROOT / "reports"))
    r.add_argument("--force", action="store_true",
                   help="restore even if someone else changed the Config since the run last knew it")
    r.add_argument("--break-lock", action="store_true", help="take over a stale lock of another run")
    r.add_argument("--timeout", type=float, default=300.0, help="how long to wait for the registry (s)")
    r.add_argument("--no-wait", action="store_true", help="do not wait for the registry to settle")

    lo = sub.add_parser("leftovers", help="list objects earlier runs left behind")
    common(lo)

    s = sub.add_parser("sweep", help="delete objects earlier runs left behind")
    common(s)
    s.add_argument("--run-id", default=None, help="only that run's objects")
    s.add_argument("--dry-run", action="store_true")

    u = sub.add_parser("unlock", help="break a stale cluster lock")
    common(u)
    u.add_argument("--force", action="store_true", help="break it even if it is not stale")

    ri = sub.add_parser("rights", help="the rights a run needs (utilities/rights.py); no cluster needed")
    ri.add_argument("--yaml", action="store_true", help="print them as a ClusterRole (+ binding) to apply")
    ri.add_argument("--readonly", action="store_true", help="only what a run without --allow-destructive needs")
    ri.add_argument("--user", default=None, help="with --yaml: bind the role to this user")
    ri.add_argument("--group", default=None, help="with --yaml: bind the role to this group")
    ri.add_argument("--run-namespace", default=None, metavar="NAME",
                    help="the rights of a run with --run-namespace=NAME (namespaced there; no namespace "
                         "create/delete); --yaml then renders deploy/'s Roles and ClusterRole for it")
    return p


def cmd_rights(args) -> int:
    import yaml
    from utilities import rights
    if not args.yaml:
        print(rights.describe(rights.needed(not args.readonly, args.run_namespace)))
        return 0
    subject = {"kind": "User", "name": args.user} if args.user else \
        {"kind": "Group", "name": args.group} if args.group else None
    docs = (rights.least_privilege(args.run_namespace, not args.readonly, subject=subject) if args.run_namespace
            else rights.cluster_role(destructive=not args.readonly, subject=subject))
    print(yaml.safe_dump_all(docs, sort_keys=False), end="")
    return 0


def _fail(code: int, message: str) -> int:
    print(f"error: {redact.redact(message)}", file=sys.stderr)
    return code


def _run_dir(args) -> Path:
    if args.run_dir:
        return Path(args.run_dir)
    reports = Path(args.reports_dir)
    return reports / args.run_id if args.run_id else reports / "latest"


def cmd_restore(args, cluster) -> int:
    run_dir = _run_dir(args).resolve()
    try:
        snap = snapshots.load_snapshot(run_dir)
    except snapshots.SnapshotMissing as e:
        return _fail(preflight.EXIT_NO_SNAPSHOT, f"{e}; give the run's directory with --run-dir=DIR "
                     "(reports/<run-id>/ holds config-snapshot.json)")
    run_id = snap.get("run_id") or run_dir.name
    lock = ClusterLock(cluster, run_id, run_dir=run_dir)
    try:
        lock.acquire(break_stale=args.break_lock, take_over_run=True)
    except LockHeld as e:
        return _fail(preflight.EXIT_LOCKED, f"another run holds the cluster lock: {e.info.describe()}; wait for it, "
                     "or if it is dead: --break-lock (once stale) or `python -m utilities unlock --force`")
    try:
        try:
            result = snapshots.restore(cluster, run_dir, force=args.force, timeout=args.timeout,
                                       wait=not args.no_wait)
        except snapshots.RestoreRefused as e:
            return _fail(preflight.EXIT_CHANGED, f"not restored: {e}; restore anyway with --force")
    finally:
        lock.release()
        redact.redact_tree(run_dir, skip=[snapshots.SNAPSHOT_FILE, snapshots.JOURNAL_FILE,
                                          "localcluster/localcluster-state"])
    if result.problems:
        return _fail(preflight.EXIT_NOT_RESTORED, "; ".join(result.problems))
    what = "put back the original Config spec" if result.wrote else "the Config spec was already the original"
    deleted = f"; deleted {', '.join(result.deleted)}" if result.deleted else ""
    print(f"restored from {run_dir}: {what}{deleted}; the registry is back")
    return 0


def cmd_leftovers(args, cluster) -> int:
    found = find_leftovers(cluster, run_namespace=args.run_namespace)
    for lo in found:
        print(lo)
    info = read_lock(cluster)
    if info is not None:
        print(f"lock: {info.describe()}")
    print(summary(found) if found else "no leftovers")
    return 0


def cmd_sweep(args, cluster) -> int:
    info = read_lock(cluster)
    live_run = info.run_id if info is not None and not info.stale else None
    if args.run_id and live_run and args.run_id == live_run:
        return _fail(preflight.EXIT_LOCKED, f"run {live_run} is running ({info.describe()}); not sweeping it")
    found = find_leftovers(cluster, run_id=args.run_id, exclude_run=live_run, run_namespace=args.run_namespace)
    if not found:
        print("no leftovers")
        return 0
    if args.dry_run:
        for lo in found:
            print(f"would delete {lo}")
        return 0
    for d in delete_leftovers(cluster, found):
        print(f"deleted {d}")
    if live_run:
        print(f"(kept the objects of the running run {live_run})")
    return 0


def cmd_unlock(args, cluster) -> int:
    try:
        info = break_lock(cluster, force=args.force)
    except LockHeld as e:
        return _fail(preflight.EXIT_LOCKED, f"the lock is live: {e.info.describe()}; not broken (use --force "
                     "only if that run is dead)")
    print("no lock" if info is None else f"lock broken: it was {info.describe()}")
    return 0


COMMANDS = {"restore": cmd_restore, "leftovers": cmd_leftovers, "sweep": cmd_sweep, "unlock": cmd_unlock}


def _snapshot_run_namespace(args) -> str | None:
    """The --run-namespace of the run to restore (its snapshot says), so its rights are the ones checked."""
    try:
        return snapshots.load_snapshot(_run_dir(args)).get("run_namespace")
    except Exception:       # noqa: BLE001 - no snapshot: cmd_restore says so after the preflight
        return None


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "rights":
        return cmd_rights(args)
    redact.install()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # as oc: --kubeconfig, else KUBECONFIG
    source = dataclasses.replace(kubeconfigs.choose(args.kubeconfig, os.environ), suite=False)
    if not source.real:
        return _fail(preflight.EXIT_USAGE, f"python -m utilities {args.command}: give --kubeconfig=PATH or set "
                     "KUBECONFIG: the cluster whose registry to act on")
    args.kubeconfig = source.value
    for path in kubeconfigs.paths(args.kubeconfig):
        redact.register_kubeconfig(path)
    destructive = args.command != "leftovers"
    if args.command == "restore" and not args.run_namespace:
        args.run_namespace = _snapshot_run_namespace(args)
    try:
        cluster = preflight.run(args.kubeconfig, args.context, destructive=destructive, source=source,
                                run_namespace=args.run_namespace)
    except preflight.PreflightError as e:
        return _fail(e.code, e.message)
    redact.register(cluster.token)
    try:
        return COMMANDS[args.command](args, cluster)
    finally:
        cluster.api_client.close()


if __name__ == "__main__":
    sys.exit(main())

"""`python -m localcluster serve --kubeconfig PATH`: run a local OpenShift vSphere cluster in the foreground.

The kubeconfig (and PATH.info.json, with the router's address) is written once the cluster is ready;
SIGTERM or Ctrl-C stops every process the cluster started and removes both files.
"""
from __future__ import annotations

import argparse
import dataclasses
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from localcluster import suite_command
from localcluster.settings import Settings


def _version(value: str) -> str:
    from localcluster.settings import version_tuple
    try:
        version_tuple(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m localcluster",
                                description="A local stand-in for an OpenShift vSphere cluster.")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the cluster in the foreground")
    serve.add_argument("--kubeconfig", required=True, type=Path,
                       help="where to write the kubeconfig once the cluster is ready")
    serve.add_argument("--state-dir", type=Path, default=None,
                       help="where volumes and pod files live (default: a new temporary directory)")
    vsan = serve.add_mutually_exclusive_group()
    vsan.add_argument("--vsan-file-services", dest="vsan_file_services", action="store_true", default=None,
                      help="thin-csi provisions ReadWriteMany volumes (default)")
    vsan.add_argument("--no-vsan-file-services", dest="vsan_file_services", action="store_false",
                      help="thin-csi refuses ReadWriteMany volumes, as vSphere without vSAN file services")
    odf = serve.add_mutually_exclusive_group()
    odf.add_argument("--odf", dest="odf", action="store_true", default=None,
                     help="run OpenShift Data Foundation: S3 servers, ODF storage classes, OBC provisioner (default)")
    odf.add_argument("--no-odf", dest="odf", action="store_false",
                     help="no OpenShift Data Foundation (no S3 servers)")
    serve.add_argument("--custom-default-certificate", action="store_true", default=None,
                       help="the default IngressController serves a custom certificate signed by a public CA "
                            "(its root only in <state-dir>/system-roots.pem, the stand-in for system roots)")
    serve.add_argument("--degraded-grace-seconds", type=float, default=None,
                       help="how long Available may be False before the operator reports Degraded")
    serve.add_argument("--openshift", default=None, metavar="VERSION", type=_version,
                       help="the OpenShift release the operator emulates (default 4.18; 4.12 ... 4.22, main)")
    serve.add_argument("--progress-deadline-seconds", type=float, default=None,
                       help="progressDeadlineSeconds of the registry Deployment (default: by --openshift, "
                            "60 up to 4.21, 120 from 4.22)")
    serve.add_argument("--odf-version", default=None, metavar="VERSION", type=_version,
                       help="the ODF release (default 4.18; 4.12 serves the RGW route as plain HTTP)")
    serve.add_argument("--provision-delay", type=float, default=None)
    serve.add_argument("--pod-start-delay", type=float, default=None)
    serve.add_argument("--probe-delay-scale", type=float, default=None,
                       help="readinessProbe initialDelaySeconds is scaled by this (default 0.03: the registry's "
                            "15 s become 0.45 s; 0: ready as soon as the probe answers)")
    serve.add_argument("--router-port", type=int, default=None, help="router port (default: a free one)")
    serve.add_argument("--api-port", type=int, default=None, help="API server port (default: a free one)")
    chaos = serve.add_argument_group("API server fault injection (the suite's requests only; "
                                     "changeable at run time through PUT /localcluster/chaos)")
    chaos.add_argument("--api-error-rate", type=float, default=None,
                       help="fraction of non-watch requests answered 429 (Retry-After), 500 or 503")
    chaos.add_argument("--api-latency", type=float, default=None, help="seconds added to every request")
    chaos.add_argument("--api-watch-drop-rate", type=float, default=None,
                       help="fraction of watches closed early after a short random time")
    chaos.add_argument("--api-conflict-rate", type=float, default=None,
                       help="fraction of updates and patches answered 409 Conflict")
    chaos.add_argument("--api-chaos-seed", type=int, default=None, help="seed of the fault injection")
    serve.add_argument("--must-gather", dest="must_gather", default=None, metavar="DIR",
                       help="serve the objects of this must-gather read-only (no controllers; writes "
                            "answered 405 MethodNotAllowed)")
    cp = serve.add_argument_group("control plane (localcluster/realcp/, localcluster/README.md)")
    cp.add_argument("--control-plane", dest="control_plane", choices=("builtin", "real"), default=None,
                    help="builtin: the project's API server and operator emulation (default); real: etcd, "
                         "kube-apiserver, kube-controller-manager, kube-scheduler and the real operator "
                         "(needs ../shared/bin, etcd and root)")
    serve.add_argument("--control-plane-rollout-seconds", type=float, default=None,
                       help="how long kube-apiserver, openshift-apiserver and openshift-controller-manager stay "
                            "Progressing after the image config's registry hostnames change (default 0.3)")
    serve.add_argument("--worker-nodes", type=int, default=None,
                       help="number of worker nodes (default 3; 1: a single-node cluster)")
    serve.add_argument("--log-level", default=os.environ.get("LOCALCLUSTER_LOG_LEVEL", "INFO"))
    return p


async def _serve(args) -> int:
    from localcluster.cluster import LocalCluster

    # Every serve flag is named after the Settings field it sets (None: not given, keep the default).
    fields = {f.name for f in dataclasses.fields(Settings)}
    settings = Settings.from_env(**{k: v for k, v in vars(args).items() if k in fields})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    started = time.monotonic()
    if settings.control_plane == "real":
        from localcluster.realcp import netns
        if not netns.is_inner():
            # Re-run inside a private network namespace; relay the suite's connections (netns.py).
            return await netns.serve_outer(list(args.argv), args.kubeconfig, stop)
        from localcluster.realcp.cluster import RealCluster
        cluster = RealCluster(settings)
    elif settings.control_plane != "builtin":
        logging.getLogger("localcluster").error(
            "unknown control plane %r: use builtin or real", settings.control_plane)
        return 2
    else:
        cluster = LocalCluster(settings)
    info_path = Path(str(args.kubeconfig) + ".info.json")
    try:
        start = asyncio.create_task(cluster.start())
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({start, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if start not in done:
            start.cancel()
            return 130
        start.result()
        cluster.write_kubeconfig(args.kubeconfig)
        logging.getLogger("localcluster").info(
            "ready in %.2f s: kubeconfig %s, API %s, router %s", time.monotonic() - started,
            args.kubeconfig, cluster.api.url, getattr(cluster.router, "address", None))
        inner = settings.control_plane == "real"    # the outer serve prints it, with its own addresses
        if getattr(cluster, "router", None) is not None and not inner:
            print(suite_command.line(args.kubeconfig, cluster.router.address,
                                getattr(cluster.router, "http_address", None)), flush=True)
        await stop.wait()
        return 0
    finally:
        for p in (args.kubeconfig, info_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        await cluster.stop()


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "serve":
        if args.must_gather:
            from localcluster.mustgather import MustGatherError, image_dirs
            try:
                image_dirs(Path(args.must_gather))
            except MustGatherError as e:
                print(f"localcluster: {e}", file=sys.stderr)
                return 2
        try:
            return asyncio.run(_serve(args))
        except Exception as e:  # noqa: BLE001
            logging.getLogger("localcluster").error("the local cluster failed: %s", e, exc_info=True)
            return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())

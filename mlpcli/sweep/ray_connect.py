"""Connecting `mlp sweep --executor ray` to a Ray cluster: the options, the import of Ray (an
optional extra), the address checks, and one-line errors for what commonly goes wrong."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import signal
import socket
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, first_line

RAY_EXTRA = 'pip install "mlpcli[ray]"'
CONNECT_SECONDS = 5.0  # to reach the cluster's address at all, before Ray is asked to connect
# Ray on Linux swaps a loopback node address for the machine's routable one, unless clusters are
# "disabled" as on Windows and macOS; then a node stays on 127.0.0.1 and listens there only.
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass
class RayOptions:
    address: str | None = None  # host:port of a running cluster; None: a Ray on this machine only
    cpus_per_trial: int = 1  # CPUs Ray reserves per trial, and the trial's torch threads
    gpus_per_trial: float = 0.0
    retries: int = 2  # times a trial whose worker or node died is run again
    shared_dir: bool = False  # trials write in the sweep folder (a filesystem every node sees)


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"--executor ray: Ray is not installed; install it with {RAY_EXTRA}"
        ) from None
    return ray


def connect(options: RayOptions) -> Any:
    """Import Ray and connect this process to the cluster as its driver; the `ray` module.

    Without an address, a Ray instance private to this process is started, listening on the
    loopback address only. Worker output never reaches this process's stdout (log_to_driver off),
    so `--json` stays one object.
    """
    address = options.address or os.environ.get("RAY_ADDRESS") or None
    if address is None:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    elif address != "auto":
        host, port = check_address(address)
        if _loopback_only(host, port):
            os.environ.setdefault(LOOPBACK_ONLY, "0")
    ray = import_ray()
    where = f"--address {address}" if address else "--executor ray"
    # ray.init sets its own SIGTERM handler (exit at once); a sweep stops its trials on SIGTERM.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(
            address=address,
            log_to_driver=False,
            logging_level=logging.ERROR,
            include_dashboard=False if address is None else None,
        )
    except Exception as exc:  # Ray raises RuntimeError, ConnectionError, ValueError, ...
        text = str(exc)
        raise ConfigError(
            version_mismatch(text, where)
            or f"{where}: cannot connect to a Ray cluster ({first_line(text)})"
        ) from None
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return ray


def check_address(address: str) -> tuple[str, int]:
    """host and port of HOST:PORT ([IPv6]:PORT too), something listening there; else an error."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"--address {address}: expected HOST:PORT of a Ray cluster's head, e.g. "
            f"10.0.0.5:6379 (what `ray start --head` prints), or auto"
        )
    _reachable(address, host, int(port))
    return host, int(port)


def _reachable(address: str, host: str, port: int) -> None:
    """Ray itself retries an unreachable address for ever: fail fast instead."""
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigError(
            f"--address {address}: no Ray cluster answers there ({reason}); start one with "
            f"`ray start --head --port {port}` on that machine, or give its address"
        ) from None


def _loopback_only(host: str, port: int) -> bool:
    """Whether the address is this machine's loopback and the cluster listens there only (a
    head started with --node-ip-address 127.0.0.1 and RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0).
    Ray would look for it at the machine's routable address and wait for ever."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
    if not loopback:
        return False
    routable = _routable_ip()
    if routable is None:
        return True
    try:
        socket.create_connection((routable, port), timeout=CONNECT_SECONDS).close()
    except OSError:
        return True
    return False


def _routable_ip() -> str | None:
    """This machine's address towards the outside, as Ray finds it (no packet is sent)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("8.8.8.8", 53))
        ip = probe.getsockname()[0]
        return None if ipaddress.ip_address(ip).is_loopback else ip
    return None


_VERSIONS = re.compile(
    r"cluster was started with:\s*Ray: (?P<ray>\S+)\s*Python: (?P<python>\S+)\s*"
    r"This process.*?was started with:\s*Ray: (?P<my_ray>\S+)\s*Python: (?P<my_python>\S+)",
    re.S,
)


def version_mismatch(message: str, where: str) -> str | None:
    """Ray's several-line version-mismatch error as one line naming both sides; None when the
    message is not that error."""
    found = _VERSIONS.search(message)
    if found is None:
        return None
    return (
        f"{where}: the Ray cluster runs Ray {found['ray']} on Python {found['python']}, this "
        f"machine Ray {found['my_ray']} on Python {found['my_python']}; a sweep's driver and its "
        f"cluster need the same Ray and Python versions"
    )

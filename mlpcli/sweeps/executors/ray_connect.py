"""Connecting `mlp sweep --executor ray` to a Ray cluster: the options, the import of Ray (an
optional extra), the address checks, and one-line errors for what commonly goes wrong.

Without an address (--address, else RAY_ADDRESS) a sweep starts a Ray instance of its own, never
one that an earlier `ray start` left named in Ray's temporary folder. Reaching a cluster at an
address ends within GIVE_UP_SECONDS, with an error naming the address and where it came from.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any

from ...errors import ConfigError, first_line

RAY_EXTRA = 'pip install "mlpcli[ray]"'
CONNECT_SECONDS = 5.0  # for anything to answer at the cluster's address, before Ray is asked
LOCAL_SECONDS = 1.0  # for this machine's own routable address to accept or refuse (it answers)
# Ray's own attempt to connect is made once (it would retry 20 times at up to 35 s each), and
# its wait for the cluster's id shortened from 30 s; around that wait Ray waits up to 5 s for
# its channel to the cluster and 5 s for its pubsub, then 1 s before it gives up.
RAY_ATTEMPT = {"RAY_gcs_server_port_wait_time_s": "1", "RAY_py_gcs_connect_timeout_s": "10"}
GIVE_UP_SECONDS = 30  # CONNECT_SECONDS, LOCAL_SECONDS, Ray's attempt (21 s) and importing Ray
# Ray on Linux swaps a loopback node address for the machine's routable one, unless clusters are
# "disabled" as on Windows and macOS; then a node stays on 127.0.0.1 and listens there only.
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Token authentication (Ray 2.52 on): its mode, and the token, which Ray takes from RAY_AUTH_TOKEN
# before RAY_AUTH_TOKEN_PATH and ~/.ray/auth_token. Ray turns the mode on for a new local instance
# and, finding no token, writes one to ~/.ray/auth_token; a later `ray start` that finds that
# file turns token authentication on for its cluster.
AUTH_MODE, AUTH_TOKEN, AUTH_TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
_AUTH_SIGNS = ("AuthenticationError", "InvalidAuthToken", "Unauthenticated")


@dataclass
class RayOptions:
    address: str | None = None  # --address: host:port of a running cluster (or auto)
    cpus_per_trial: int = 1  # CPUs Ray reserves per trial, and the trial's torch threads
    gpus_per_trial: float = 0.0
    retries: int = 2  # times a trial whose worker or node died is run again
    shared_dir: bool = False  # trials write in the sweep folder (a filesystem every node sees)

    def flags(self) -> list[str]:
        """The command-line options that ask for these (`--executor ray`, then each option not
        at its default), for a command that repeats this one."""
        args = ["--executor", "ray"]
        for option in fields(self):
            value = getattr(self, option.name)
            if value == option.default:
                continue
            flag = "--" + option.name.replace("_", "-")
            if isinstance(value, bool):
                args.append(flag)
            else:
                args += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
        return args


def import_ray() -> Any:
    """The `ray` module, its settings read from the environment as it is now."""
    imported = "ray" in sys.modules
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"--executor ray: Ray is not installed; install it with {RAY_EXTRA}"
        ) from None
    if imported and not ray.is_initialized():
        _reread_settings()
    return ray


def _reread_settings() -> None:
    """Ray reads its settings and token once, when imported; in a process that imported it
    before, read them again (as Ray does itself when it turns token authentication on)."""
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def cluster_address(options: RayOptions) -> tuple[str | None, str]:
    """The address to connect to (None: start an instance of the sweep's own) and how an error
    names it: the option, or the environment variable it came from."""
    if options.address and options.address != "local":
        return options.address, f"--address {options.address}"
    from_env = os.environ.get("RAY_ADDRESS", "").strip()
    if not options.address and from_env and from_env != "local":
        return from_env, f"RAY_ADDRESS={from_env} (from the environment)"
    return None, "--executor ray"


def connect(options: RayOptions) -> Any:
    """Import Ray and connect this process to the cluster as its driver; the `ray` module.

    Without an address, a Ray instance private to this process is started, listening on the
    loopback address only, with a token of its own that is never written to disk. Worker output
    never reaches this process's stdout (log_to_driver off), so `--json` stays one object.
    """
    address, where = cluster_address(options)
    settings: dict[str, str] = {}
    if address is None:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
        settings[AUTH_TOKEN] = secrets.token_hex(32)  # the length Ray's own tokens have
    else:
        if address != "auto":
            host, port = check_address(address, where)
            if _loopback_only(host, port):
                os.environ.setdefault(LOOPBACK_ONLY, "0")
        settings.update(RAY_ATTEMPT)
    # ray.init sets its own SIGTERM handler (exit at once); a sweep stops its trials on SIGTERM.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        with _environment(settings):
            ray = import_ray()
            ray.init(
                address=address or "local",
                log_to_driver=False,
                logging_level=logging.ERROR,
                include_dashboard=False if address is None else None,
            )
    except ConfigError:
        raise
    except Exception as exc:  # Ray raises RuntimeError, ConnectionError, ValueError, ...
        raise ConfigError(connect_error(exc, where, address is not None)) from None
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return ray


@contextlib.contextmanager
def _environment(settings: dict[str, str]) -> Iterator[None]:
    """`settings` in the environment, except those set there already, while Ray starts or
    connects (the processes of an instance it starts keep them); the environment as it was
    afterwards, RAY_AUTH_MODE included, which Ray sets for a new instance."""
    before = {key: os.environ.get(key) for key in [*settings, AUTH_MODE]}
    for key, value in settings.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, was in before.items():
            if was is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = was


def check_address(address: str, where: str = "") -> tuple[str, int]:
    """host and port of HOST:PORT ([IPv6]:PORT too), something listening there; else an error
    naming it as `where` says (by default as --address)."""
    where = where or f"--address {address}"
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{where}: expected HOST:PORT of a Ray cluster's head, e.g. "
            f"10.0.0.5:6379 (what `ray start --head` prints), or auto"
        )
    _reachable(where, host, int(port))
    return host, int(port)


def _reachable(where: str, host: str, port: int) -> None:
    """Ray itself retries an unreachable address for minutes: fail fast instead."""
    try:
        socket.create_connection((host, port), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigError(
            f"{where}: no Ray cluster answers there ({reason}); start one with "
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
        socket.create_connection((routable, port), timeout=LOCAL_SECONDS).close()
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


def connect_error(exc: BaseException, where: str, remote: bool = True) -> str:
    """Ray's error on starting or reaching a cluster as one line: naming the address and where
    it came from, and what to do. `remote`: an address was given (else an instance of our own)."""
    text = "\n".join(_messages(exc))
    found = version_mismatch(text, where) or (auth_failure(text, where) if remote else None)
    if found:
        return found
    first = first_line(str(exc))
    if remote and isinstance(exc, ConnectionError) and first.startswith("Failed to connect"):
        return (
            f"{where}: no Ray cluster answered there within {GIVE_UP_SECONDS} s ({first}); is "
            f"it a Ray cluster's head (`ray start --head`), and reachable from here?"
        )
    return f"{where}: cannot connect to a Ray cluster ({first})"


def _messages(exc: BaseException) -> Iterator[str]:
    """The class and message of an error and of each error it was raised from."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield f"{type(current).__name__}: {current}"
        current = current.__cause__ or current.__context__


def auth_failure(message: str, where: str) -> str | None:
    """Ray's error for a cluster that refused this process's token (or found none to send) as
    one line naming the token file and RAY_AUTH_MODE; None when the message is not that."""
    if not any(sign in message for sign in _AUTH_SIGNS) and "authentication token" not in message:
        return None
    mode = os.environ.get(AUTH_MODE) or "unset"
    path = os.environ.get(AUTH_TOKEN_PATH) or os.path.expanduser("~/.ray/auth_token")
    if os.environ.get(AUTH_TOKEN):
        held = f"a token in {AUTH_TOKEN}, which Ray takes before {path}"
    else:
        held = f"{path} {'holds a token' if os.path.isfile(path) else 'does not exist'}"
    return (
        f"{where}: the Ray cluster requires its authentication token and this process did not "
        f"send it (here {AUTH_MODE} is {mode}, {held}); connect with {AUTH_MODE}=token and the "
        f"cluster's token in {path} or {AUTH_TOKEN} (`ray get-auth-token` on its head prints it)"
    )


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

"""Where the trials run: an embedded local Ray (loopback only, token auth on) or a Ray cluster joined by address.

Ray executes whatever code a client sends it, so the embedded instance never listens beyond
127.0.0.1 and always has token authentication on; a cluster joined by address keeps the
authentication mode its operator chose (Ray reads the token from ``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from se_core import config
from se_core.runs.ablate.spec import SpecError

# Ray's switch for "local instance only": with it off, every Ray server binds 127.0.0.1 instead of all interfaces.
_LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@dataclass(frozen=True)
class Cluster:
    """The Ray instance a sweep runs on, as the runner records it in the provenance."""

    address: str  # "" for the embedded instance
    cpus: float
    gpus: float
    nodes: int

    @property
    def label(self) -> str:
        where = f"Ray cluster {self.address}" if self.address else "embedded local Ray (127.0.0.1)"
        return f"{where}: {self.nodes} node(s), {self.cpus:g} CPU(s), {self.gpus:g} GPU(s)"


def _local_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@contextlib.contextmanager
def connect(address: str | None = None, *, cpus: int | None = None,
            log: Callable[[str], None] = lambda s: None) -> Iterator[Cluster]:
    """Join the cluster at ``address`` (``auto``, ``host:port`` or ``ray://host:port``; default
    ``SE_LENS_RAY_ADDRESS``), or start an embedded local Ray sized to this machine (``cpus`` to
    override), and shut the connection (and an embedded instance) down on exit."""
    import ray

    address = (config.ray_address() if address is None else address).strip()
    if address == "local":  # Ray's own word for a new local instance: the embedded one, with its protections
        address = ""
    if ray.is_initialized():  # a caller (a test, a notebook) connected already: use it, leave it up
        yield _describe(ray, address or "(already connected)")
        return
    if address:
        try:
            _join(lambda: ray.init(address=address, log_to_driver=False, configure_logging=False), ray.shutdown, log)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise SpecError(f"--address {address}: cannot join the Ray cluster ({e}); start it with `ray start --head` "
                            "or check the address and the auth token (RAY_AUTH_TOKEN)") from None
    else:
        if config.ray_auth_mode() not in ("", "token"):
            raise SpecError(f"RAY_AUTH_MODE={config.ray_auth_mode()}: the embedded Ray keeps token authentication on "
                            "(anyone who can reach an unauthenticated Ray runs code as you); unset RAY_AUTH_MODE")
        # Ray >= 2.5x turns token auth on for a new local instance when RAY_AUTH_MODE is unset (creating
        # ~/.ray/auth_token unless RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH names one); checked below.
        if config.ray_auth_mode() == "token":
            _reload_ray_config()
        with _loopback_only():
            ray.init(address="local", num_cpus=cpus or _local_cpus(), include_dashboard=False,
                     _node_ip_address="127.0.0.1", log_to_driver=False, configure_logging=False,
                     **({"_temp_dir": config.ray_temp_dir()} if config.ray_temp_dir() else {}))
        if config.ray_auth_mode() != "token":
            ray.shutdown()
            raise SpecError(f"this Ray ({ray.__version__}) started without token authentication; "
                            "install the pinned Ray (requirements.txt) or set RAY_AUTH_MODE=token")
    try:
        yield _describe(ray, address)
    finally:
        ray.shutdown()


# Ray Client starts one server process per driver on the cluster's head (its proxy forks it while gRPC
# threads run), then waits for its channel. The first step failed once in CI on a healthy local cluster (the
# process gone before it served); Ray reports either step failing with these phrases. A fresh connection
# gets a fresh process on another port.
_CLIENT_SERVER_FAILED = ("Starting Ray client server failed", "Proxy failed to Connect to backend")
JOIN_ATTEMPTS = 3


def _join(init: Callable[[], object], reset: Callable[[], None], log: Callable[[str], None],
          attempts: int = JOIN_ATTEMPTS) -> None:
    """``init()``, again (after ``reset()``) when the cluster's Ray Client server failed to start a
    session for this driver: a transient failure of the head, unlike a wrong address or token."""
    for attempt in range(1, attempts + 1):
        try:
            init()
            return
        except ConnectionError as e:
            if not any(phrase in str(e) for phrase in _CLIENT_SERVER_FAILED) or attempt == attempts:
                raise
            reset()
            log(f"the cluster's Ray Client server failed to start a session for this driver "
                f"(attempt {attempt} of {attempts}); connecting again")


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """Ray's local-only mode (its default on macOS/Windows) while the instance starts: 127.0.0.1 stays
    127.0.0.1 instead of being swapped for the machine's address, so every Ray server binds loopback.
    Ray reads the switch from the environment at import, so its constant is set too; both are restored
    after, so this process's later children (e.g. `ray start` of a real cluster) do not inherit it."""
    from ray._private import ray_constants

    saved_env, saved_const = os.environ.get(_LOOPBACK_ONLY), getattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    os.environ[_LOOPBACK_ONLY] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_const
        if saved_env is None:
            os.environ.pop(_LOOPBACK_ONLY, None)
        else:
            os.environ[_LOOPBACK_ONLY] = saved_env


def _reload_ray_config() -> None:
    """Make this process see a ``RAY_AUTH_MODE`` set after Ray was imported (Ray caches its config at
    import; its own default-on path reloads it the same way), else its GCS would refuse this driver."""
    try:
        from ray._raylet import Config
        Config.initialize("")
    except (ImportError, AttributeError):
        pass


def _describe(ray, address: str) -> Cluster:
    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return Cluster(address=address, cpus=float(res.get("CPU", 0)), gpus=float(res.get("GPU", 0)), nodes=nodes)

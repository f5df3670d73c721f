"""Brokers a test may kill and restart, driven through ``broker/kafka.sh``.

- :class:`PrivateBroker` is a single broker of its own (``KAFKA_INSTANCE``, own port, own data
  directory under ``.kafka/``), never the shared one on 127.0.0.1:19092 that other test runs
  use at the same time.
- :class:`Cluster` is the three-node cluster on 127.0.0.1:29092-29094.

Each ``ensure_up`` says whether it had to start something, so that a session fixture stops at
the end only what it started. A test session that kills brokers holds :func:`session_lock`
so that two sessions never kill each other's broker mid-test.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient

REPO_ROOT = Path(__file__).resolve().parents[1]
KAFKA_SH = REPO_ROOT / "broker" / "kafka.sh"

#: The shared broker's instance name and port: a private broker must use neither.
SHARED_INSTANCE = "single"
SHARED_PORT = 19092

CLUSTER_NODES = (1, 2, 3)
#: The cluster's bootstrap list: every node, so that any one of them may be down.
CLUSTER_ADDRESSES = ",".join(f"127.0.0.1:{29091 + node}" for node in CLUSTER_NODES)

#: Environment variables that select kafka.sh's single-broker instance.
_INSTANCE_VARIABLES = ("KAFKA_INSTANCE", "KAFKA_PORT", "KAFKA_EXTRA_PROPS")


def kafka_sh(*args: str, env: dict[str, str] | None = None) -> str:
    """Run ``broker/kafka.sh args`` and return its output; fail with that output when it
    fails. ``env`` adds to a copy of the environment without the instance variables."""
    environment = {k: v for k, v in os.environ.items() if k not in _INSTANCE_VARIABLES}
    result = subprocess.run(
        [str(KAFKA_SH), *args],
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"broker/kafka.sh {' '.join(args)} failed with status {result.returncode}:\n"
            f"{result.stdout}{result.stderr}"
        )
    return result.stdout + result.stderr


@contextlib.contextmanager
def session_lock(name: str, wait_s: float = 300.0) -> Iterator[None]:
    """Hold the exclusive lock ``.kafka/<name>.session.lock``, waiting up to ``wait_s`` for
    another test session to release it; fail clearly after that (before pytest's per-test
    timeout would)."""
    path = REPO_ROOT / ".kafka" / f"{name}.session.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"another test session holds {path} for over {wait_s}s"
                    ) from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def wait_port_closed(port: int, limit_s: float = 30.0) -> None:
    """Wait until nothing accepts connections on 127.0.0.1:``port``. A SIGKILLed broker leaves
    the process table before the kernel has closed its listening sockets, and a start in
    between fails with "port in use"."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                pass
        except OSError:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"127.0.0.1:{port} still accepts connections after {limit_s}s")
        time.sleep(0.05)


@dataclass(frozen=True)
class PrivateBroker:
    """A single broker of this test run's own: killing it disturbs nobody else."""

    instance: str
    port: int
    #: Broker properties appended to its configuration on every start.
    extra_props: Path | None = None

    def __post_init__(self) -> None:
        if self.instance == SHARED_INSTANCE or self.port in (SHARED_PORT, SHARED_PORT + 1):
            raise ValueError(f"{self.instance}:{self.port} is the shared broker; never kill it")

    @property
    def address(self) -> str:
        """Its bootstrap address."""
        return f"127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        env = {"KAFKA_INSTANCE": self.instance, "KAFKA_PORT": str(self.port)}
        if self.extra_props is not None:
            env["KAFKA_EXTRA_PROPS"] = str(self.extra_props)
        return env

    def running(self) -> bool:
        """Whether its process runs (it may still be starting)."""
        return "running" in kafka_sh("status", env=self._env()).splitlines()[0]

    def ensure_up(self) -> bool:
        """Start it unless it runs, and wait until it answers; whether it had to be started."""
        started = not self.running()
        kafka_sh("up", env=self._env())
        return started

    def kill(self) -> None:
        """SIGKILL it (its data stays) and wait until the process and its ports are gone."""
        kafka_sh("kill", env=self._env())
        wait_port_closed(self.port)
        wait_port_closed(self.port + 1)

    def start(self) -> None:
        """Start it again on the same data (log recovery after a kill) and wait until it
        answers."""
        kafka_sh("start", env=self._env())

    def down(self) -> None:
        """Stop it gracefully; its data stays."""
        kafka_sh("down", env=self._env())


class Cluster:
    """The three-node cluster of ``broker/kafka.sh cluster-up``."""

    address = CLUSTER_ADDRESSES

    def stopped_nodes(self) -> list[int]:
        """The nodes whose process does not run."""
        status = kafka_sh("status")
        return [
            node
            for node in CLUSTER_NODES
            if not re.search(rf"cluster node {node}: running", status)
        ]

    def ensure_up(self) -> bool:
        """Start the nodes that are not running and wait for all three; whether the whole
        cluster had to be started."""
        stopped = self.stopped_nodes()
        kafka_sh("cluster-up")
        return len(stopped) == len(CLUSTER_NODES)

    def kill_node(self, node: int) -> None:
        """SIGKILL one node and wait until its process and its ports are gone."""
        kafka_sh("kill-node", str(node))
        wait_port_closed(29091 + node)
        wait_port_closed(29191 + node)

    def start_node(self, node: int) -> None:
        """Start one node again on its data and wait until it sees all three brokers."""
        kafka_sh("start-node", str(node))

    def down(self) -> None:
        """Stop every node gracefully; the data stays."""
        kafka_sh("cluster-down")

    def leaders(self, topic: str) -> dict[int, int]:
        """Per partition of ``topic``, the node id of its leader (-1 while none is elected)."""
        admin = AdminClient({"bootstrap.servers": self.address})
        metadata = admin.list_topics(topic, timeout=30).topics[topic]
        return {p: metadata.partitions[p].leader for p in sorted(metadata.partitions)}

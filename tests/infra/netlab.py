"""Several network hosts on one machine: Linux network namespaces joined by bridges, for partition tests.

Each *host* is a network namespace. Each *network* is a bridge in the root namespace with a private /24; a host
joins a network through a veth pair of its own (one end inside the host as ``eth-<net>``, the other on the bridge).
The root namespace holds the bridge's ``.1`` address, so the test process reaches every host directly (to check
the database, ask the health endpoints) without any routing or forwarding.

A partition is a link going down, not a process fault: ``cut(host, net)`` sets the bridge side of that host's veth
down, so the host's packets on that network are dropped by the kernel (no RST, no FIN: connections hang, TCP
retransmits and keepalives go unanswered, as when a switch port or a cable fails). ``heal`` sets it up again. One
veth per (host, network) pair is what lets a worker be cut off from PostgreSQL and not from Redis.

Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and ``ip``; ``probe()`` says why not when namespaces cannot be made.
Everything is removed by ``close()`` (also after a failed test): the processes left in each namespace are
SIGKILLed, the namespaces (with their veths) and the bridges deleted.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def probe() -> str | None:
    """``None`` when network namespaces, veths and bridges can be made here; otherwise why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is needed"
    name = f"rsprobe{secrets.token_hex(3)}"
    try:
        made = _ip("netns", "add", name, check=False)
        if made.returncode != 0:
            return f"cannot create a network namespace: {made.stderr.strip()}"
        link = _ip("link", "add", f"{name}a", "type", "veth", "peer", "name", f"{name}b", check=False)
        if link.returncode != 0:
            return f"cannot create a veth pair: {link.stderr.strip()}"
        _ip("link", "del", f"{name}a", check=False)
        return None
    finally:
        _ip("netns", "del", name, check=False)


def netem_available(host_ns: str) -> bool:
    """Whether the kernel has ``sch_netem`` (tc netem), tried on the loopback of a namespace of ours."""
    if shutil.which("tc") is None:
        return False
    done = subprocess.run(
        ["ip", "netns", "exec", host_ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    if done.returncode == 0:
        subprocess.run(["ip", "netns", "exec", host_ns, "tc", "qdisc", "del", "dev", "lo", "root"], check=False)
    return done.returncode == 0


@dataclass
class Host:
    name: str
    ns: str
    addresses: dict[str, str] = field(default_factory=dict)
    """Network name → this host's address on it."""

    def address(self, net: str) -> str:
        return self.addresses[net]


@dataclass
class Network:
    name: str
    bridge: str
    subnet: ipaddress.IPv4Network

    @property
    def gateway(self) -> str:
        """The root namespace's address on this network (the bridge's)."""
        return str(self.subnet.network_address + 1)


@contextlib.contextmanager
def inside(ns: str) -> Iterator[None]:
    """Run the calling *thread* inside namespace ``ns`` (setns is per thread): sockets it creates, and threads it
    starts, belong to that host. Restores the thread's namespace afterwards."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
        try:
            yield
        finally:
            _libc.setns(own, CLONE_NEWNET)
    finally:
        os.close(own)
        os.close(target)


class NetLab:
    """Hosts (namespaces) on networks (bridges). ``NetLab(networks, hosts)`` where ``hosts`` maps a host name to
    the networks it joins; host addresses are given in order (``.10`` upward) on each network."""

    def __init__(self, networks: Sequence[str], hosts: dict[str, Sequence[str]]) -> None:
        self.tag = secrets.token_hex(2)
        self.networks: dict[str, Network] = {}
        self.hosts: dict[str, Host] = {}
        self._net_names = list(networks)
        self._host_nets = {h: list(nets) for h, nets in hosts.items()}
        self._veths: dict[tuple[str, str], str] = {}

    # -- building --------------------------------------------------------------------------------------------------
    def _free_base(self) -> int:
        """A second octet ``10.<b>.0.0/16`` not used by any address of the root namespace."""
        used = _ip("-4", "-o", "addr", "show").stdout
        for _ in range(50):
            base = 100 + secrets.randbelow(150)
            if f" 10.{base}." not in used:
                return base
        raise RuntimeError("no free 10.x.0.0/16 range for the lab")

    def start(self) -> Self:
        base = self._free_base()
        for i, net in enumerate(self._net_names):
            subnet = ipaddress.IPv4Network(f"10.{base}.{i + 1}.0/24")
            bridge = f"rb{self.tag}{i}"
            _ip("link", "add", bridge, "type", "bridge")
            self.networks[net] = Network(net, bridge, subnet)
            _ip("addr", "add", f"{subnet.network_address + 1}/24", "dev", bridge)
            _ip("link", "set", bridge, "up")
        counters = dict.fromkeys(self._net_names, 10)
        for h, (host, nets) in enumerate(self._host_nets.items()):
            ns = f"rs{self.tag}-{host}"
            _ip("netns", "add", ns)
            self.hosts[host] = Host(host, ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            for net in nets:
                network = self.networks[net]
                outside = f"rv{self.tag}{h}{self._net_names.index(net)}"
                _ip("link", "add", outside, "type", "veth", "peer", "name", f"eth-{net}", "netns", ns)
                addr = str(network.subnet.network_address + counters[net])
                counters[net] += 1
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", f"eth-{net}")
                _ip("-n", ns, "link", "set", f"eth-{net}", "up")
                _ip("link", "set", outside, "master", network.bridge)
                _ip("link", "set", outside, "up")
                self.hosts[host].addresses[net] = addr
                self._veths[(host, net)] = outside
        return self

    # -- faults ------------------------------------------------------------------------------------------------------
    def cut(self, host: str, net: str) -> None:
        """Partition ``host`` from network ``net``: its packets there are dropped from now on (no reset)."""
        _ip("link", "set", self._veths[(host, net)], "down")

    def heal(self, host: str, net: str) -> None:
        _ip("link", "set", self._veths[(host, net)], "up")

    def isolate(self, host: str) -> None:
        """Cut ``host`` from every network it is on."""
        for h, net in self._veths:
            if h == host:
                self.cut(h, net)

    def rejoin(self, host: str) -> None:
        for h, net in self._veths:
            if h == host:
                self.heal(h, net)

    def pids(self, host: str) -> list[int]:
        out = _ip("netns", "pids", self.hosts[host].ns, check=False).stdout
        return [int(p) for p in out.split()]

    def kill_host(self, host: str, *, timeout_s: float = 10.0) -> int:
        """``kill -9`` of every process in the host's namespace at once, as when the machine dies; returns how many.
        Repeats until none is left (a process may fork while the first ones die)."""
        killed: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while pids := [p for p in self.pids(host) if p != os.getpid()]:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {pids} of host {host} survived SIGKILL")
            time.sleep(0.05)
        return len(killed)

    def command(self, host: str, args: Sequence[str]) -> list[str]:
        """``args`` wrapped to run inside ``host`` (``ip netns exec`` execs the command: its pid stays the same)."""
        return ["ip", "netns", "exec", self.hosts[host].ns, *args]

    # -- teardown ----------------------------------------------------------------------------------------------------
    def close(self) -> None:
        for host in list(self.hosts):
            with contextlib.suppress(RuntimeError):
                self.kill_host(host)
            _ip("netns", "del", self.hosts[host].ns, check=False)
        for network in self.networks.values():
            _ip("link", "del", network.bridge, check=False)
        self.hosts.clear()
        self.networks.clear()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

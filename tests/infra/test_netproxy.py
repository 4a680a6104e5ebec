"""The link proxy that stands in for ``tc netem`` on the broker's link: delay, loss as a retransmission delay, and a
partition that hangs instead of resetting."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.infra.netproxy import PASS, Impairment, LinkProxy


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: [c.sendall(d) for d in iter(lambda: c.recv(4096), b"")]).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[:2]
    server.close()


def _round_trip(sock: socket.socket) -> float:
    t0 = time.monotonic()
    sock.sendall(b"ping")
    assert sock.recv(16) == b"ping"
    return time.monotonic() - t0


def test_pass_delay_loss_and_partition(echo: tuple[str, int]) -> None:
    with (
        LinkProxy(listen=("127.0.0.1", 0), upstream=echo) as proxy,
        socket.create_connection(proxy.address, timeout=5) as sock,
    ):
        assert _round_trip(sock) < 0.2  # no delay added
        proxy.set(Impairment(delay_s=0.1))
        assert _round_trip(sock) >= 0.2  # each direction delayed
        proxy.set(Impairment(delay_s=0.0, loss=1.0, rto_s=0.15))
        assert _round_trip(sock) >= 0.3  # a lost chunk arrives one retransmission timeout later, each way
        assert proxy.lost >= 2
        proxy.set(Impairment(drop=True))
        sock.settimeout(0.5)
        sock.sendall(b"ping")
        with pytest.raises(TimeoutError):  # hangs: no reset, no close
            sock.recv(16)
        proxy.set(PASS)
        sock.settimeout(5)
        assert sock.recv(16) == b"ping"  # what was held back is delivered once the link heals

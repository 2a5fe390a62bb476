"""A TCP proxy for network faults between Kafka clients and the broker:
latency with jitter on every chunk, connection resets on demand, and silently
dropped connections (what a NAT or load balancer does when it forgets an idle
flow: no reset, no FIN, nothing more delivered either way).

It injects only those faults. Two things a naive proxy adds by accident, and
that Kafka clients only notice after their request timeout (30 s, 305 s for a
JoinGroup), are avoided on purpose:

- an idle timeout: the upstream socket must not keep the connect timeout, or a
  reply the broker holds back for more than that (a JoinGroup waiting for a
  rebalance, a slow reply on a loaded machine) silently kills the connection;
- half-open connections: closing a socket another thread is blocked reading
  does not wake that thread on Linux, and the kernel keeps the connection open
  (no FIN, no RST) until the read returns. Each end is therefore shut down for
  reading first, which wakes both pump threads, and only then closed.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from tokenshare.settings import Settings


class _Pair:
    """A client connection and its upstream connection, torn down together."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.socks = (client, upstream)
        self.dropped = False  # silently dropped: bytes are read and thrown away

    def end(self, reset: bool = False) -> None:
        """Wake both pumps; with `reset`, their close sends RST instead of FIN."""
        for s in self.socks:
            with contextlib.suppress(OSError):
                if reset:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RD)  # sends nothing; a blocked recv() returns b""


class FaultyLink:
    def __init__(self, listen_port: int, upstream_port: int, seed: int = 1) -> None:
        self.listen_port = listen_port
        self.upstream_port = upstream_port
        self.latency_s = 0.0
        self.jitter_s = 0.0
        self.resets = 0
        self.drops = 0
        self._dropped: list[_Pair] = []
        self._rnd = random.Random(seed)
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", listen_port), reuse_port=False)
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # 5 s was for connecting, not an idle timeout
            client.settimeout(None)
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if pair.dropped:
                    continue  # swallowed: the sender sees a healthy socket, no reply comes
                delay = self.latency_s + self._rnd.uniform(-self.jitter_s, self.jitter_s)
                if delay > 0:
                    time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # One direction ended (EOF, error or reset): end the other one too, so
            # neither end is left waiting on a connection that is gone.
            pair.end()
            with self._lock, contextlib.suppress(ValueError):
                self._pairs.remove(pair)
            # Each socket is the source of exactly one pump: closed once, by it.
            with contextlib.suppress(OSError):
                src.close()

    def reset_all(self) -> None:
        """Abort every open connection with a TCP RST (SO_LINGER 0), both ends."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.end(reset=True)
        self.resets += 1

    def drop_all(self) -> None:
        """Silently drop every open connection: both ends stay open, nothing is
        forwarded any more. New connections are forwarded as usual."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            pair.dropped = True
        self._dropped.extend(pairs)  # ended on close()
        self.drops += 1

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self.reset_all()
        for pair in self._dropped:
            pair.end(reset=True)


@contextlib.contextmanager
def proxied_broker(home: Path, broker_dir: Path) -> Iterator[tuple[FaultyLink, Settings]]:
    """A broker of its own that every client reaches through a FaultyLink (the
    broker advertises the proxy's port), and Settings that use it."""
    from tokenshare.localstack import LocalKafka
    from tokenshare.processes import free_ports

    port, controller, proxy_port, query_port, web_port = free_ports(5)
    link = FaultyLink(proxy_port, port)
    broker = LocalKafka(
        broker_dir, port=port, controller_port=controller, advertised_port=proxy_port
    )
    broker.start(timeout=120)
    try:
        yield (
            link,
            Settings(
                home=home,
                kafka_bootstrap=f"127.0.0.1:{proxy_port}",
                topic_prefix="n",
                partitions=4,
                clickhouse_dsn=f"chdb://{home / 'ch'}",
                store_query_port=query_port,
                worker_web_port=web_port,
            ),
        )
    finally:
        link.close()
        broker.stop()

"""A TCP forwarder on 127.0.0.1 that a test can cut and restore: a database outage, for real.

The app is pointed at the forwarder's port instead of the database's. `cut()` closes every connection
it carries, and until `restore()` each new connection is reset as soon as it is accepted: to the
client, a database that has gone away. The forwarder keeps its listening socket from start to
`close()`, so its port cannot be taken by anyone else meanwhile. Threads only: the accept loop
checks for `close()` every POLL seconds, and a cut shuts the forwarded sockets down, which wakes
their threads.

It imitates a database that restarts or drops its connections (the peer closes, new connections
fail at once), not a network that goes silent and leaves packets unanswered.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

POLL = 0.1  # seconds
CONNECT_TIMEOUT = 5.0  # seconds, to the target


def _reset(sock: socket.socket) -> None:
    """Close with a reset (RST), as a peer that is gone does, not an orderly FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()  # guards _sockets and _cut together
        self._sockets: set[socket.socket] = set()
        self._cut = False
        self._closing = threading.Event()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self._listener.settimeout(POLL)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cut(self) -> None:
        """Close every forwarded connection; reset new ones until `restore()`. A connection whose
        upstream connect is under way is closed by the accept loop when that connect returns."""
        with self._lock:
            self._cut = True
            open_sockets, self._sockets = self._sockets, set()
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self.cut()
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout=CONNECT_TIMEOUT + 2 * POLL)
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                refused = self._cut
            if refused:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT)
            except OSError:
                _reset(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                refused = self._cut  # cut while the upstream connect was under way
                if not refused:
                    self._sockets.update((client, upstream))
            if refused:
                _reset(client)
                upstream.close()
                continue
            pumps = threading.Barrier(2, action=lambda c=client, u=upstream: self._release(c, u))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink, pumps), daemon=True).start()

    def _release(self, client: socket.socket, upstream: socket.socket) -> None:
        """Both directions of a connection have ended: close its sockets (unless a cut did)."""
        with self._lock:
            ours = client in self._sockets
            self._sockets.difference_update((client, upstream))
        if ours:
            client.close()
            upstream.close()

    def _pump(self, source: socket.socket, sink: socket.socket, pumps: threading.Barrier) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:  # one side ended: end the other, so the peer sees it too
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(threading.BrokenBarrierError):
                pumps.wait(timeout=30)  # the second pump to end closes the pair

"""``darkdeblur serve``: check the address, say where the page is, run the app under uvicorn."""
from __future__ import annotations

import ipaddress
import socket
import sys


class ServeError(Exception):
    """An address the server cannot listen on (the message is one line)."""


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or :class:`ServeError` naming why not (port taken...)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ServeError(f"--host {host}: unknown address ({err.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port} ({err.strerror or err})") from None
    sock.set_inheritable(True)
    return sock


def run(app, host: str, port: int, description: str) -> None:
    """Serve ``app`` until Ctrl+C; the app removes its temporary folder as it stops."""
    import uvicorn
    sock = listening_socket(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(f"darkdeblur serve: http://{shown}:{sock.getsockname()[1]}/ ({description}); Ctrl+C stops it",
          flush=True)
    if not is_loopback(host):
        print(f"darkdeblur serve: warning: listening on {host}: anyone on the network who can reach "
              f"this machine can use it", file=sys.stderr, flush=True)
    # Ctrl+C: requests still waiting after 5 s are dropped; the app then cancels the queue.
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=5))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts the app down first, then passes Ctrl+C on
        pass
    finally:
        sock.close()

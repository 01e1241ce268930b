"""A free loopback port for Python tests, as tests/collectives/loopback.hpp gives C++ ones.

Taken below the kernel's ephemeral range (32768-60999 on Linux) and the launcher's
MASTER_PORTs (29500 up): the kernel's own pick (bind to port 0) would be free only until the
kernel hands the same port to another test's listener or outgoing connection, which it does
under `ctest -j`.
"""
import random
import socket

FIRST, COUNT = 20000, 9500


def free_port():
    start = random.randrange(COUNT)
    for i in range(COUNT):
        port = FIRST + (start + i) % COUNT
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {FIRST}-{FIRST + COUNT - 1}")

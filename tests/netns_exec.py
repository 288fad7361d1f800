"""Run inside a fresh network namespace (`unshare -rn`): bring loopback up, then exec the command.

Multi-process tests run their launcher here, so whatever it listens on (torchrun's store binds every
interface) is reachable from nowhere but this namespace.
"""

import fcntl
import os
import socket
import struct
import sys

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0)))[1]
    fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
os.execv(sys.argv[1], sys.argv[1:])

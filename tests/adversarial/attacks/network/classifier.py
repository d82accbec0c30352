"""Hostile submission network: expected CRASH."""

import socket

from hostile import HOST, hostile_model, try_each


def tcp(host, port):
    socket.create_connection((host, port), timeout=3).close()


def unix_abstract():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("\0" + HOST["abstract"])
    s.close()


def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b"x", ("8.8.8.8", 53))
    s.close()


def attack(x=None):
    try_each([("tcp 1.1.1.1:443", lambda: tcp("1.1.1.1", 443)),
              ("tcp host 127.0.0.1 listener", lambda: tcp("127.0.0.1", HOST["port"])),
              ("dns pypi.org", lambda: socket.getaddrinfo("pypi.org", 443)),
              ("abstract unix socket", unix_abstract), ("udp 8.8.8.8", udp)])


Model, fit = hostile_model(attack, 'train')

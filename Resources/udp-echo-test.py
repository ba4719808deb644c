#!/usr/bin/env python3
"""Sends N UDP datagrams to the guest's echo port, one socket (source port) per datagram,
and counts the ones echoed back unchanged.

  Resources/udp-echo-test.py [N] [PORT] [HOST]     defaults: 100 15555 127.0.0.1
  (inside the netns: ip netns exec smptop-mq Resources/udp-echo-test.py 100 7 192.0.2.2)
"""
import socket, sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
port = int(sys.argv[2]) if len(sys.argv) > 2 else 15555
host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
ok = 0
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    s.connect((host, port))
    m = b"datagram %d" % i
    s.send(m)
    try:
        ok += s.recv(2048) == m
    except socket.timeout:
        print("no echo for datagram", i)
    s.close()
print(f"sent {n} echoed {ok}")
sys.exit(0 if ok == n else 1)

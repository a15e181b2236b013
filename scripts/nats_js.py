#!/usr/bin/env python3
"""A few JetStream requests over NATS's text protocol, std only (Debian has no `nats` CLI).

    nats_js.py HOST:PORT ping                     exits 0 when the server answers
    nats_js.py HOST:PORT create STREAM SUBJECT    creates a file-backed stream (exit 1 on error)
    nats_js.py HOST:PORT purge STREAM             removes every message of STREAM
"""
import json
import socket
import sys


def request(sock, reader, subject, body):
    payload = json.dumps(body).encode()
    sock.sendall(f"PUB {subject} _INBOX.js {len(payload)}\r\n".encode() + payload + b"\r\n")
    while True:
        line = reader.readline()
        if not line:
            sys.exit("nats-server closed the connection")
        if line.startswith(b"PING"):
            sock.sendall(b"PONG\r\n")
        elif line.startswith(b"-ERR"):
            sys.exit(f"nats-server: {line.decode().strip()}")
        elif line.startswith(b"MSG"):
            reply = json.loads(reader.read(int(line.split()[-1])))
            reader.readline()
            if "error" in reply:
                sys.exit(f"{subject}: {reply['error']}")
            return reply


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()  # INFO
    sock.sendall(b'CONNECT {"verbose":false,"protocol":1}\r\nSUB _INBOX.js 1\r\n')
    command = sys.argv[2]
    if command == "ping":
        sock.sendall(b"PING\r\n")
        while not reader.readline().startswith(b"PONG"):
            pass
    elif command == "create":
        stream, subject = sys.argv[3:5]
        config = {"name": stream, "subjects": [subject], "storage": "file",
                  "max_msg_size": -1, "max_bytes": -1}
        request(sock, reader, f"$JS.API.STREAM.CREATE.{stream}", config)
    elif command == "purge":
        request(sock, reader, f"$JS.API.STREAM.PURGE.{sys.argv[3]}", {})
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

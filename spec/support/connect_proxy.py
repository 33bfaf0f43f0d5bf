"""A tiny HTTP CONNECT proxy for the nginx specs (loopback only).

usage: connect_proxy.py LISTEN_PORT UPSTREAM_PORT LOGFILE [REQUIRED_AUTH]

LISTEN_PORT 0 lets the kernel pick a free port; "ready PORT" on stdout says which.

Every CONNECT is tunnelled to 127.0.0.1:UPSTREAM_PORT, whatever host it names (the specs use
real Azure names); the request line and the Proxy-Authorization header are appended to
LOGFILE. With REQUIRED_AUTH ("Basic ..."), other requests get 407.
"""
import socket
import sys
import threading

listen_port, upstream_port, logfile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
required = sys.argv[4] if len(sys.argv) > 4 else None


def pipe(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def handle(c):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = c.recv(4096)
        if not d:
            c.close()
            return
        buf += d
    head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    lines = head.split("\r\n")
    auth = ""
    for line in lines[1:]:
        if line.lower().startswith("proxy-authorization:"):
            auth = line.split(":", 1)[1].strip()
    with open(logfile, "a") as f:
        f.write(lines[0] + "\t" + auth + "\n")
    if not lines[0].startswith("CONNECT "):
        c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        c.close()
        return
    if required and auth != required:
        c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
        c.close()
        return
    u = socket.create_connection(("127.0.0.1", upstream_port))
    c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen(64)
print("ready", srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()

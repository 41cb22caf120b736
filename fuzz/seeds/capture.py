#!/usr/bin/env python3
"""Records what real clients send to a PostgreSQL server, for the fuzz seed corpus.

A fake server on 127.0.0.1 answers just enough for psql (libpq) and `openssl s_client` to
send their messages, and writes each client's bytes to captures/<name>.bin. Run from this
directory; needs psql and openssl. The captures are committed, so this only documents (and
can redo) how they were made: `python3 capture.py`.
"""
import os
import socket
import struct
import subprocess
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "captures")


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"wanted {n} bytes, got {len(buf)}")
        buf += chunk
    return buf


def startup_packet(conn):
    head = recv_exact(conn, 4)
    (n,) = struct.unpack("!i", head)
    return head + recv_exact(conn, n - 4)


def typed(conn):
    head = recv_exact(conn, 5)
    (n,) = struct.unpack("!i", head[1:])
    return head + recv_exact(conn, n - 4)


def tls_record(conn):
    head = recv_exact(conn, 5)
    (n,) = struct.unpack("!H", head[3:])
    return head + recv_exact(conn, n)


def msg(tag, body):
    return tag + struct.pack("!i", len(body) + 4) + body


def ready():
    return msg(b"R", struct.pack("!i", 0)) + msg(b"Z", b"I")


def error(text):
    return msg(b"E", b"SERROR\0C0A000\0M" + text + b"\0\0")


def serve(handler):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    result = {}

    def run():
        conn, _ = sock.accept()
        conn.settimeout(10)
        try:
            handler(conn, result)
        except (EOFError, OSError) as e:
            result.setdefault("error", repr(e))
        finally:
            conn.close()
            sock.close()

    t = threading.Thread(target=run)
    t.start()
    return sock.getsockname()[1], t, result


def save(name, data):
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes")


def psql_session(auth, name):
    """psql -c 'select 1' with sslmode=prefer: SSLRequest ('N'), startup, password, query, X."""

    def handler(conn, r):
        r["ssl_request"] = recv_exact(conn, 8)
        conn.sendall(b"N")
        r["startup"] = startup_packet(conn)
        if auth == "md5":
            conn.sendall(msg(b"R", struct.pack("!i", 5) + b"\x01\x02\x03\x04"))
        else:
            conn.sendall(msg(b"R", struct.pack("!i", 3)))
        r["password"] = typed(conn)
        conn.sendall(ready())
        r["query"] = typed(conn)
        conn.sendall(error(b"Queries not yet implemented") + msg(b"Z", b"I"))
        r["terminate"] = typed(conn)

    port, t, r = serve(handler)
    env = dict(os.environ, PGPASSWORD="secret", PGSSLMODE="prefer", PGGSSENCMODE="disable",
               PGCONNECT_TIMEOUT="5", PGAPPNAME="psql")
    subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "alice", "-d", "db", "-c", "select 1"],
                   env=env, capture_output=True, timeout=20)
    t.join()
    assert "error" not in r, r
    # The messages other than the password are the same whatever the method: keep one copy.
    keys = ["ssl_request", "startup", "password", "query", "terminate"] if auth == "md5" else ["password"]
    for key in keys:
        save(f"{name}_{key}" if key == "password" else f"psql_{key}", r[key])


def client_hello(name, args, starttls):
    def handler(conn, r):
        if starttls:
            r["ssl_request"] = recv_exact(conn, 8)
            conn.sendall(b"S")
        r["hello"] = tls_record(conn)

    port, t, r = serve(handler)
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}"] + args
    if starttls:
        cmd += ["-starttls", "postgres"]
    subprocess.run(cmd, input=b"", capture_output=True, timeout=20)
    t.join()
    assert "hello" in r, r
    save(name, r["hello"])


def libpq_client_hello():
    """The ClientHello libpq (OpenSSL) sends after 'S' with sslmode=require."""

    def handler(conn, r):
        r["ssl_request"] = recv_exact(conn, 8)
        conn.sendall(b"S")
        r["hello"] = tls_record(conn)

    port, t, r = serve(handler)
    env = dict(os.environ, PGSSLMODE="require", PGGSSENCMODE="disable", PGCONNECT_TIMEOUT="5")
    subprocess.run(["psql", "-h", "localhost", "-p", str(port), "-U", "alice", "-d", "db", "-c", "select 1"],
                   env=env, capture_output=True, timeout=20)
    t.join()
    assert "hello" in r, r
    save("libpq_client_hello", r["hello"])


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    psql_session("md5", "md5")
    psql_session("cleartext", "cleartext")
    libpq_client_hello()
    client_hello("openssl_client_hello_starttls", ["-servername", "localhost"], True)
    client_hello("openssl_client_hello_direct", ["-servername", "localhost", "-alpn", "postgresql"], False)

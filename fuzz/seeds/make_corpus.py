#!/usr/bin/env python3
"""Builds fuzz/corpus/<target>/ from the captures (captures/*.bin, made by capture.py) and
a few messages written out by hand where no client at hand sends them (GSSENCRequest,
CancelRequest, the extended protocol as node-postgres writes it, COPY, FunctionCall).
Run from anywhere: `python3 fuzz/seeds/make_corpus.py`. Deterministic.

The session targets take an 8-byte header before the stream (see fuzz/src/lib.rs):
header[0] server (auth mode, TLS, limits, ...), header[1] hooks and TLS client options,
header[2..8] the seed of the driver's choices.
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")


def cap(name):
    with open(os.path.join(HERE, "captures", name + ".bin"), "rb") as f:
        return f.read()


def typed(tag, body):
    return tag + struct.pack("!i", len(body) + 4) + body


def startup(params, minor=0):
    body = struct.pack("!hh", 3, minor) + b"".join(k + b"\0" + v + b"\0" for k, v in params) + b"\0"
    return struct.pack("!i", len(body) + 4) + body


SSL_REQUEST = cap("psql_ssl_request")
GSSENC_REQUEST = struct.pack("!ii", 8, 80877104)
CANCEL_30 = struct.pack("!iii", 16, 80877102, 4242) + b"\x01\x02\x03\x04"
CANCEL_32 = struct.pack("!iii", 12 + 32, 80877102, 4242) + bytes(range(32))
PSQL_STARTUP = cap("psql_startup")
STARTUP_ALICE = startup([(b"user", b"alice"), (b"database", b"db")])
STARTUP_32 = startup([(b"user", b"alice"), (b"_pq_.command_trace", b"on")], minor=2)
MD5_PASSWORD = cap("md5_password")
CLEARTEXT_PASSWORD = cap("cleartext_password")
QUERY = cap("psql_query")
TERMINATE = cap("psql_terminate")
# node-postgres, client.query('select $1::text', ['hi']): Parse, Bind, Describe, Execute, Sync.
EXTENDED = (
    b"P\x00\x00\x00\x17\x00select $1::text\x00\x00\x00"
    b"B\x00\x00\x00\x12\x00\x00\x00\x00\x00\x01\x00\x00\x00\x02hi\x00\x00"
    b"D\x00\x00\x00\x06P\x00"
    b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00"
    b"S\x00\x00\x00\x04"
)
NAMED_EXTENDED = (
    typed(b"P", b"s1\0select $1, $2\0\x00\x02\x00\x00\x00\x17\x00\x00\x00\x19")
    + typed(b"B", b"p1\0s1\0\x00\x01\x00\x01\x00\x02\x00\x00\x00\x04\x00\x00\x00\x2a\xff\xff\xff\xff\x00\x01\x00\x01")
    + typed(b"D", b"Ss1\0")
    + typed(b"E", b"p1\0\x00\x00\x00\x0a")
    + typed(b"H", b"")
    + typed(b"C", b"Pp1\0")
    + typed(b"C", b"Ss1\0")
    + typed(b"S", b"")
)
FUNCTION_CALL = typed(b"F", b"\x00\x00\x04\xd2\x00\x00\x00\x01\x00\x00\x00\x02ab\x00\x01")
COPY = typed(b"d", b"1\t2\n") + typed(b"c", b"") + typed(b"f", b"client gave up\0")

HELLO_LIBPQ = cap("libpq_client_hello")
HELLO_STARTTLS = cap("openssl_client_hello_starttls")
HELLO_DIRECT = cap("openssl_client_hello_direct")

# header[0] bits: auth 0 none, 1 cleartext, 2 md5, 3 certificate; TLS <<2: 1 fixed, 2 callback,
# 3 client certificates; 16 tiny limits; 32 no writeTimeout; 64 parameter overrides; 128 slow client.
NONE, CLEARTEXT, MD5, CERT = 0, 1, 2, 3
TLS_FIXED, TLS_CALLBACK, TLS_CLIENT_AUTH = 4, 8, 12
# header[1] bits: 1 onMessage, 2 onStartup, 4 validateCredentials, 8 onAuthenticated,
# 16 onTlsUpgrade; session_tls: 32 TLS 1.2, 64 direct TLS, 128 client certificate.
ON_MESSAGE, ON_STARTUP, VALIDATE, ON_AUTHENTICATED, ON_TLS_UPGRADE = 1, 2, 4, 8, 16
TLS12, DIRECT, CLIENT_CERT = 32, 64, 128


def header(h0, h1, seed):
    return bytes([h0, h1]) + seed.to_bytes(6, "big")


AFTER_AUTH = QUERY + EXTENDED + NAMED_EXTENDED + FUNCTION_CALL + COPY + QUERY + TERMINATE

CORPORA = {
    "frontend_decode": {
        "query": QUERY,
        "md5_password": MD5_PASSWORD,
        "cleartext_password": CLEARTEXT_PASSWORD,
        "terminate": TERMINATE,
        "extended_batch": EXTENDED,
        "named_extended_batch": NAMED_EXTENDED,
        "function_call": FUNCTION_CALL,
        "copy": COPY,
    },
    "startup_decode": {
        "psql_startup": PSQL_STARTUP,
        "startup_3_2_with_option": STARTUP_32,
        "ssl_request": SSL_REQUEST,
        "gssenc_request": GSSENC_REQUEST,
        "cancel_request_3_0": CANCEL_30,
        "cancel_request_3_2": CANCEL_32,
        "startup_2_0": struct.pack("!ihh", 8, 2, 0),
    },
    "session_stream": {
        "psql_md5_no_hooks": header(MD5, 0, 1) + SSL_REQUEST + PSQL_STARTUP + MD5_PASSWORD + QUERY + TERMINATE,
        "psql_md5_validate": header(MD5, VALIDATE, 2) + SSL_REQUEST + PSQL_STARTUP + MD5_PASSWORD + AFTER_AUTH,
        "psql_md5_all_hooks": header(MD5 | 64, 31, 3) + SSL_REQUEST + PSQL_STARTUP + MD5_PASSWORD + AFTER_AUTH,
        "cleartext_validate": header(CLEARTEXT, VALIDATE | ON_AUTHENTICATED, 4)
        + PSQL_STARTUP + CLEARTEXT_PASSWORD + AFTER_AUTH,
        "none_on_message": header(NONE, ON_MESSAGE, 5) + GSSENC_REQUEST + STARTUP_ALICE + AFTER_AUTH,
        "none_no_hooks_slow_client": header(NONE | 128, 0, 6) + STARTUP_32 + AFTER_AUTH * 4,
        "none_tiny_limits": header(NONE | 16 | 32, ON_STARTUP, 7) + STARTUP_ALICE + AFTER_AUTH,
        "cancel_3_0": header(NONE, 0, 8) + CANCEL_30,
        "cancel_3_2": header(MD5, 0, 9) + CANCEL_32,
        "tls_fixed_libpq_hello": header(NONE | TLS_FIXED, ON_TLS_UPGRADE, 10) + SSL_REQUEST + HELLO_LIBPQ,
        "tls_callback_openssl_hello": header(MD5 | TLS_CALLBACK, VALIDATE, 11) + SSL_REQUEST + HELLO_STARTTLS,
        "tls_client_auth_hello": header(CERT | TLS_CLIENT_AUTH, 0, 12) + SSL_REQUEST + HELLO_STARTTLS,
        "tls_direct_hello": header(NONE | TLS_FIXED, ON_MESSAGE, 13) + HELLO_DIRECT,
        "tls_direct_callback_hello": header(CERT | TLS_CALLBACK, 0, 14) + HELLO_DIRECT,
        "tls_plaintext_refused": header(NONE | TLS_FIXED, 0, 15) + PSQL_STARTUP + QUERY,
    },
    "session_tls": {
        "none_ssl_request": header(NONE | TLS_FIXED, 0, 1) + STARTUP_ALICE + AFTER_AUTH,
        "md5_validate": header(MD5 | TLS_FIXED, VALIDATE | ON_TLS_UPGRADE, 2) + PSQL_STARTUP + MD5_PASSWORD + AFTER_AUTH,
        "cleartext_tls12_direct": header(CLEARTEXT | TLS_FIXED, VALIDATE | TLS12 | DIRECT, 3)
        + STARTUP_ALICE + CLEARTEXT_PASSWORD + AFTER_AUTH,
        "certificate_client_cert": header(CERT | TLS_CLIENT_AUTH, CLIENT_CERT | ON_AUTHENTICATED, 4)
        + STARTUP_ALICE + AFTER_AUTH,
        "certificate_no_client_cert": header(CERT | TLS_CLIENT_AUTH, 0, 5) + STARTUP_ALICE + QUERY,
        "certificate_callback_tls12": header(CERT | TLS_CALLBACK, CLIENT_CERT | TLS12, 6) + STARTUP_ALICE + AFTER_AUTH,
        "all_hooks_slow_client": header(NONE | TLS_FIXED | 128, 31, 7) + STARTUP_32 + AFTER_AUTH * 3,
    },
}

if __name__ == "__main__":
    total = 0
    for target, seeds in CORPORA.items():
        d = os.path.join(CORPUS, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += len(data)
        print(f"{target}: {len(seeds)} seeds")
    print(f"{total} bytes in all")

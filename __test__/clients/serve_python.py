# Python drivers against `pg-gateway-native serve`: several connections at once, each with
# server-side prepared statements of the same names (psycopg's _pg3_N, asyncpg's
# __asyncpg_stmt_N__), which collide on a naively shared PGlite session.
#   python3 serve_python.py <port>
import asyncio
import sys
import threading

import asyncpg
import psycopg

port = int(sys.argv[1])
dsn = f"host=127.0.0.1 port={port} user=postgres password=postgres dbname=postgres sslmode=disable"


def psycopg_worker(n, errors):
    try:
        with psycopg.connect(dsn) as conn:
            for i in range(20):
                # prepare=True: a named server-side statement, the same name on every connection
                row = conn.execute("select %s::int * %s::int as v, %s::text as who", (i, n, f"w{n}"), prepare=True).fetchone()
                assert row == (i * n, f"w{n}"), row
                with conn.transaction():
                    conn.execute("insert into py_rows values (%s, %s)", (n, i), prepare=True)
            with conn.cursor(binary=True) as cur:
                cur.execute("select count(*) from py_rows where worker = %s", (n,), prepare=True)
                assert cur.fetchone()[0] == 20
    except Exception as err:  # noqa: BLE001
        errors.append(f"psycopg worker {n}: {err!r}")


def run_psycopg():
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table if not exists py_rows (worker int, i int)")
    errors = []
    threads = [threading.Thread(target=psycopg_worker, args=(n, errors)) for n in range(1, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise SystemExit("\n".join(errors))
    print("psycopg ok")


async def run_asyncpg():
    pool = await asyncpg.create_pool(host="127.0.0.1", port=port, user="postgres", password="postgres",
                                     database="postgres", ssl=False, min_size=5, max_size=5)
    try:
        async def one(i):
            async with pool.acquire() as conn:
                stmt = await conn.prepare("select $1::int + 1 as v, $2::text as t")
                row = await stmt.fetchrow(i, f"t{i}")
                assert (row["v"], row["t"]) == (i + 1, f"t{i}"), row
                async with conn.transaction():
                    got = [r["g"] async for r in conn.cursor("select g from generate_series(1, $1) g", 250, prefetch=50)]
                    assert got == list(range(1, 251))
        await asyncio.gather(*(one(i) for i in range(40)))
    finally:
        await pool.close()
    print("asyncpg ok")


run_psycopg()
asyncio.run(run_asyncpg())

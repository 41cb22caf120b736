# psycopg 3 against an onQuery server: text and binary cursors, server-side parameters,
# a transaction, and errors. Prints one line per check; the test compares them.
import sys, datetime, decimal, uuid, json
import psycopg

port = int(sys.argv[1])
with psycopg.connect(f"host=127.0.0.1 port={port} user=u dbname=d connect_timeout=10 sslmode=disable") as conn:
    for binary in (False, True):
        cur = conn.cursor(binary=binary)
        cur.execute("select * from items where id = %s", (7,))
        row = cur.fetchone()
        print("item", binary, row[0], row[1], row[2], row[3].isoformat())
        cur.execute("select types")
        row = cur.fetchone()
        names = [d.name for d in cur.description]
        values = dict(zip(names, row))
        print("types", binary,
              values["bool_col"], values["int8_col"], values["numeric_col"],
              values["bytea_col"].hex(), str(values["uuid_col"]), values["date_col"].isoformat(),
              values["time_col"].isoformat(), values["timestamp_col"].isoformat(),
              values["timestamptz_col"].isoformat(), values["interval_col"],
              json.dumps(values["jsonb_col"]), values["int4_array_col"], values["text_array_col"])
        cur.execute("select echo(%s::int8, %s::text, %s::float8, %s::timestamptz, %s::numeric)",
                    (2**40, "ünïcode", 0.25, datetime.datetime(2020, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc), decimal.Decimal("-1.50")))
        print("echo", binary, cur.fetchone())
        cur.execute("select gen(5000)")
        print("gen", binary, len(cur.fetchall()))
    try:
        conn.execute("select fail")
    except psycopg.errors.UndefinedTable as e:
        print("error", e.sqlstate)
    conn.rollback()
    with conn.transaction():
        print("status", conn.info.transaction_status.name)
        conn.execute("select 1")
    print("status", conn.info.transaction_status.name)

# asyncpg against an onQuery server: binary for every type, prepare(), a cursor fetched with a
# row limit inside a transaction, and errors.
import sys, asyncio, datetime, decimal, uuid
import asyncpg

async def main(port):
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="u", database="d", ssl=False)
    row = await conn.fetchrow("select * from items where id = $1", 7)
    print("item", row["id"], row["name"], row["price"], row["created"].isoformat())
    row = await conn.fetchrow("select types but int4[]")
    print("types", row["bool_col"], row["int2_col"], row["int8_col"], row["float4_col"], row["numeric_col"],
          row["bytea_col"].hex(), str(row["uuid_col"]), row["date_col"].isoformat(), row["time_col"].isoformat(),
          row["timestamp_col"].isoformat(), row["timestamptz_col"].isoformat(), row["interval_col"],
          row["json_col"], row["jsonb_col"], row["text_array_col"])
    stmt = await conn.prepare("select echo($1::int4, $2::int8, $3::float8, $4::bool, $5::timestamptz, $6::bytea, $7::text[], $8::numeric, $9::uuid, $10::date, $11::interval, $12::jsonb)")
    echoed = await stmt.fetchrow(5, 2**40, 0.5, True, datetime.datetime(2020, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc),
                                 b"\x00\x01", ["a", None], decimal.Decimal("3.25"), uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                                 datetime.date(2024, 2, 29), datetime.timedelta(days=3, seconds=5), '{"k": 1}')
    print("echo", list(echoed.values()))
    by_id = await conn.prepare("select * from items where id = $1")
    print("prepared", [(await by_id.fetchrow(i))["name"] for i in (1, 2, 3)])
    async with conn.transaction():
        cur = await (await conn.prepare("select gen($1)")).cursor(1000)
        first = await cur.fetch(300)
        second = await cur.fetch(300)
        print("cursor", len(first), len(second), first[0]["i"], second[0]["i"])
        n = 0
        async for r in conn.cursor("select gen(2500)", prefetch=400):
            n += 1
        print("iterated", n)
    try:
        await conn.fetch("select fail")
    except asyncpg.exceptions.UndefinedTableError as e:
        print("error", e.sqlstate, e.position)
    print("after", await conn.fetchval("select 1"))
    await conn.close()

asyncio.run(main(int(sys.argv[1])))

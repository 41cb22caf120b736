import sys, asyncio, psycopg, asyncpg, ssl
port = int(sys.argv[1]); tls = sys.argv[2] == '1'
def run(name, f):
    try: print(name, f())
    except Exception as e: print(name, 'ERR', type(e).__name__, str(e).splitlines()[0][:100])
sm = 'require' if tls else 'disable'
run('psycopg', lambda: psycopg.connect(f"host=127.0.0.1 port={port} user=u password=pw dbname=x sslmode={sm}" + (" channel_binding=require" if tls else ""), connect_timeout=5).execute('select 1').fetchall())
run('psycopg-wrong', lambda: psycopg.connect(f"host=127.0.0.1 port={port} user=u password=bad dbname=x sslmode={sm}", connect_timeout=5))
run('psycopg-nouser', lambda: psycopg.connect(f"host=127.0.0.1 port={port} user=nobody password=pw dbname=x sslmode={sm}", connect_timeout=5))
async def apg(pw='pw'):
    ctx = None
    if tls:
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    c = await asyncpg.connect(host='127.0.0.1', port=port, user='u', password=pw, database='x', ssl=ctx if tls else False, timeout=5)
    try:
        return await c.fetch('select 1')
    finally:
        await c.close()
run('asyncpg', lambda: asyncio.run(apg()))
run('asyncpg-wrong', lambda: asyncio.run(apg('bad')))

// A data source that is not PostgreSQL, served through `onQuery`: a JS table and a few
// generated results, understood by a handful of regular expressions (what the query tests'
// clients send). It is the kind of server the query API is for, so the tests exercise the
// API as a user would.

/** One value of every type the query API encodes, with PostgreSQL's text output of it. */
export const TYPES = [
  ['bool', true, 't'],
  ['int2', 12, '12'],
  ['int4', -34, '-34'],
  ['int8', 9007199254740993n, '9007199254740993'],
  ['float4', 1.5, '1.5'],
  ['float8', 3.141592653589793, '3.141592653589793'],
  ['numeric', '12345.678900', '12345.678900'],
  ['text', 'héllo "world"', 'héllo "world"'],
  ['varchar', 'v', 'v'],
  ['bpchar', 'c', 'c'],
  ['name', 'n', 'n'],
  ['bytea', Buffer.from([0xde, 0xad, 0xbe, 0xef]), '\\xdeadbeef'],
  ['uuid', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'],
  ['date', '2024-02-29', '2024-02-29'],
  ['time', '04:05:06.789', '04:05:06.789'],
  ['timestamp', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123456'],
  ['timestamptz', new Date('2024-01-02T03:04:05.123Z'), '2024-01-02 03:04:05.123+00'],
  ['interval', '1 year 2 mons 3 days 04:05:06', '1 year 2 mons 3 days 04:05:06'],
  ['json', { a: 1 }, '{"a":1}'],
  ['jsonb', { b: [1, 2] }, '{"b":[1,2]}'],
  ['int4[]', [1, null, 3], '{1,NULL,3}'],
  ['text[]', ['a', 'b c'], '{a,"b c"}'],
];

export const TYPE_FIELDS = TYPES.map(([type]) => ({ name: `${type.replace('[]', '_array')}_col`, type }));

export const ITEM_FIELDS = [
  { name: 'id', type: 'int4' },
  { name: 'name', type: 'text' },
  { name: 'price', type: 'float8' },
  { name: 'created', type: 'timestamptz' },
];

export const ITEMS = Array.from({ length: 100 }, (_, i) => ({
  id: i + 1,
  name: `item ${i + 1}`,
  price: (i + 1) * 1.25,
  created: new Date(Date.UTC(2024, 0, 1) + i * 86400000),
}));

const GEN_FIELDS = [
  { name: 'i', type: 'int4' },
  { name: 'label', type: 'text' },
  { name: 'half', type: 'float8' },
];

/** `$1::int4` casts give the parameter types; `echo` returns its parameters as one row. */
function castTypes(sql) {
  const types = [];
  for (const m of sql.matchAll(/\$(\d+)::([a-z0-9_]+(?:\[\])?)/gi)) types[Number(m[1]) - 1] = m[2];
  return types;
}

function* generate(n) {
  for (let i = 0; i < n; i++) yield [i, `row ${i}`, i / 2];
}

async function* generateSlowly(n, signal) {
  for (let i = 0; i < n; i++) {
    await new Promise((resolve) => setImmediate(resolve));
    if (signal.aborted) return;
    yield [i, `row ${i}`, i / 2];
  }
}

/** One statement of the mini language; `params` are the Bind values. */
function statement(sql, params, signal, log) {
  const s = sql.trim().replace(/;$/, '').trim();
  let m;
  if (/^(begin|start|commit|end|rollback|abort|set|savepoint|release|discard|deallocate)\b/i.test(s)) return undefined;
  if (/^select types$/i.test(s)) return { fields: TYPE_FIELDS, rows: [TYPES.map(([, value]) => value)] };
  // asyncpg has no built-in codec for int4[] and would look it up in pg_catalog.
  if (/^select types but int4\[\]$/i.test(s)) {
    const keep = TYPES.map(([type], i) => (type === 'int4[]' ? -1 : i)).filter((i) => i >= 0);
    return { fields: keep.map((i) => TYPE_FIELDS[i]), rows: [keep.map((i) => TYPES[i][1])] };
  }
  if ((m = /^select echo\((.*)\)$/i.exec(s))) {
    const types = castTypes(s);
    return { fields: types.map((type, i) => ({ name: `p${i + 1}`, type })), rows: [params] };
  }
  if ((m = /^select \* from items(?: where id = (\$1|\d+))?(?: limit (\d+))?$/i.exec(s))) {
    const id = m[1] === undefined ? undefined : Number(m[1] === '$1' ? params[0] : m[1]);
    let rows = id === undefined ? ITEMS : ITEMS.filter((item) => item.id === id);
    if (m[2]) rows = rows.slice(0, Number(m[2]));
    return { fields: ITEM_FIELDS, rows };
  }
  if ((m = /^select gen\((\$1|\d+)\)$/i.exec(s))) {
    return { fields: GEN_FIELDS, rows: generate(Number(m[1] === '$1' ? params[0] : m[1])) };
  }
  if ((m = /^select agen\((\d+)\)$/i.exec(s))) return { fields: GEN_FIELDS, rows: generateSlowly(Number(m[1]), signal) };
  if (/^insert into items/i.test(s)) return { command: 'INSERT', rowCount: 1 };
  if (/^select fail$/i.test(s)) {
    throw { code: '42P01', message: 'relation "nowhere" does not exist', position: '8', hint: 'There is no table.' };
  }
  if (/^select sleep$/i.test(s)) {
    // A statement that runs until cancelled, as a database driver honouring `signal` would.
    return new Promise((resolve, reject) => {
      log?.push('sleeping');
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    });
  }
  if (/^select forever$/i.test(s)) return new Promise(() => {});
  if (/^select mismatch$/i.test(s)) return { fields: ITEM_FIELDS, rows: [[1, 'short row']] };
  if (/^select overflow$/i.test(s)) return { fields: [{ name: 'n', type: 'int2' }], rows: [[1], [70000]] };
  if (/^select 1$/i.test(s)) return { fields: [{ name: '?column?', type: 'int4' }], rows: [[1]] };
  if (/^select version\(\)$/i.test(s)) return { fields: [{ name: 'version', type: 'text' }], rows: [['pg-gateway-native test']] };
  throw { code: '42601', message: `syntax error: the test server does not know "${s}"` };
}

function describe(sql) {
  const s = sql.trim().replace(/;$/, '').trim();
  if (/^select types$/i.test(s)) return { fields: TYPE_FIELDS };
  if (/^select types but int4\[\]$/i.test(s)) return { fields: TYPE_FIELDS.filter((f) => f.type !== 'int4[]') };
  if (/^select echo/i.test(s)) {
    const types = castTypes(s);
    return { paramTypes: types, fields: types.map((type, i) => ({ name: `p${i + 1}`, type })) };
  }
  if (/^select \* from items/i.test(s)) return { paramTypes: ['int4'], fields: ITEM_FIELDS };
  if (/^select a?gen/i.test(s)) return { paramTypes: ['int4'], fields: GEN_FIELDS };
  if (/^select 1$/i.test(s)) return { fields: [{ name: '?column?', type: 'int4' }] };
  if (/^select version\(\)$/i.test(s)) return { fields: [{ name: 'version', type: 'text' }] };
  return {};
}

/**
 * Options for a query server. `log` (an array) records each statement run; `describe: false`
 * leaves out onDescribe.
 */
export function queryOptions({ log, describe: withDescribe = true, ...extra } = {}) {
  return {
    authMode: 'none',
    onQuery({ sql, params, signal }) {
      log?.push(sql);
      const statements = sql.split(';').map((s) => s.trim()).filter(Boolean);
      if (statements.length > 1) return statements.map((one) => statement(one, params, signal, log));
      return statement(sql, params, signal, log);
    },
    ...(withDescribe ? { onDescribe: ({ sql }) => describe(sql) } : {}),
    ...extra,
  };
}

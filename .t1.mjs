import { DuckDBInstance, DuckDBTypeId } from '@duckdb/node-api';
const db = await DuckDBInstance.create(':memory:');
const c = await db.connect();
const show = async (sql) => {
  try {
    const p = await c.prepare(sql);
    const cols = []; for (let i = 0; i < p.columnCount; i++) cols.push(`${p.columnName(i)}:${p.columnType(i)}:${p.columnType(i).alias}`);
    const params = []; for (let i = 1; i <= p.parameterCount; i++) params.push(`${p.parameterName(i)}:${p.parameterTypeId(i)}:${p.parameterType(i)}`);
    console.log(JSON.stringify(sql), 'stmtType', p.statementType, 'cols', cols, 'params', params);
  } catch (e) { console.log(JSON.stringify(sql), 'ERR', e.message, Object.keys(e), e.constructor.name); }
};
await show('select 1 as a, $1 as b');
await show('select $1::int + 1');
await show('select $2 + $1');
await show('create table t(id int, name text)');
await c.run('create table t(id int, name text, d decimal(10,2), j json, l int[], ts timestamptz, iv interval, e struct(a int))');
await show('insert into t values ($1, $2)');
await show('select * from t where id = $1');
await show('select * from nope');
await show('select nocol from t');
await show('selec 1');
await show('begin');
await show('select 1; select 2');
await show('set memory_limit = \'1GB\'');
await show('select ?');
await show('update t set name = $1');

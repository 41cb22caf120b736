// index.d.ts: correct use compiles under `strict`, and misuse is a compile error
// (see types/usage.ts: each `@ts-expect-error` must be needed).
import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { root, run } from './helpers.mjs';

test('index.d.ts accepts correct use and rejects misuse', { timeout: 120000 }, async () => {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = await run(process.execPath, [tsc, '-p', path.join(root, '__test__', 'types', 'tsconfig.json')]);
  assert.equal(result.code, 0, `tsc reported:\n${result.stdout}${result.stderr}`);
});

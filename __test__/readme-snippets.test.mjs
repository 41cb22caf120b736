// Every JavaScript snippet of the README compiles against index.d.ts under `strict`, as a
// TypeScript user would paste it. Names a snippet uses without defining (the `socket` of a
// net.Server callback, an `engine` of the reader's) are declared in types/readme-prelude.d.ts;
// a snippet that is a hook on its own (`onMessage(data, state, connection) { ... }`) is
// compiled inside `new PostgresConnection(socket, { ... })`.
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { root, run } from './helpers.mjs';

/** The README's js blocks, each with the line it starts on. */
function snippets() {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const found = [];
  const fence = /^```(js|javascript|ts|typescript)\n([\s\S]*?)^```/gm;
  for (let match; (match = fence.exec(readme));) {
    found.push({ line: readme.slice(0, match.index).split('\n').length + 1, code: match[2] });
  }
  return found;
}

/** A hook or method written on its own, as in an options object. */
const isMember = (code) => /^(async )?\w+\([^)]*\) \{$/m.test(code.split('\n').find((l) => l.trim() && !l.trim().startsWith('//')) ?? '');

test('README snippets compile under strict TypeScript', { timeout: 180000 }, async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pggn-readme-'));
  const blocks = snippets();
  assert.ok(blocks.length >= 20, `found ${blocks.length} snippets`);
  const files = [];
  for (const [i, { line, code }] of blocks.entries()) {
    const body = isMember(code) ? `new PostgresConnection(socket, {\n${code}\n});\n` : code;
    const file = `readme-${String(i).padStart(2, '0')}-line-${line}.mts`;
    writeFileSync(path.join(dir, file), `${body}\nexport {};\n`);
    files.push(file);
  }
  copyFileSync(path.join(root, '__test__', 'types', 'readme-prelude.d.ts'), path.join(dir, 'readme-prelude.d.ts'));
  writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      strict: true,
      noEmit: true,
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      types: ['node'],
      typeRoots: [path.join(root, 'node_modules', '@types')],
      baseUrl: '.',
      paths: { 'pg-gateway-native': [path.join(root, 'index.d.ts')] },
    },
    files: ['readme-prelude.d.ts', ...files],
  }));
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = await run(process.execPath, [tsc, '-p', path.join(dir, 'tsconfig.json')]);
  assert.equal(result.code, 0, `tsc reported (file names carry the README line):\n${result.stdout}${result.stderr}`);
});

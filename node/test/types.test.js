'use strict';
// index.d.ts compiles and describes every method: `tsc --noEmit` over test/types-check.ts.

const { it } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

it('the TypeScript declarations type-check a program using every method', () => {
  const pkg = path.join(__dirname, '..');
  let tsc;
  try {
    tsc = require.resolve('typescript/bin/tsc', { paths: [pkg] });
  } catch {
    assert.fail('typescript is not installed: run `npm install` in node/ (make test-node does)');
  }
  const result = spawnSync(process.execPath, [tsc, '--noEmit', '-p', path.join(__dirname, 'tsconfig.json')], {
    cwd: pkg,
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, `tsc failed:\n${result.stdout}${result.stderr}`);
});

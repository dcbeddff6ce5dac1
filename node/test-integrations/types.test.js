'use strict';
// memsilo/langchain and memsilo/langgraph declarations compile: tsc --noEmit over types-check.ts.
const { it } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

it('the adapter declarations type-check a program using them', () => {
  const pkg = path.join(__dirname, '..');
  const tsc = require.resolve('typescript/bin/tsc', { paths: [pkg] });
  const result = spawnSync(process.execPath, [tsc, '--noEmit', '-p', path.join(__dirname, 'tsconfig.json')], { cwd: pkg, encoding: 'utf8' });
  assert.equal(result.status, 0, `tsc failed:\n${result.stdout}${result.stderr}`);
});

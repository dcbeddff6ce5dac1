#!/usr/bin/env node
// Builds the native addon with cargo (debug unless --release) and copies it next to
// index.js as memsilo.<platform>-<arch>.node, the name index.js loads.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const release = process.argv.includes('--release');
const root = path.resolve(__dirname, '..', '..');
const args = ['build', '-p', 'memsilo-node'];
if (release) args.push('--release');
try {
  execFileSync('cargo', args, { cwd: root, stdio: 'inherit' });
} catch (err) {
  console.error(`memsilo: \`cargo ${args.join(' ')}\` failed${err.status ? ` (exit ${err.status})` : `: ${err.message}`}`);
  process.exit(1);
}

const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
const libName = {
  win32: 'memsilo_node.dll',
  darwin: 'libmemsilo_node.dylib',
}[process.platform] || 'libmemsilo_node.so';
const built = path.join(targetDir, release ? 'release' : 'debug', libName);
const dest = path.join(__dirname, '..', `memsilo.${process.platform}-${process.arch}.node`);
// Copy to a temporary name and rename, so a running process never sees a half-written file.
fs.copyFileSync(built, `${dest}.tmp`);
fs.renameSync(`${dest}.tmp`, dest);
console.log(`built ${path.relative(process.cwd(), dest)}`);

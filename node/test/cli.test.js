'use strict';
// `npx memsilo ...` (bin/memsilo.js): the bundled server's command line, its exit codes,
// a clean stop on SIGINT, and data that outlives the process.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const memsilo = require('..');
const { startServer } = require('../test-support/kit.js');

const BIN = path.join(__dirname, '..', 'bin', 'memsilo.js');

describe('memsilo command', () => {
  it('prints usage for --help and exits 0', () => {
    const r = spawnSync(process.execPath, [BIN, '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /usage: memsilo \[serve\]/);
  });

  it('exits 2 on an unknown command', () => {
    const r = spawnSync(process.execPath, [BIN, 'frobnicate'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command/);
  });

  it('stops on SIGINT with exit 0; what it stored is there for the next server and for open()', async () => {
    const first = await startServer();
    const admin = await memsilo.connect(first.url, { apiKey: first.adminKey });
    await admin.createNamespace('durable');
    const m = await admin.storeMemory('durable', 'written through the server');
    assert.deepEqual(await first.stop('SIGINT'), { code: 0, signal: null });

    const second = await startServer({ data: first.data });
    const again = await memsilo.connect(second.url, { apiKey: second.adminKey });
    assert.equal((await again.getMemory('durable', m.id)).content, 'written through the server');
    assert.deepEqual(await second.stop(), { code: 0, signal: null });

    const local = memsilo.open(first.data);
    const hits = await local.recall('durable', 'server');
    assert.deepEqual(hits.map((h) => h.id), [m.id]);
  });
});

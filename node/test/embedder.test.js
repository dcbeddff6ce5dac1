'use strict';
// The default static embedding model out of the box: installed into the user cache with
// `npx memsilo models pull`, then used by open() with no configuration.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const BIN = path.join(__dirname, '..', 'bin', 'memsilo.js');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(__dirname, '..', '..', 'target');
const MODEL = path.join(TARGET, 'models', 'potion-base-8M');

const GUIDE = `
const memsilo = require(${JSON.stringify(path.join(__dirname, '..'))});
(async () => {
  const db = memsilo.open(process.argv[1]);
  await db.createNamespace('acme');
  for (const t of ['Q3 roadmap: Omega in Sept', 'Hiring 4 ML engineers', 'Budget: $2.4M allocated']) {
    await db.storeMemory('acme', t);
  }
  console.log(JSON.stringify({
    recruiting: (await db.recall('acme', 'recruiting'))[0].content,
    money: (await db.recall('acme', 'how much money do we have'))[0].content,
    embedder: (await db.getNamespace('acme')).embedder,
  }));
})();
`;

describe('default embedder', () => {
  it('uses a model pulled into the cache, with no configuration', () => {
    assert.ok(fs.existsSync(path.join(MODEL, 'model.safetensors')), `${MODEL} missing: run make models`);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'memsilo-embed-'));
    const env = { ...process.env, MEMSILO_CACHE_DIR: path.join(tmp, 'cache'), MEMSILO_OFFLINE: '1' };
    delete env.MEMSILO_MODEL_DIR;
    delete env.MEMSILO_EMBEDDER;
    const pulled = spawnSync(process.execPath, [BIN, 'models', 'pull', 'potion-base-8M', '--from', MODEL],
      { env, encoding: 'utf8' });
    assert.equal(pulled.status, 0, pulled.stderr);
    const ran = spawnSync(process.execPath, ['-e', GUIDE, path.join(tmp, 'data')], { env, encoding: 'utf8' });
    assert.equal(ran.status, 0, ran.stderr);
    assert.deepEqual(JSON.parse(ran.stdout), {
      recruiting: 'Hiring 4 ML engineers',
      money: 'Budget: $2.4M allocated',
      embedder: 'potion-base-8M',
    });
    fs.rmSync(tmp, { recursive: true, force: true });
  });
});

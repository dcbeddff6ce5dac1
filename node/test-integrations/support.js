'use strict';
// Shared by the LangChain.js suites: a root handle per mode (in-process, and a real server) and
// tenants whose adapters are built from keys scoped to one namespace; a deterministic embedder.
const crypto = require('node:crypto');
const memsilo = require('..');
const { tmpdir, startServer } = require('../test-support/kit.js');

const roots = {};
let server;

async function root(mode) {
  if (!roots[mode]) {
    if (mode === 'local') roots[mode] = memsilo.open(tmpdir());
    else {
      server = await startServer();
      roots[mode] = await memsilo.connect(server.url, { apiKey: server.adminKey });
    }
  }
  return roots[mode];
}

async function stopServer() {
  if (server) await server.stop();
}

/** A fresh namespace and a handle on a key scoped to it alone. */
async function newTenant(mode) {
  const db = await root(mode);
  const namespace = `tenant_${crypto.randomBytes(5).toString('hex')}`;
  await db.createNamespace(namespace);
  const key = await db.createKey(`${namespace}_key`, { namespaces: [[namespace, 'write']] });
  return { namespace, handle: await db.scoped(key.key) };
}

/** Character counts hashed into `dims` buckets: texts sharing letters are near. */
class CharEmbeddings {
  constructor(dims = 128) {
    this.dims = dims;
  }
  async embedQuery(text) {
    const v = new Array(this.dims).fill(0);
    for (const ch of text) v[ch.codePointAt(0) % this.dims] += 1;
    if (v.every((x) => x === 0)) v[0] = 1;
    return v;
  }
  async embedDocuments(texts) {
    return Promise.all(texts.map((t) => this.embedQuery(t)));
  }
}

const MODES = ['local', 'remote'];

module.exports = { root, stopServer, newTenant, CharEmbeddings, MODES };

'use strict';
// connect() with an array of servers (a cluster's nodes): a dead first URL is skipped; a bad
// entry is invalid_argument naming urls[i].

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');

const memsilo = require('..');
const { freePort, startServer } = require('../test-support/kit.js');

describe('connect with several URLs', () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    if (server) await server.stop();
  });

  it('skips a server that cannot be reached', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const db = await memsilo.connect([dead, server.url], { apiKey: server.adminKey });
    await db.createNamespace('urls');
    const stored = await db.storeMemory('urls', 'reached through the second URL');
    assert.equal((await db.getMemory('urls', stored.id)).content, 'reached through the second URL');
  });

  it('names a bad entry', async () => {
    await assert.rejects(memsilo.connect([server.url, 'nope'], { apiKey: server.adminKey }), (err) => {
      assert.ok(err instanceof memsilo.InvalidArgumentError, String(err));
      assert.match(err.message, /urls\[1\]/);
      return true;
    });
  });
});

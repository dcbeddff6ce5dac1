'use strict';
// The JS surface: every core operation has a method, options in either case, typed-array
// vectors, an embeddingFunction, tenants, members, keys, policies and the graph.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');

const memsilo = require('..');
const { tmpdir } = require('../test-support/kit.js');

const camel = (op) => (op === 'whoami' ? 'whoami' : op.replace(/_([a-z])/g, (_, c) => c.toUpperCase()));

describe('API surface', () => {
  it('has a method for every operation of the core table', () => {
    assert.ok(memsilo.OPERATIONS.length >= 30, `${memsilo.OPERATIONS.length} operations`);
    const db = memsilo.open(tmpdir());
    const missing = memsilo.OPERATIONS.filter((op) => typeof db[camel(op)] !== 'function');
    assert.deepEqual(missing, []);
  });

  it('accepts camelCase and snake_case options alike and returns wire records', async () => {
    const db = memsilo.open(tmpdir());
    await db.createNamespace('cases');
    const a = await db.storeMemory('cases', { content: 'camel', agentId: 'customer-1', importance: 0.7, metadata: { someKey: 1 } });
    const b = await db.storeMemory('cases', { content: 'snake', agent_id: 'customer-2', importance: 0.2 });
    assert.equal(a.agent_id, 'customer-1');
    assert.equal(b.agent_id, 'customer-2');
    // User data keeps its own keys.
    assert.deepEqual(a.metadata, { someKey: 1 });

    const byCamel = await db.recall('cases', 'camel', { agentId: 'customer-1', topK: 10 });
    const bySnake = await db.recall('cases', 'camel', { agent_id: 'customer-1', top_k: 10 });
    assert.deepEqual(byCamel.map((h) => h.id), [a.id]);
    assert.deepEqual(bySnake.map((h) => h.id), [a.id]);
    const important = await db.recall('cases', 'anything', { minImportance: 0.5 });
    assert.deepEqual(important.map((h) => h.id), [a.id]);
    // Dates go over as RFC 3339 times.
    assert.equal((await db.recall('cases', 'camel', { since: new Date(Date.now() - 60_000) })).length, 2);
    assert.equal((await db.recall('cases', 'camel', { until: new Date(Date.now() - 60_000) })).length, 0);

    const forgotten = await db.batchForget('cases', { belowImportance: 0.5 });
    assert.deepEqual(forgotten, { forgotten: 1 });
    await assert.rejects(db.getMemory('cases', b.id), { code: 'not_found' });
    const deleted = await db.deleteMemory('cases', a.id);
    assert.deepEqual(deleted, { id: a.id, namespace: 'cases', deleted: true });
  });

  it('takes typed arrays as vectors and stores a batch all or nothing', async () => {
    const db = memsilo.open(tmpdir());
    await db.createNamespace('vectors', { dimensions: 3 });
    const ids = await db.storeMemories('vectors', [
      { content: 'x axis', embedding: new Float32Array([1, 0, 0]) },
      { content: 'y axis', embedding: new Float64Array([0, 1, 0]) },
      { content: 'z axis', embedding: [0, 0, 1] },
    ]);
    assert.equal(ids.length, 3);
    const hits = await db.recall('vectors', null, { vector: new Float32Array([0.1, 0.9, 0]), topK: 1 });
    assert.deepEqual(hits.map((h) => h.content), ['y axis']);

    // One bad vector fails the whole batch.
    await assert.rejects(
      db.storeMemories('vectors', [
        { content: 'ok', embedding: [1, 1, 0] },
        { content: 'wrong size', embedding: [1, 0] },
      ]),
      { code: 'invalid_argument' },
    );
    assert.equal((await db.getNamespace('vectors')).memory_count, 3);
  });

  it('computes vectors with embeddingFunction, also on scoped handles', async () => {
    const calls = [];
    // A toy embedding: counts of the letters a, b, c.
    const embeddingFunction = async (texts) => {
      calls.push(texts);
      return texts.map((t) => Float32Array.from(['a', 'b', 'c'].map((ch) => t.split(ch).length - 1 + 0.01)));
    };
    const db = memsilo.open(tmpdir(), { embeddingFunction });
    await db.createNamespace('embedded');
    await db.storeMemory('embedded', 'aaaa');
    await db.storeMemories('embedded', ['bbbb', { content: 'cccc' }, { content: 'given', embedding: [1, 1, 1] }]);
    assert.deepEqual(calls, [['aaaa'], ['bbbb', 'cccc']]);
    const ns = await db.getNamespace('embedded');
    assert.equal(ns.dimensions, 3);
    assert.equal(ns.embedder, 'caller');

    const key = await db.createKey('emb', { namespaces: [['embedded', 'read']] });
    const reader = await db.scoped(key.key);
    const hits = await reader.recall('embedded', 'bb', { topK: 1 });
    assert.deepEqual(hits.map((h) => h.content), ['bbbb']);
    assert.deepEqual(calls.at(-1), ['bb']);

    const broken = memsilo.open(tmpdir(), { embeddingFunction: async () => [] });
    await broken.createNamespace('broken');
    await assert.rejects(broken.storeMemory('broken', 'text'), TypeError);
    assert.throws(() => memsilo.open(tmpdir(), { embeddingFunction: 'nope' }), TypeError);
  });

  it('manages policies, tenants, members and keys', async () => {
    const db = memsilo.open(tmpdir());
    await db.createNamespace('policy-ns', { policy: { decayRate: 0.5 } });
    assert.deepEqual(await db.getMemoryPolicy('policy-ns'), { decay_rate: 0.5, min_importance: 0, ttl_default: null });
    const set = await db.setMemoryPolicy('policy-ns', { decayRate: 0.01, min_importance: 0.1, ttlDefault: 3600 });
    assert.deepEqual(set, { decay_rate: 0.01, min_importance: 0.1, ttl_default: 3600 });

    const parent = await db.createTenant('parent_co', { settings: { region: 'eu' }, features: ['graph'] });
    assert.match(parent.message, /created/i);
    const child = await db.createTenant('child_co', { parentId: parent.id });
    assert.equal(child.parent_id, parent.id);
    const children = await db.listTenants({ parentId: parent.id });
    assert.deepEqual(children.tenants.map((t) => t.name), ['child_co']);
    assert.equal(children.total_count, 1);
    const updated = await db.updateTenant(child.id, { quotas: { maxMembers: 2 }, settings: { tier: 'gold' } });
    assert.equal(updated.quotas.max_members, 2);
    assert.deepEqual(updated.settings, { tier: 'gold' });
    await assert.rejects(db.deleteTenant(parent.id), { code: 'conflict' });

    const alice = await db.addMember(child.id, 'alice@example.com', 'editor', { team: 'ml' });
    await db.addMember(child.id, 'bob@example.com', 'viewer');
    await assert.rejects(db.addMember(child.id, 'carol@example.com', 'viewer'), { code: 'quota_exceeded' });
    const editors = await db.listMembers(child.id, { role: 'editor' });
    assert.deepEqual(editors.members.map((m) => m.user_identifier), ['alice@example.com']);
    assert.deepEqual(editors.members[0].metadata, { team: 'ml' });

    await db.createNamespace('child-ns', { tenantId: child.id });
    const memberKey = await db.createKey('alice-key', { tenantId: child.id, memberId: alice.member_id });
    const asAlice = await db.scoped(memberKey.key);
    assert.deepEqual(await asAlice.whoami(), { principal: 'member', key_id: memberKey.id, tenant_id: child.id, role: 'editor' });
    await asAlice.storeMemory('child-ns', 'written by an editor');
    const removed = await db.removeMember(child.id, alice.member_id);
    assert.equal(removed.member_id, alice.member_id);
    await assert.rejects(asAlice.recall('child-ns', 'editor'), { code: 'unauthorized' });

    const nsKey = await db.createKey('ns-key', { namespaces: [['child-ns', 'read']], expiresAt: new Date(Date.now() + 3_600_000) });
    assert.ok(nsKey.expires_at);
    const keys = await db.listKeys({ tenantId: child.id });
    assert.ok(keys.some((k) => k.id === nsKey.id));
    assert.ok(keys.every((k) => !('key' in k)), 'listKeys must not return secrets');
    assert.deepEqual((await db.listKeys({ namespace: 'child-ns' })).map((k) => k.id), [nsKey.id]);
    await assert.rejects(db.revokeKey(nsKey.id, { namespace: 'other-ns' }), { code: 'not_found' });
    const rotated = await db.rotateKey(nsKey.id);
    assert.notEqual(rotated.key, nsKey.key);
    await assert.rejects(db.scoped(nsKey.key), { code: 'unauthorized' });
    assert.equal((await (await db.scoped(rotated.key)).whoami()).principal, 'scoped');

    const gone = await db.deleteTenant(child.id);
    assert.ok(gone.deleted_at);
    await assert.rejects(db.getNamespace('child-ns'), { code: 'not_found' });
  });

  it('exports a namespace as lines and imports them elsewhere, naming a bad line', async () => {
    const db = memsilo.open(tmpdir());
    await db.createNamespace('src');
    await db.storeMemories('src', Array.from({ length: 12 }, (_, i) => ({ id: `m${i}`, content: `note ${i}`, embedding: [i, 1, 0] })));
    const lines = [];
    for await (const line of db.exportNamespace('src', { pageSize: 5 })) lines.push(line);
    assert.equal(lines[0].kind, 'namespace');
    assert.equal(lines.filter((l) => l.kind === 'memory').length, 12);
    await db.createNamespace('dst');
    const done = await db.importNamespace('dst', lines.map((l) => JSON.stringify(l)), { batchSize: 4 });
    assert.equal(done.memories, 12);
    assert.equal((await db.getMemory('dst', 'm3')).content, 'note 3');
    await db.createNamespace('dst2', { dimensions: 3 });
    const bad = [...lines.slice(0, 3), { kind: 'memory', id: 'x', content: 'y', vector: [1] }];
    await assert.rejects(db.importNamespace('dst2', bad), (e) => e.code === 'invalid_argument' && e.message.startsWith('line 4: vector has 1 dimensions'));
  });

  it('imports a text namespace so that its copy takes text and recalls it', async () => {
    const db = memsilo.open(tmpdir());
    await db.createNamespace('notes');
    const texts = ['the cat sleeps on the warm kitchen mat', 'quarterly revenue grew in europe'];
    await db.storeMemories('notes', texts.map((content, i) => ({ id: `t${i}`, content })));
    const lines = [];
    for await (const line of db.exportNamespace('notes')) lines.push(JSON.stringify(line));
    assert.equal(JSON.parse(lines[0]).embedder, (await db.getNamespace('notes')).embedder);
    await db.createNamespace('copy');
    // Batches of one line: the memories' batches come after the namespace line's.
    assert.equal((await db.importNamespace('copy', lines, { batchSize: 1 })).memories, 2);
    await db.storeMemory('copy', 'backups run every night at two');
    const hits = await db.recall('copy', 'the cat on the kitchen mat', { topK: 3 });
    assert.equal(hits[0].id, 't0');
  });

  it('builds and walks the knowledge graph', async () => {
    const db = memsilo.open(tmpdir());
    await db.createNamespace('graph');
    const alice = await db.addEntity('graph', 'Alice', { type: 'person', properties: { title: 'CTO' } });
    await db.addEntity('graph', 'Acme', { type: 'org' });
    await db.addEntity('graph', 'Omega', { type: 'product' });
    const worksAt = await db.addRelation('graph', 'Alice', 'Acme', 'works_at', { weight: 2 });
    await db.addRelation('graph', 'Acme', 'Omega', 'builds');
    assert.equal(worksAt.type, 'works_at');
    assert.equal(worksAt.weight, 2);

    const got = await db.getEntity('graph', 'Alice');
    assert.equal(got.id, alice.id);
    assert.deepEqual(got.properties, { title: 'CTO' });
    const near = await db.neighbors('graph', 'Alice', { depth: 1 });
    assert.deepEqual(near.entities.map((e) => e.name).sort(), ['Acme', 'Alice']);
    const far = await db.neighbors('graph', 'Alice', { depth: 2 });
    assert.deepEqual(far.entities.map((e) => e.name).sort(), ['Acme', 'Alice', 'Omega']);
    const sub = await db.subgraph('graph', 'Acme', { depth: 1 });
    assert.equal(sub.relations.length, 2);
    const path = await db.shortestPath('graph', 'Alice', 'Omega');
    assert.deepEqual(path.entities.map((e) => e.name), ['Alice', 'Acme', 'Omega']);

    const rel = await db.deleteRelation('graph', worksAt.id);
    assert.deepEqual(rel, { id: worksAt.id, deleted: true });
    await assert.rejects(db.shortestPath('graph', 'Alice', 'Omega'), { code: 'not_found' });
    const ent = await db.deleteEntity('graph', 'Omega');
    assert.equal(ent.name, 'Omega');
    await assert.rejects(db.getEntity('graph', 'Omega'), { code: 'not_found' });
  });
});

describe('sessions', () => {
  it('starts, fills, ends and lists sessions with their memories', async () => {
    const db = memsilo.open(tmpdir());
    await db.createNamespace('chat');
    const s = await db.startSession('chat', { id: 's-1', agentId: 'bot', metadata: { channel: 'web' } });
    assert.equal(s.agent_id, 'bot');
    assert.equal(s.ended_at, null);
    await assert.rejects(db.startSession('chat', { id: 's-1' }), { code: 'conflict' });
    await db.storeMemory('chat', 'asked about SSO', { sessionId: 's-1' });
    await db.storeMemory('chat', 'unrelated');
    const page = await db.sessionMemories('chat', 's-1');
    assert.deepEqual(page.memories.map((m) => m.content), ['asked about SSO']);
    const ended = await db.endSession('chat', 's-1', { summary: 'SSO' });
    assert.equal(ended.summary, 'SSO');
    assert.equal(ended.memory_count, 1);
    const other = await db.startSession('chat');
    const active = await db.listSessions('chat', { activeOnly: true });
    assert.deepEqual(active.sessions.map((x) => x.id), [other.id]);
    assert.equal((await db.listSessions('chat')).total_count, 2);
    await assert.rejects(db.getSession('chat', 'nope'), { code: 'not_found' });
  });
});

describe('memory model', () => {
  it('stores by caller id (upsert), gets many and updates partially', async () => {
    const db = memsilo.open(tmpdir());
    await db.createNamespace('docs');
    const first = await db.storeMemory('docs', 'first', { id: 'doc/1', sessionId: 's-1', metadata: { a: 1 } });
    assert.equal(first.id, 'doc/1');
    assert.equal(first.session_id, 's-1');
    assert.equal(first.memory_type, 'episodic');
    const again = await db.storeMemory('docs', { id: 'doc/1', content: 'second', memoryType: 'semantic' });
    assert.equal(again.created_at, first.created_at);
    assert.equal((await db.getNamespace('docs')).memory_count, 1);
    await assert.rejects(
      db.storeMemories('docs', [{ id: 'x', content: 'a' }, { id: 'x', content: 'b' }]),
      { code: 'invalid_argument', field: 'memories[1].id' },
    );
    const got = await db.getMemories('docs', ['absent', 'doc/1'], { includeVectors: true });
    assert.deepEqual(got.map((m) => m.id), ['doc/1']);
    assert.ok(got[0].vector.length > 0);
    const updated = await db.updateMemory('docs', 'doc/1', { metadata: { tier: 'gold' }, importance: 0.1 });
    assert.deepEqual(updated.metadata, { tier: 'gold' });
    assert.equal(updated.content, 'second');
    await assert.rejects(db.updateMemory('docs', 'absent', { importance: 0.2 }), { code: 'not_found' });
  });
});

describe('listing and filters', () => {
  it('pages by cursor, counts and filters recall and forget', async () => {
    const db = memsilo.open(tmpdir());
    await db.createNamespace('l');
    await db.storeMemories('l', Array.from({ length: 9 }, (_, i) => ({
      id: `m${i}`, content: `note ${i}`, metadata: { n: i }, sessionId: `s${i % 2}`,
    })));
    const seen = [];
    let cursor = null;
    do {
      const page = await db.listMemories('l', { limit: 4, cursor, orderBy: 'created_at' });
      seen.push(...page.memories.map((m) => m.id));
      cursor = page.next_cursor;
    } while (cursor);
    assert.deepEqual(seen.sort(), Array.from({ length: 9 }, (_, i) => `m${i}`));
    assert.equal(await db.countMemories('l'), 9);
    // Filter keys are user data: `metadata.n` and `$gte` go over as written.
    assert.equal(await db.countMemories('l', { session_id: 's0', 'metadata.n': { $gte: 4 } }), 3);
    const hits = await db.recall('l', 'note', { topK: 20, filter: { 'metadata.n': { $in: [1, 2] } } });
    assert.deepEqual(hits.map((h) => h.id).sort(), ['m1', 'm2']);
    await assert.rejects(db.countMemories('l', { 'metadata.n': { $bogus: 1 } }), {
      code: 'invalid_argument', field: 'filter.metadata.n.$bogus',
    });
    await assert.rejects(db.batchForget('l', { filter: { sessionId: 's1' } }), {
      code: 'invalid_argument', field: 'filter.sessionId',
    });
    assert.deepEqual(await db.batchForget('l', { filter: { session_id: 's1' } }), { forgotten: 4 });
  });
});

// Compiled by `tsc --noEmit -p test/tsconfig.json` (types.test.js): every method of the
// package with its documented argument shapes, and the types of what comes back.
import * as memsilo from 'memsilo';
import type {
  AuditPage,
  AuditVerification,
  ApiKey,
  CreatedKey,
  DecayPolicy,
  Entity,
  GraphPath,
  GraphView,
  Memory,
  MemoryType,
  MemoryPage,
  NamespaceList,
  Member,
  Memsilo,
  Namespace,
  RecallHit,
  Tenant,
  WhoAmI,
} from 'memsilo';

async function everyMethod(): Promise<void> {
  const db: Memsilo = memsilo.open('./data', {
    embeddingFunction: async (texts: string[]) => texts.map(() => new Float32Array(8)),
  });
  const remote: Memsilo = await memsilo.connect('http://127.0.0.1:3300', { apiKey: 'msk_x' });
  const scoped: Memsilo = await remote.scoped('msk_y');
  const who: WhoAmI = await scoped.whoami();
  if (who.principal === 'scoped') who.namespaces.forEach((g) => g.access satisfies 'read' | 'write');

  const ns: Namespace = await db.createNamespace('tenant-acme', { tenantId: 't', policy: { decayRate: 0.1 }, dimensions: 8, existOk: true });
  await db.createNamespace('tenant-b', { tenant_id: 't', exist_ok: false });
  const names: string[] = (await db.listNamespaces({ tenantId: 't', offset: 0, limit: 10 })).map((n) => n.name);
  const listed: NamespaceList = await db.listNamespaces({ limit: 10 });
  const after: NamespaceList = await db.listNamespaces({ cursor: listed.next_cursor ?? undefined });
  const more: [number, string | null] = [after.total_count, after.next_cursor];
  const one: Namespace = await db.getNamespace(ns.name);
  const gone: { name: string; deleted_at: string } = await db.deleteNamespace(one.name);
  const policy: DecayPolicy = await db.getMemoryPolicy('tenant-acme');
  await db.setMemoryPolicy('tenant-acme', { decay_rate: policy.decay_rate, minImportance: 0.1, ttlDefault: null });

  const m: Memory = await db.storeMemory('tenant-acme', {
    content: 'text',
    importance: 0.9,
    tags: ['a'],
    metadata: { k: 1 },
    agentId: 'customer',
    ttl: 60,
    embedding: new Float32Array(8),
    entities: ['Acme'],
  });
  await db.storeMemory(null, 'just text', { importance: 0.5 });
  const ids: string[] = await db.storeMemories('tenant-acme', [{ content: 'a', embedding: [1, 2] }, 'b']);
  const hits: RecallHit[] = await db.recall('tenant-acme', 'query', {
    topK: 5,
    agentId: 'customer',
    tags: ['a'],
    minImportance: 0.2,
    since: new Date(),
    until: '2030-01-01T00:00:00Z',
    expand: 1,
  });
  await db.recall('tenant-acme', null, { vector: new Float64Array(8), top_k: 3 });
  const score: number = hits[0].score;
  const got: Memory = await db.getMemory('tenant-acme', m.id);
  await db.storeMemory('tenant-acme', 'v1', { id: 'doc-1', memoryType: 'semantic', sessionId: 's-1' });
  const many: Memory[] = await db.getMemories('tenant-acme', ['doc-1'], { includeVectors: true });
  const kind: MemoryType = many[0].memory_type;
  const session: memsilo.Session = await db.startSession('tenant-acme', { id: 's-1', agentId: 'bot' });
  const ended: string | null = (await db.endSession('tenant-acme', session.id, { summary: 'done' })).ended_at;
  const count: number = (await db.getSession('tenant-acme', 's-1')).memory_count;
  const sessions: memsilo.SessionPage = await db.listSessions('tenant-acme', { activeOnly: true, limit: 10 });
  const inSession: Memory[] = (await db.sessionMemories('tenant-acme', 's-1', { limit: 5 })).memories;
  const changed: Memory = await db.updateMemory('tenant-acme', 'doc-1', {
    content: 'v2',
    metadata: { a: 1 },
    replace: true,
    memory_type: 'working',
  });
  console.log(kind, changed.updated_at);
  const page: MemoryPage = await db.listMemories('tenant-acme', {
    filter: { 'metadata.tier': { $in: ['gold'] } },
    orderBy: 'importance',
    descending: true,
    limit: 10,
    cursor: null,
    includeVectors: false,
  });
  const next: string | null = page.next_cursor;
  const total: number = await db.countMemories('tenant-acme', { session_id: 's-1' });
  await db.recall('tenant-acme', 'q', { filter: { tags: { $contains: 'x' } }, sessionId: 's', memoryType: 'episodic' });
  await db.batchForget('tenant-acme', { filter: { session_id: 's-1' } });
  console.log(next, total);
  const del: { deleted: true } = await db.deleteMemory('tenant-acme', got.id);
  const forgot: number = (await db.batchForget('tenant-acme', { ids, agentId: 'c', tags: ['a'], before: new Date(), belowImportance: 0.1 })).forgotten;

  const t: Tenant = await db.createTenant('acme_corp', { quotas: { qpsLimit: 10, storage_quota_bytes: 1e9 }, isolationMode: 'hybrid', settings: {}, features: ['x'], tags: ['y'] });
  const t2: Tenant = await db.getTenant(t.id);
  const list: Tenant[] = (await db.listTenants({ status: 'active', parentId: t.id, offset: 0, limit: 5 })).tenants;
  await db.updateTenant(t2.id, { status: 'suspended', quotas: { maxMembers: 3 } });
  await db.deleteTenant(t2.id);
  const member: Member = await db.addMember(t.id, 'a@x.com', 'editor', { team: 'ml' });
  await db.addMember(t.id, 'b@x.com', 'viewer');
  const members: Member[] = (await db.listMembers(t.id, { role: 'admin', offset: 0, limit: 2 })).members;
  await db.removeMember(t.id, member.member_id);

  const key: CreatedKey = await db.createKey('k', { namespaces: [['tenant-acme', 'write'], { namespace: 'n', access: 'read' }], tenantId: t.id, role: 'viewer', memberId: member.member_id, expiresAt: new Date() });
  const keys: ApiKey[] = await db.listKeys({ tenantId: t.id });
  const revoked: boolean = (await db.revokeKey(key.id)).revoked;
  const secret: string = (await db.rotateKey(key.id)).key;
  const audit: AuditPage = await db.listAudit(t.id, { since: new Date(), until: '2030-01-01T00:00:00Z', actor: key.id, action: 'create_key', cursor: '3', limit: 10 });
  const refused: string[] = audit.entries.filter((x) => x.result === 'refused').map((x) => x.request_id);
  const verified: AuditVerification = await db.verifyAudit('instance');
  const brokenAt: number | undefined = verified.first_broken?.seq;

  const e: Entity = await db.addEntity('g', 'Alice', { type: 'person', properties: { a: 1 } });
  const r = await db.addRelation('g', 'Alice', 'Acme', 'works_at', { weight: 1, properties: {} });
  await db.getEntity('g', e.name, { type: 'person' });
  const view: GraphView = await db.neighbors('g', 'Alice', { depth: 2, type: 'works_at' });
  await db.subgraph('g', 'Alice');
  const path: GraphPath = await db.shortestPath('g', 'Alice', 'Acme');
  await db.deleteEntity('g', 'Alice', { type: 'person' });
  await db.deleteRelation('g', r.id);

  const exitCode: number = await memsilo.serve(['serve', '--data', './data']);
  const ops: readonly string[] = memsilo.OPERATIONS;
  void [refused, brokenAt, names, gone, score, del, forgot, list, members, keys, revoked, secret, view, path, exitCode, ops];
}

function errors(err: unknown): string | undefined {
  if (err instanceof memsilo.RateLimitedError) return `retry in ${err.retryAfter ?? 1}s`;
  if (err instanceof memsilo.MemsiloError) {
    const code: memsilo.ErrorCode = err.code;
    const status: number = err.status;
    return `${code} ${status} ${err.namespace ?? ''} ${err.field ?? ''} ${err.tenantId ?? ''}`;
  }
  return undefined;
}

// The declarations are precise, not `any`: each of these must be a type error.
async function mistakes(db: Memsilo): Promise<void> {
  // @ts-expect-error no such method
  await db.storeMemorys('ns', []);
  // @ts-expect-error content is required
  await db.storeMemory('ns', { importance: 1 });
  // @ts-expect-error roles are admin, editor or viewer
  await db.addMember('t', 'a@x.com', 'owner');
  // @ts-expect-error recall resolves to hits, not a string
  const s: string = await db.recall('ns', 'q');
  // @ts-expect-error connect needs an apiKey
  await memsilo.connect('http://127.0.0.1:3300', {});
  void s;
}

void everyMethod;
void mistakes;
void errors;

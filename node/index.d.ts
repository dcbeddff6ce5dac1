// Types of the `memsilo` package. Records are plain objects exactly as the core returns them
// (snake_case fields, as on the wire); option objects accept camelCase or snake_case keys.

/** A vector: a plain array or any typed array (Float32Array, Float64Array, ...). */
export type Vector = number[] | ArrayLike<number>;
/** A time: an RFC 3339 string or a Date. */
export type Time = string | Date;
export type JsonObject = { [key: string]: unknown };

/** Computes one vector per text; used by storeMemory/storeMemories/recall when set. */
export type EmbeddingFunction = (texts: string[]) => Promise<Vector[]> | Vector[];

export type ErrorCode =
  | 'invalid_argument'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'quota_exceeded'
  | 'rate_limited'
  | 'payload_too_large'
  | 'internal'
  | 'method_not_allowed';

export interface MemsiloErrorInit {
  code?: ErrorCode;
  status?: number;
  retryAfter?: number;
  namespace?: string;
  field?: string;
  tenantId?: string;
  line?: number;
  imported?: ImportSummary;
  cause?: unknown;
  causes?: string[];
}

/** Every error memsilo raises. `code` is a stable code of the error table (docs/src/api/errors.md), `status` its HTTP status. */
export class MemsiloError extends Error {
  constructor(message: string, init?: MemsiloErrorInit);
  readonly code: ErrorCode;
  readonly status: number;
  /** Seconds to wait, for `rate_limited`. */
  readonly retryAfter?: number;
  /** The namespace refused, for `forbidden` on a namespace. */
  readonly namespace?: string;
  /** The offending field, for `invalid_argument` and `payload_too_large`. */
  readonly field?: string;
  /** The tenant, for `quota_exceeded` and `rate_limited`. */
  readonly tenantId?: string;
  /** The line of an import's text the error names (`line 12: ...`). */
  readonly line?: number;
  /** For an import that stopped: what it wrote before the failure (the batches before the failing one). */
  readonly imported?: ImportSummary;
  /**
   * What caused an `internal` error, nearest first: the words of the I/O, storage or encoding
   * failure underneath. The same chain is `cause` (an `Error` whose own `cause` is the next).
   */
  readonly causes?: string[];
}
export class InvalidArgumentError extends MemsiloError {}
export class UnauthorizedError extends MemsiloError {}
export class ForbiddenError extends MemsiloError {}
export class NotFoundError extends MemsiloError {}
export class ConflictError extends MemsiloError {}
export class QuotaExceededError extends MemsiloError {}
export class RateLimitedError extends MemsiloError {}
export class PayloadTooLargeError extends MemsiloError {}
export class InternalError extends MemsiloError {}
/** An HTTP method the server's route does not take (only a server answers it). */
export class MethodNotAllowedError extends MemsiloError {}

// Records ---------------------------------------------------------------------------------

export type IsolationMode = 'logical' | 'hybrid' | 'physical';
export type TenantStatus = 'active' | 'provisioning' | 'suspended' | 'deleting' | 'deleted';
export type Role = 'admin' | 'editor' | 'viewer';
export type Access = 'read' | 'write';

export interface DecayPolicy {
  decay_rate: number;
  min_importance: number;
  ttl_default: number | null;
}

export interface Namespace {
  name: string;
  tenant_id: string | null;
  created_at: string;
  memory_count: number;
  storage_bytes: number;
  isolation_mode: IsolationMode;
  policy: DecayPolicy;
  dimensions: number | null;
  embedder: string | null;
  entity_count: number;
  relation_count: number;
}

export interface DeletedNamespace {
  name: string;
  deleted_at: string;
}

export type MemoryType = 'episodic' | 'semantic' | 'procedural' | 'working';

export interface Memory {
  id: string;
  namespace: string;
  agent_id: string | null;
  content: string;
  importance: number;
  tags: string[];
  metadata: JsonObject;
  entities?: string[];
  memory_type: MemoryType;
  session_id: string | null;
  created_at: string;
  updated_at: string;
  expires_at: string | null;
  /** Only with `includeVectors`. */
  vector?: number[];
}

export interface RecallHit {
  id: string;
  content: string;
  score: number;
  similarity: number;
  importance: number;
  effective_importance: number;
  agent_id: string | null;
  tags: string[];
  metadata: JsonObject;
  memory_type: MemoryType;
  session_id: string | null;
  created_at: string;
  updated_at: string;
  via_graph?: boolean;
  /** BM25 score of the query's words (keyword and hybrid recall). */
  keyword_score: number | null;
  /** Cosine similarity to the query vector (vector and hybrid recall). */
  vector_score: number | null;
}

/** A session: its memories are those whose `session_id` is its `id`. */
export interface Session {
  id: string;
  namespace: string;
  agent_id: string | null;
  metadata: JsonObject;
  started_at: string;
  /** `null` while active. */
  ended_at: string | null;
  summary: string | null;
  memory_count: number;
}

export interface SessionPage {
  sessions: Session[];
  total_count: number;
}

export interface SessionMemoryPage {
  memories: Memory[];
  total_count: number;
}

export interface StartSessionOptions {
  /** 1-256 printable characters; a UUID v7 when left out. */
  id?: string;
  agentId?: string;
  agent_id?: string;
  metadata?: JsonObject;
}

export interface EndSessionOptions {
  summary?: string;
}

export interface ListSessionsOptions {
  agentId?: string;
  agent_id?: string;
  activeOnly?: boolean;
  active_only?: boolean;
  offset?: number;
  limit?: number;
}

export interface SessionMemoriesOptions {
  offset?: number;
  limit?: number;
}

export interface DeletedMemory {
  id: string;
  namespace: string;
  deleted: true;
}

export interface Forgotten {
  forgotten: number;
}

export interface Quotas {
  storage_quota_bytes: number;
  qps_limit: number;
  max_connections: number;
  compute_quota_cores: number;
  max_members: number;
  max_namespaces: number;
}

export interface Tenant {
  id: string;
  name: string;
  status: TenantStatus;
  isolation_mode: IsolationMode;
  parent_id: string | null;
  settings: JsonObject;
  features: string[] | JsonObject;
  tags: string[] | JsonObject;
  quotas: Quotas;
  /** The tenant's own encryption key id (physical and hybrid tenants), or null. */
  encryption_key_id: string | null;
  created_at: string;
  updated_at: string;
  usage: { storage_bytes: number; namespaces: number; members: number };
  /** Set on create, update and delete. */
  message?: string;
  /** Set on delete. */
  deleted_at?: string;
}

export interface TenantList {
  tenants: Tenant[];
  total_count: number;
  offset: number;
  limit: number;
}

export interface Member {
  tenant_id: string;
  member_id: string;
  user_identifier: string;
  role: Role;
  metadata: JsonObject;
  added_at: string;
  message?: string;
}

export interface MemberList {
  tenant_id: string;
  members: Member[];
  total_count: number;
}

export interface RemovedMember {
  tenant_id: string;
  member_id: string;
  message: string;
  removed_at: string;
}

export interface NamespaceGrant {
  namespace: string;
  access: Access;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  tenant_id: string | null;
  member_id: string | null;
  role: Role | null;
  namespaces: NamespaceGrant[];
  created_at: string;
  expires_at: string | null;
  revoked: boolean;
}

/** A new or rotated key: the only time `key` (the secret) is returned. */
export interface CreatedKey extends ApiKey {
  key: string;
}

export interface Entity {
  id: string;
  name: string;
  type: string;
  properties: JsonObject;
  created_at: string;
  updated_at: string;
}

export interface Relation {
  id: string;
  source: string;
  target: string;
  source_name: string;
  target_name: string;
  type: string;
  weight: number;
  properties: JsonObject;
  created_at: string;
}

export interface GraphView {
  entities: Entity[];
  relations: Relation[];
}

export interface GraphPath extends GraphView {
  total_weight: number;
}

export interface Deleted {
  id: string;
  deleted: true;
  name?: string;
}

export type WhoAmI =
  | { principal: 'root' }
  | { principal: 'member'; key_id: string; tenant_id: string; role: Role }
  | { principal: 'scoped'; key_id: string; tenant_id: string | null; namespaces: NamespaceGrant[] };

export interface AuditActor {
  principal: 'root' | 'member' | 'scoped' | 'anonymous';
  key_id: string | null;
  key_prefix: string | null;
  member_id: string | null;
}

/** One audit entry; `hash` chains it to `prev_hash`, the entry before it. */
export interface AuditEntry {
  seq: number;
  time: string;
  tenant_id: string;
  actor: AuditActor;
  action: string;
  target: string | null;
  result: 'ok' | 'refused' | 'failed';
  error: ErrorCode | null;
  status: number;
  request_id: string;
  prev_hash: string;
  hash: string;
}

export interface AuditPage {
  tenant_id: string;
  entries: AuditEntry[];
  next_cursor: string | null;
}

export interface AuditVerification {
  tenant_id: string;
  ok: boolean;
  checked: number;
  first_broken: { seq: number; reason: string } | null;
  head_seq: number;
  head_hash: string;
}

// Options (camelCase shown; the snake_case wire names are accepted too) ---------------------

export interface ListAuditOptions {
  since?: Time;
  until?: Time;
  /** A key id, key prefix or member id. */
  actor?: string;
  action?: string;
  /** `next_cursor` of the previous page. */
  cursor?: string;
  limit?: number;
}

export interface PageOptions {
  offset?: number;
  limit?: number;
}

export interface DecayPolicyInput {
  decayRate?: number;
  decay_rate?: number;
  minImportance?: number;
  min_importance?: number;
  ttlDefault?: number | null;
  ttl_default?: number | null;
}

export interface QuotasInput {
  storageQuotaBytes?: number;
  storage_quota_bytes?: number;
  qpsLimit?: number;
  qps_limit?: number;
  maxConnections?: number;
  max_connections?: number;
  computeQuotaCores?: number;
  compute_quota_cores?: number;
  maxMembers?: number;
  max_members?: number;
  maxNamespaces?: number;
  max_namespaces?: number;
}

export interface CreateNamespaceOptions {
  tenantId?: string | null;
  tenant_id?: string | null;
  policy?: DecayPolicyInput;
  dimensions?: number;
  /** Return the existing namespace instead of `conflict` when the name is taken. */
  existOk?: boolean;
  exist_ok?: boolean;
}

export interface ListNamespacesOptions extends PageOptions {
  tenantId?: string;
  tenant_id?: string;
  /** `next_cursor` of the previous page: this page starts after it (not with `offset`). */
  cursor?: string;
}

/** One page of `listNamespaces`: the namespaces, the total over all pages and where the next page starts. */
export interface NamespaceList extends Array<Namespace> {
  total_count: number;
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
}

export interface ListKeysOptions extends PageOptions {
  tenantId?: string;
  tenant_id?: string;
  /** Only the keys granted this namespace. */
  namespace?: string;
}

export interface RevokeKeyOptions {
  /** Only a key granted this namespace (any other is `not_found`). */
  namespace?: string;
}

export interface MemoryInput {
  content: string;
  /** The memory's id (1-256 printable characters); an id already stored is replaced. */
  id?: string;
  memoryType?: MemoryType;
  memory_type?: MemoryType;
  sessionId?: string;
  session_id?: string;
  importance?: number;
  tags?: string[];
  metadata?: JsonObject;
  agentId?: string | null;
  agent_id?: string | null;
  /** Seconds to live. */
  ttl?: number;
  embedding?: Vector;
  /** Entity names to link the memory to. */
  entities?: string[];
}

export type MemoryOptions = Omit<MemoryInput, 'content'>;

/** The filter language (see the API reference): fields, `metadata.<path>`, `$and $or $not`, operators. */
export type Filter = JsonObject;

export type OrderBy = 'created_at' | 'updated_at' | 'importance';

export interface ListMemoriesOptions {
  filter?: Filter;
  orderBy?: OrderBy;
  order_by?: OrderBy;
  descending?: boolean;
  /** 1 to 1000 (default 100). */
  limit?: number;
  /** `next_cursor` of the previous page. */
  cursor?: string | null;
  includeVectors?: boolean;
  include_vectors?: boolean;
}

export interface MemoryPage {
  memories: Memory[];
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
}

export interface GetMemoriesOptions {
  includeVectors?: boolean;
  include_vectors?: boolean;
}

/** The fields of `updateMemory`: those given change, the others stay. */
export interface MemoryUpdate {
  /** New text, re-embedded. */
  content?: string;
  embedding?: Vector;
  importance?: number;
  /** Replace the tags. */
  tags?: string[];
  /** Merged key by key (a null value removes a key) unless `replace` is true. */
  metadata?: JsonObject;
  replace?: boolean;
  /** Seconds to live from now. */
  ttl?: number;
  memoryType?: MemoryType;
  memory_type?: MemoryType;
  sessionId?: string;
  session_id?: string;
}

export interface RecallOptions {
  topK?: number;
  top_k?: number;
  /** A query vector (pass `query` null). */
  vector?: Vector;
  agentId?: string;
  agent_id?: string;
  tags?: string[];
  minImportance?: number;
  min_importance?: number;
  since?: Time;
  until?: Time;
  /** Also return memories linked through the graph, this many hops away. */
  expand?: number;
  /** `vector`, `keyword` (BM25) or `hybrid` (both, fused); default hybrid for text, vector for a vector. */
  mode?: 'vector' | 'keyword' | 'hybrid';
  /** Hybrid only, in [0, 1]: the vector score's weight in the fused sum (both scores scaled to [0, 1] over the candidates); default 0.6. */
  vectorWeight?: number;
  vector_weight?: number;
  /** Only memories matching this filter. */
  filter?: Filter;
  memoryType?: MemoryType;
  memory_type?: MemoryType;
  sessionId?: string;
  session_id?: string;
}

export interface ForgetFilter {
  ids?: string[];
  agentId?: string;
  agent_id?: string;
  tags?: string[];
  before?: Time;
  belowImportance?: number;
  below_importance?: number;
  /** Memories matching this filter. */
  filter?: Filter;
}

export interface CreateTenantOptions {
  quotas?: QuotasInput;
  isolationMode?: IsolationMode;
  isolation_mode?: IsolationMode;
  parentId?: string;
  parent_id?: string;
  settings?: JsonObject;
  features?: string[] | JsonObject;
  tags?: string[] | JsonObject;
  /**
   * A key of the tenant's own (physical and hybrid tenants; needs a keyring): created in the
   * keyring if absent, destroyed when the tenant is deleted.
   */
  encryptionKeyId?: string;
  encryption_key_id?: string;
}

export interface RotateTenantKeyOptions {
  /** The new key's id (made in the keyring if absent); default `<tenant name>.<ms>`. */
  newKeyId?: string;
  new_key_id?: string;
}

export interface RotateInstanceKeyOptions {
  /** The new instance key's id (made in the keyring if absent); default `instance.<ms>`. */
  newKeyId?: string;
  new_key_id?: string;
}

export interface InstanceKeyRotation {
  old_key_id: string;
  new_key_id: string;
  state: 'rewriting' | 'done';
  environments_total: number;
  environments_done: number;
  started_at: string;
  finished_at: string | null;
}

export interface KeyRotation {
  tenant_id: string;
  old_key_id: string | null;
  new_key_id: string;
  state: 'rewriting' | 'done';
  environments_total: number;
  environments_done: number;
  started_at: string;
  finished_at: string | null;
}

export interface ListTenantsOptions extends PageOptions {
  status?: TenantStatus;
  parentId?: string;
  parent_id?: string;
}

export interface TenantChanges {
  name?: string;
  status?: 'active' | 'suspended' | 'provisioning';
  quotas?: QuotasInput;
  /** Merged key by key into the current settings (a null value removes a key). */
  settings?: JsonObject;
  features?: string[] | JsonObject;
  tags?: string[] | JsonObject;
}

export interface ListMembersOptions extends PageOptions {
  role?: Role;
}

export interface CreateKeyOptions {
  /** Grants as `[namespace, access]` pairs or `{namespace, access}` objects. */
  namespaces?: Array<[string, Access] | NamespaceGrant>;
  tenantId?: string;
  tenant_id?: string;
  role?: Role;
  memberId?: string;
  member_id?: string;
  expiresAt?: Time;
  expires_at?: Time;
}

export interface EntityOptions {
  type?: string;
  properties?: JsonObject;
}

export interface RelationOptions {
  weight?: number;
  properties?: JsonObject;
}

export interface EntityLookup {
  /** Picks among same-named entities. */
  type?: string;
}

export interface NeighborsOptions {
  depth?: number;
  /** Only relations of this type. */
  type?: string;
}

export interface OpenOptions {
  embeddingFunction?: EmbeddingFunction;
}

export interface OpenLocalOptions extends OpenOptions {
  /**
   * Where encryption keys are kept: a directory outside the data directory, or `'env:'` for
   * `MEMSILO_KEY_<ID>` variables. Default: the `MEMSILO_KEYRING` setting, if any.
   */
  keyring?: string;
}

export interface ConnectOptions extends OpenOptions {
  apiKey: string;
}

/** A connection to memsilo (in-process or remote) acting as one principal. */
export class Memsilo {
  private constructor();

  /**
   * A handle limited to what `apiKey` allows, with the same embeddingFunction. Rejects with
   * `unauthorized` for a bad key (checking it is a round trip in remote mode).
   */
  scoped(apiKey: string): Promise<Memsilo>;
  whoami(): Promise<WhoAmI>;
  /** The namespace as export lines, a page at a time (`for await (const line of ...)`). */
  exportNamespace(namespace: string, opts?: { pageSize?: number }): AsyncGenerator<ExportLine>;
  /**
   * Imports export lines (objects, or JSON Lines text as strings or bytes) in batches; returns
   * the counts written. A string or Uint8Array is the whole text; of an iterable, each item is
   * one line (numbered as one in errors). A failure rejects with `err.line` and `err.imported`
   * (what the batches before it wrote). In process the next batch is read while one is
   * written; against a server the lines go as one streamed request body.
   */
  importNamespace(
    namespace: string,
    lines: string | Uint8Array | Iterable<ExportLine | string | Uint8Array> | AsyncIterable<ExportLine | string | Uint8Array>,
    opts?: { batchSize?: number },
  ): Promise<ImportSummary>;

  createNamespace(name: string, opts?: CreateNamespaceOptions): Promise<Namespace>;
  listNamespaces(opts?: ListNamespacesOptions): Promise<NamespaceList>;
  getNamespace(name: string): Promise<Namespace>;
  deleteNamespace(name: string): Promise<DeletedNamespace>;
  getMemoryPolicy(namespace: string): Promise<DecayPolicy>;
  setMemoryPolicy(namespace: string, policy: DecayPolicyInput): Promise<DecayPolicy>;

  /** `namespace` null: the key's only namespace. */
  storeMemory(namespace: string | null, memory: MemoryInput): Promise<Memory>;
  storeMemory(namespace: string | null, content: string, opts?: MemoryOptions): Promise<Memory>;
  /** All stored, or none; resolves to the new ids in order. */
  storeMemories(namespace: string, memories: Array<MemoryInput | string>): Promise<string[]>;
  recall(namespace: string | null, query: string | null, opts?: RecallOptions): Promise<RecallHit[]>;
  getMemory(namespace: string | null, id: string): Promise<Memory>;
  /** At most 1000 ids; absent ones are left out, the others come in the order asked. */
  getMemories(namespace: string | null, ids: string[], opts?: GetMemoriesOptions): Promise<Memory[]>;
  /** One page of the memories matching `opts.filter`, in a stable order. */
  listMemories(namespace: string | null, opts?: ListMemoriesOptions): Promise<MemoryPage>;
  /** How many live memories match `filter` (all without one). */
  countMemories(namespace: string | null, filter?: Filter): Promise<number>;
  /** `not_found` when absent. */
  updateMemory(namespace: string | null, id: string, changes: MemoryUpdate): Promise<Memory>;
  deleteMemory(namespace: string | null, id: string): Promise<DeletedMemory>;
  /** At least one filter is required; an empty filter is `invalid_argument`. */
  batchForget(namespace: string | null, filter: ForgetFilter): Promise<Forgotten>;

  /** `conflict` when the namespace has a session with `opts.id` already. */
  startSession(namespace: string | null, opts?: StartSessionOptions): Promise<Session>;
  /** Ending an ended session returns it unchanged; `not_found` when absent. */
  endSession(namespace: string | null, id: string, opts?: EndSessionOptions): Promise<Session>;
  getSession(namespace: string | null, id: string): Promise<Session>;
  listSessions(namespace: string | null, opts?: ListSessionsOptions): Promise<SessionPage>;
  sessionMemories(namespace: string | null, id: string, opts?: SessionMemoriesOptions): Promise<SessionMemoryPage>;

  createTenant(name: string, opts?: CreateTenantOptions): Promise<Tenant>;
  getTenant(tenantId: string): Promise<Tenant>;
  listTenants(opts?: ListTenantsOptions): Promise<TenantList>;
  updateTenant(tenantId: string, changes: TenantChanges): Promise<Tenant>;
  deleteTenant(tenantId: string): Promise<Tenant>;
  /**
   * Rotates a physical or hybrid tenant's encryption key (new data at once, its files in the
   * background, then the old key is destroyed); poll getKeyRotation. Root and tenant admins.
   */
  rotateTenantKey(tenantId: string, opts?: RotateTenantKeyOptions): Promise<KeyRotation>;
  /** The tenant's last key rotation and its progress (`not_found` if none). */
  getKeyRotation(tenantId: string): Promise<KeyRotation>;
  /**
   * Rotates the instance key (the catalog's, the audit log's, logical tenants' and keyless
   * tenants' files): new files at once, the old ones rewritten in the background, the catalog
   * last, then the old key is destroyed; poll getInstanceKeyRotation. Root only.
   */
  rotateInstanceKey(opts?: RotateInstanceKeyOptions): Promise<InstanceKeyRotation>;
  /** The instance key's last rotation and its progress (`not_found` if none). Root only. */
  getInstanceKeyRotation(): Promise<InstanceKeyRotation>;
  addMember(tenantId: string, userIdentifier: string, role: Role, metadata?: JsonObject): Promise<Member>;
  listMembers(tenantId: string, opts?: ListMembersOptions): Promise<MemberList>;
  removeMember(tenantId: string, memberId: string): Promise<RemovedMember>;

  createKey(name: string, opts?: CreateKeyOptions): Promise<CreatedKey>;
  listKeys(opts?: ListKeysOptions): Promise<ApiKey[]>;
  revokeKey(keyId: string, opts?: RevokeKeyOptions): Promise<ApiKey>;
  rotateKey(keyId: string): Promise<CreatedKey>;

  /** A tenant's audit entries, oldest first (`'instance'`: the instance log; root or the tenant's admins). */
  listAudit(tenantId: string, opts?: ListAuditOptions): Promise<AuditPage>;
  /** Checks a tenant's audit hash chain; `first_broken` names an edited or missing entry. */
  verifyAudit(tenantId: string): Promise<AuditVerification>;

  addEntity(namespace: string, name: string, opts?: EntityOptions): Promise<Entity>;
  addRelation(namespace: string, source: string, target: string, type: string, opts?: RelationOptions): Promise<Relation>;
  getEntity(namespace: string, entity: string, opts?: EntityLookup): Promise<Entity>;
  neighbors(namespace: string, entity: string, opts?: NeighborsOptions): Promise<GraphView>;
  subgraph(namespace: string, entity: string, opts?: NeighborsOptions): Promise<GraphView>;
  shortestPath(namespace: string, from: string, to: string): Promise<GraphPath>;
  deleteEntity(namespace: string, entity: string, opts?: EntityLookup): Promise<Deleted>;
  deleteRelation(namespace: string, id: string): Promise<Deleted>;
}

/** Opens (or creates) the data directory `path` in-process, as the root principal. */
export function open(path: string, opts?: OpenLocalOptions): Memsilo;
/**
 * Connects to a memsilo server (`memsilo serve`) with an API key. `url` may be an array of
 * the servers of one cluster: calls go to one of them and move to the next when it cannot be
 * reached or answers 503, for reads and for stores with caller-chosen ids (any other write is
 * never sent twice). A bad entry is `invalid_argument` naming `urls[i]`.
 */
export function connect(url: string | readonly string[], opts: ConnectOptions): Promise<Memsilo>;
/**
 * Runs the bundled server with `argv` (e.g. `['serve', '--data', './data', '--listen',
 * '127.0.0.1:3300']`) on a worker thread; resolves to its exit code when it stops.
 */
export function serve(argv: string[]): Promise<number>;
/** Every operation name of the core's operation table. */
export const OPERATIONS: readonly string[];
/** Every error code of the core's error table. */
export const ERROR_CODES: readonly ErrorCode[];

/** One line of a namespace export: `kind` is `namespace`, `entity`, `relation` or `memory`. */
export interface ExportLine {
  kind: 'namespace' | 'entity' | 'relation' | 'memory';
  [field: string]: unknown;
}

/** What an import wrote. */
export interface ImportSummary {
  lines: number;
  memories: number;
  entities: number;
  relations: number;
  expired: number;
}

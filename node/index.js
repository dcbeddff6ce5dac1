'use strict';
// memsilo for Node.js. A thin layer over the native addon: it turns camelCase or snake_case
// options into the wire's snake_case JSON, runs each operation off the JS thread (the
// addon's call() returns a Promise), and turns native errors into MemsiloError.

const fs = require('node:fs');
const path = require('node:path');

// The addon: a copy built in this directory (`npm run build`, the repository's dev flow), or
// the platform package npm installed through optionalDependencies (the napi-rs convention).
function platformPackage() {
  if (process.platform !== 'linux') return `memsilo-${process.platform}-${process.arch}`;
  const report = typeof process.report?.getReport === 'function' ? process.report.getReport() : null;
  const glibc = report?.header?.glibcVersionRuntime;
  return `memsilo-linux-${process.arch}-${glibc ? 'gnu' : 'musl'}`;
}

function loadNative() {
  const candidates = [`memsilo.${process.platform}-${process.arch}.node`, 'memsilo.node'];
  for (const name of candidates) {
    const file = path.join(__dirname, name);
    if (fs.existsSync(file)) return require(file);
  }
  const pkg = platformPackage();
  try {
    return require(pkg);
  } catch (err) {
    if (err && err.code !== 'MODULE_NOT_FOUND') throw err;
    throw new Error(
      `memsilo: native addon not found: no ${candidates.join(' or ')} in ${__dirname}, and the ` +
        `platform package ${pkg} is not installed. Prebuilt addons exist for linux-x64-gnu ` +
        '(npm installs memsilo-linux-x64-gnu with memsilo); elsewhere build from a checkout with ' +
        '`npm run build` (needs cargo).',
      { cause: err },
    );
  }
}

const native = loadNative();

// ---------------------------------------------------------------------------------------
// Errors: the one place native errors become MemsiloError.

/** Base class of every error memsilo raises; `.code` is a stable code of the error table (docs/src/api/errors.md). */
class MemsiloError extends Error {
  constructor(message, { code = 'internal', status = 500, retryAfter, namespace, field, tenantId, line, imported, cause, causes } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.code = code;
    this.status = status;
    if (causes !== undefined) this.causes = causes;
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
    if (namespace !== undefined) this.namespace = namespace;
    if (field !== undefined) this.field = field;
    if (tenantId !== undefined) this.tenantId = tenantId;
    if (line !== undefined) this.line = line;
    if (imported !== undefined) this.imported = imported;
  }
}

class InvalidArgumentError extends MemsiloError {}
class UnauthorizedError extends MemsiloError {}
class ForbiddenError extends MemsiloError {}
class NotFoundError extends MemsiloError {}
class ConflictError extends MemsiloError {}
class QuotaExceededError extends MemsiloError {}
class RateLimitedError extends MemsiloError {}
class PayloadTooLargeError extends MemsiloError {}
class InternalError extends MemsiloError {}
class MethodNotAllowedError extends MemsiloError {}

const ERROR_CLASSES = {
  invalid_argument: InvalidArgumentError,
  unauthorized: UnauthorizedError,
  forbidden: ForbiddenError,
  not_found: NotFoundError,
  conflict: ConflictError,
  quota_exceeded: QuotaExceededError,
  rate_limited: RateLimitedError,
  payload_too_large: PayloadTooLargeError,
  internal: InternalError,
  method_not_allowed: MethodNotAllowedError,
};

/**
 * Wraps an error from the addon; anything else (a TypeError of ours) passes through. The
 * failures underneath (`causes`, nearest first: an I/O or storage error's own words) become
 * the `cause` chain of plain Errors, which Node prints as `[cause]: Error: ...`.
 */
function toMemsiloError(err) {
  const Class = err && typeof err.code === 'string' ? ERROR_CLASSES[err.code] : undefined;
  if (!Class) return err;
  const { code, status, retryAfter, namespace, field, tenantId, line, imported, causes } = err;
  const cause = (causes || []).reduceRight(
    (next, message) => new Error(message, next === undefined ? undefined : { cause: next }),
    undefined,
  );
  return new Class(err.message, { code, status, retryAfter, namespace, field, tenantId, line, imported, cause, causes });
}

function nativeSync(fn) {
  try {
    return fn();
  } catch (err) {
    throw toMemsiloError(err);
  }
}

// ---------------------------------------------------------------------------------------
// Arguments: camelCase or snake_case keys in, snake_case JSON out.

/** memsilo's `invalid_argument` for `field`, as the engine would report it. */
function invalidArgument(field, reason) {
  return new InvalidArgumentError(`${field}: ${reason}`, { code: 'invalid_argument', status: 400, field });
}

// A UTF-16 surrogate without its other half: a JS string that is not Unicode text.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why JSON cannot carry `value` as given, or undefined when it can. */
function unsendable(value) {
  switch (typeof value) {
    case 'string': {
      // JSON.stringify writes a lone surrogate as an escape the engine refuses as unreadable
      // JSON (naming no field).
      const at = value.search(LONE_SURROGATE);
      return at < 0 ? undefined : `must be valid Unicode text, got a lone surrogate at index ${at}`;
    }
    case 'number':
      return Number.isFinite(value) ? undefined : `must be a finite number, got ${value}`;
    case 'bigint':
      return `must be a number, got the BigInt ${value}n (convert it with Number())`;
    case 'function':
    case 'symbol':
      return `must be JSON data, got a ${typeof value}`;
    default:
      return undefined;
  }
}

/**
 * The arguments as JSON. JSON has no NaN, Infinity or BigInt, and JSON.stringify writes NaN
 * as null (so `importance: NaN` would silently become the default), drops functions and
 * symbols, and throws a bare TypeError on a BigInt: each is refused here as
 * `invalid_argument` naming its field, the way the engine names any other bad value.
 */
function encodeArgs(args) {
  const paths = new Map();
  let bad;
  const json = JSON.stringify(args, function replace(key, value) {
    const parent = paths.get(this);
    let path = key;
    if (parent !== undefined) {
      path = Array.isArray(this) ? `${parent}[${key}]` : parent === '' ? key : `${parent}.${key}`;
    }
    const reason = unsendable(value);
    if (reason !== undefined) {
      if (bad === undefined) bad = invalidArgument(path, reason);
      return null;
    }
    if (value !== null && typeof value === 'object') paths.set(value, path);
    return value;
  });
  if (bad !== undefined) throw bad;
  return json;
}

// Values of these keys are the caller's own data and keep their keys as given.
const USER_DATA = new Set(['metadata', 'properties', 'settings', 'features', 'tags', 'filter']);

const snake = (key) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** What a caller passed, for a refusal: `an array`, `a string`, `the BigInt 5n`, ... */
function describe(v) {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'bigint') return `the BigInt ${v}n`;
  if (typeof v === 'object') return `an instance of ${v.constructor ? v.constructor.name : 'Object'}`;
  return `a ${typeof v}`;
}

function isPlainObject(v) {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function wireValue(v) {
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v);
  if (Array.isArray(v)) return v.map(wireValue);
  if (isPlainObject(v)) return wire(v, false);
  return v;
}

/**
 * Converts an options object to wire arguments. Top-level `null`/`undefined` mean "not
 * given" and are dropped; inside nested objects (policy, quotas) `null` is kept.
 */
function wire(opts, top = true) {
  const out = {};
  if (opts === undefined || opts === null) return out;
  if (!isPlainObject(opts)) throw invalidArgument('options', `must be a plain object, got ${describe(opts)}`);
  for (const [k, v] of Object.entries(opts)) {
    if (v === undefined || (top && v === null)) continue;
    const key = snake(k);
    out[key] = USER_DATA.has(key) ? v : wireValue(v);
  }
  return out;
}

/** A key grant given as `[namespace, access]` or `{namespace, access}`. */
function grant(g) {
  if (Array.isArray(g)) return { namespace: g[0], access: g[1] };
  return wire(g);
}

const IMPORT_CHUNK = 1 << 20;

// The lines in lists of about 1 MiB, each item (an object, or one line's text) as the bytes of
// one line (the importer's feedLines: an item is one line, numbered as one in errors).
async function* importLines(lines) {
  let items = [];
  let size = 0;
  for await (const item of lines) {
    let text;
    if (typeof item === 'string') text = Buffer.from(item);
    else if (Buffer.isBuffer(item)) text = item;
    else if (item instanceof Uint8Array) text = Buffer.from(item.buffer, item.byteOffset, item.byteLength);
    else text = Buffer.from(encodeArgs(item));
    items.push(text);
    size += text.length + 1;
    if (size >= IMPORT_CHUNK) {
      yield items;
      items = [];
      size = 0;
    }
  }
  if (items.length > 0) yield items;
}

function withNamespace(ns, args) {
  if (ns !== undefined && ns !== null) args.namespace = ns;
  return args;
}

// ---------------------------------------------------------------------------------------

/** A connection to memsilo (in-process or remote) acting as one principal. */
class Memsilo {
  #handle;
  #embed;

  /** @internal Use open(), connect() or scoped(). */
  constructor(handle, embeddingFunction) {
    if (embeddingFunction !== undefined && embeddingFunction !== null && typeof embeddingFunction !== 'function') {
      throw new TypeError('memsilo: embeddingFunction must be a function (texts: string[]) => Promise<number[][]>');
    }
    this.#handle = handle;
    this.#embed = embeddingFunction || null;
  }

  async #call(op, args, listed = false) {
    let json;
    try {
      const text = encodeArgs(args);
      json = await (listed ? this.#handle.callListed(op, text) : this.#handle.call(op, text));
    } catch (err) {
      throw toMemsiloError(err);
    }
    return JSON.parse(json);
  }

  async #vectors(texts) {
    const out = await this.#embed(texts);
    if (!Array.isArray(out) || out.length !== texts.length) {
      throw new TypeError(`memsilo: embeddingFunction returned ${Array.isArray(out) ? out.length : typeof out} vectors for ${texts.length} texts`);
    }
    return out.map((v) => Array.from(v));
  }

  /**
   * A handle limited to what `apiKey` allows, with the same embeddingFunction. Rejects
   * with `unauthorized` for a bad key (checking it is a round trip in remote mode).
   */
  async scoped(apiKey) {
    if (typeof apiKey !== 'string') throw new TypeError('memsilo: apiKey must be a string');
    let handle;
    try {
      handle = await this.#handle.scoped(apiKey);
    } catch (err) {
      throw toMemsiloError(err);
    }
    return new Memsilo(handle, this.#embed);
  }

  whoami() {
    return this.#call('whoami', {});
  }

  // Export and import ----------------------------------------------------------------------
  /**
   * The namespace as export lines (objects with a `kind`: the `namespace` line first, then
   * entities, relations and memories with ids and vectors), fetched a page at a time.
   */
  async *exportNamespace(namespace, opts) {
    const limit = (opts && (opts.pageSize ?? opts.page_size)) || 1000;
    let cursor = null;
    do {
      const page = await this.#call('export_namespace', { namespace, cursor, limit });
      yield* page.lines;
      cursor = page.next_cursor;
    } while (cursor !== null && cursor !== undefined);
  }

  /**
   * Imports export lines (objects, or the text of JSON Lines: strings or Buffers) from an
   * array or any (async) iterable into an existing namespace, in batches; each batch of one
   * kind is all or nothing, and running it again is idempotent. A string or Buffer is the
   * whole text of JSON Lines. Of an iterable, each item is one line,
   * numbered as one (its ending newline is optional; a string holding a JSON object written
   * over several lines is that one line). A bad line rejects naming it (`err.line`), with
   * what the batches before it wrote as `err.imported`.
   * In process the next batch is read while one is written; against a server the lines go as
   * one streamed request body.
   */
  async importNamespace(namespace, lines, opts) {
    const size = (opts && (opts.batchSize ?? opts.batch_size)) || 1000;
    // Checked here: the addon's own conversion errors carry no memsilo code or field.
    if (typeof namespace !== 'string') throw invalidArgument('namespace', `must be a string, got ${describe(namespace)}`);
    if (typeof size !== 'number') throw invalidArgument('batch_size', `must be a number, got ${describe(size)}`);
    const text = typeof lines === 'string' || lines instanceof Uint8Array;
    if (!text && (lines === null || typeof lines !== 'object' || !(Symbol.iterator in lines || Symbol.asyncIterator in lines))) {
      throw invalidArgument('lines', `must be a string, a Buffer or an (async) iterable of lines, got ${describe(lines)}`);
    }
    try {
      const importer = await this.#handle.importer(namespace, size);
      if (text) {
        // The whole text of JSON Lines, not an iterable of one-character lines.
        await importer.feed(typeof lines === 'string' ? Buffer.from(lines) : Buffer.from(lines.buffer, lines.byteOffset, lines.byteLength));
      } else {
        for await (const items of importLines(lines)) await importer.feedLines(items);
      }
      return JSON.parse(await importer.finish());
    } catch (err) {
      throw toMemsiloError(err);
    }
  }

  // Namespaces ---------------------------------------------------------------------------
  createNamespace(name, opts) {
    return this.#call('create_namespace', { ...wire(opts), name });
  }
  /**
   * One page of namespaces in name order: an array with `total_count` and `next_cursor`
   * (pass it as `cursor` for the next page; null on the last page).
   */
  async listNamespaces(opts) {
    const page = await this.#call('list_namespaces', wire(opts), true);
    return Object.assign(page.value, { total_count: page.total_count, next_cursor: page.next_cursor });
  }
  getNamespace(name) {
    return this.#call('get_namespace', { name });
  }
  deleteNamespace(name) {
    return this.#call('delete_namespace', { name });
  }
  getMemoryPolicy(namespace) {
    return this.#call('get_memory_policy', { namespace });
  }
  setMemoryPolicy(namespace, policy) {
    return this.#call('set_memory_policy', { namespace, policy: wire(policy, false) });
  }

  // Memories -----------------------------------------------------------------------------
  /** `memory` is `{content, ...}` or the content string (then `opts` holds the rest). */
  async storeMemory(namespace, memory, opts) {
    // Anything but an object is the content (a wrong type of it is refused naming `content`).
    const content = memory !== undefined && memory !== null && !isPlainObject(memory);
    const args = withNamespace(namespace, content ? { ...wire(opts), content: memory } : wire(memory));
    if (this.#embed && args.embedding === undefined && typeof args.content === 'string') {
      [args.embedding] = await this.#vectors([args.content]);
    }
    return this.#call('store_memory', args);
  }
  /** Stores all of `memories` or none; resolves to their ids. */
  async storeMemories(namespace, memories) {
    if (!Array.isArray(memories)) throw invalidArgument('memories', `must be an array, got ${describe(memories)}`);
    const items = memories.map((m, i) => {
      if (typeof m === 'string') return { content: m };
      if (!isPlainObject(m)) throw invalidArgument(`memories[${i}]`, `must be an object or a string, got ${describe(m)}`);
      return wire(m);
    });
    if (this.#embed) {
      const missing = items.filter((m) => m.embedding === undefined && typeof m.content === 'string');
      if (missing.length > 0) {
        const vectors = await this.#vectors(missing.map((m) => m.content));
        missing.forEach((m, i) => {
          m.embedding = vectors[i];
        });
      }
    }
    const reply = await this.#call('store_memories', withNamespace(namespace, { memories: items }));
    return reply.ids;
  }
  /** Recalls by text `query`, or by `opts.vector` (pass `query` null). */
  async recall(namespace, query, opts) {
    const args = withNamespace(namespace, wire(opts));
    if (query !== undefined && query !== null) args.query = query;
    if (this.#embed && args.vector === undefined && typeof args.query === 'string') {
      [args.vector] = await this.#vectors([args.query]);
      delete args.query;
    }
    return this.#call('recall', args);
  }
  getMemory(namespace, id) {
    return this.#call('get_memory', withNamespace(namespace, { id }));
  }
  /** The memories of `ids` in that order; absent ids are left out. */
  async getMemories(namespace, ids, opts) {
    if (!Array.isArray(ids)) throw invalidArgument('ids', `must be an array, got ${describe(ids)}`);
    const reply = await this.#call('get_memories', withNamespace(namespace, { ...wire(opts), ids }));
    return reply.memories;
  }
  /** Changes the given fields of memory `id`; metadata is merged unless `replace: true`. */
  async updateMemory(namespace, id, changes) {
    const args = withNamespace(namespace, { ...wire(changes), id });
    if (this.#embed && args.embedding === undefined && typeof args.content === 'string') {
      [args.embedding] = await this.#vectors([args.content]);
    }
    return this.#call('update_memory', args);
  }
  deleteMemory(namespace, id) {
    return this.#call('delete_memory', withNamespace(namespace, { id }));
  }
  batchForget(namespace, filter) {
    return this.#call('batch_forget', withNamespace(namespace, wire(filter)));
  }
  /** One page of the memories matching `opts.filter`; `nextCursor` is `next_cursor` too. */
  listMemories(namespace, opts) {
    return this.#call('list_memories', withNamespace(namespace, wire(opts)));
  }
  /** How many live memories match `filter`. */
  async countMemories(namespace, filter) {
    const args = withNamespace(namespace, {});
    if (filter !== undefined && filter !== null) args.filter = filter;
    const reply = await this.#call('count_memories', args);
    return reply.count;
  }

  // Sessions -----------------------------------------------------------------------------
  /** Starts a session (`conflict` if the namespace has one with `opts.id`). */
  startSession(namespace, opts) {
    return this.#call('start_session', withNamespace(namespace, wire(opts)));
  }
  /** Ends a session, keeping `opts.summary`; ending an ended session returns it unchanged. */
  endSession(namespace, id, opts) {
    return this.#call('end_session', withNamespace(namespace, { ...wire(opts), id }));
  }
  getSession(namespace, id) {
    return this.#call('get_session', withNamespace(namespace, { id }));
  }
  /** The namespace's sessions, oldest first: `{sessions, total_count}`. */
  listSessions(namespace, opts) {
    return this.#call('list_sessions', withNamespace(namespace, wire(opts)));
  }
  /** A session's live memories, oldest first: `{memories, total_count}`. */
  sessionMemories(namespace, id, opts) {
    return this.#call('session_memories', withNamespace(namespace, { ...wire(opts), id }));
  }

  // Tenants and members ------------------------------------------------------------------
  createTenant(name, opts) {
    return this.#call('create_tenant', { ...wire(opts), name });
  }
  getTenant(tenantId) {
    return this.#call('get_tenant', { tenant_id: tenantId });
  }
  listTenants(opts) {
    return this.#call('list_tenants', wire(opts));
  }
  updateTenant(tenantId, changes) {
    return this.#call('update_tenant', { ...wire(changes), tenant_id: tenantId });
  }
  deleteTenant(tenantId) {
    return this.#call('delete_tenant', { tenant_id: tenantId });
  }
  rotateTenantKey(tenantId, opts) {
    return this.#call('rotate_tenant_key', { ...wire(opts), tenant_id: tenantId });
  }
  getKeyRotation(tenantId) {
    return this.#call('get_key_rotation', { tenant_id: tenantId });
  }
  rotateInstanceKey(opts) {
    return this.#call('rotate_instance_key', { ...wire(opts) });
  }
  getInstanceKeyRotation() {
    return this.#call('get_instance_key_rotation', {});
  }
  addMember(tenantId, userIdentifier, role, metadata) {
    const args = { tenant_id: tenantId, user_identifier: userIdentifier, role };
    if (metadata !== undefined && metadata !== null) args.metadata = metadata;
    return this.#call('add_member', args);
  }
  listMembers(tenantId, opts) {
    return this.#call('list_members', { ...wire(opts), tenant_id: tenantId });
  }
  removeMember(tenantId, memberId) {
    return this.#call('remove_member', { tenant_id: tenantId, member_id: memberId });
  }

  // Keys ---------------------------------------------------------------------------------
  createKey(name, opts) {
    const args = { ...wire(opts), name };
    if (Array.isArray(args.namespaces)) args.namespaces = args.namespaces.map(grant);
    return this.#call('create_key', args);
  }
  listKeys(opts) {
    return this.#call('list_keys', wire(opts));
  }
  revokeKey(keyId, opts) {
    return this.#call('revoke_key', { ...wire(opts), key_id: keyId });
  }
  rotateKey(keyId) {
    return this.#call('rotate_key', { key_id: keyId });
  }

  // Audit log ----------------------------------------------------------------------------
  listAudit(tenantId, opts) {
    return this.#call('list_audit', { ...wire(opts), tenant_id: tenantId });
  }
  verifyAudit(tenantId) {
    return this.#call('verify_audit', { tenant_id: tenantId });
  }

  // Knowledge graph ----------------------------------------------------------------------
  addEntity(namespace, name, opts) {
    return this.#call('add_entity', { ...wire(opts), namespace, name });
  }
  addRelation(namespace, source, target, type, opts) {
    return this.#call('add_relation', { ...wire(opts), namespace, source, target, type });
  }
  getEntity(namespace, entity, opts) {
    return this.#call('get_entity', { ...wire(opts), namespace, entity });
  }
  neighbors(namespace, entity, opts) {
    return this.#call('neighbors', { ...wire(opts), namespace, entity });
  }
  subgraph(namespace, entity, opts) {
    return this.#call('subgraph', { ...wire(opts), namespace, entity });
  }
  shortestPath(namespace, from, to) {
    return this.#call('shortest_path', { namespace, from, to });
  }
  deleteEntity(namespace, entity, opts) {
    return this.#call('delete_entity', { ...wire(opts), namespace, entity });
  }
  deleteRelation(namespace, id) {
    return this.#call('delete_relation', { namespace, id });
  }
}

// ---------------------------------------------------------------------------------------

/** Opens (or creates) the data directory `path` in-process, as the root principal. */
function open(path, { embeddingFunction, keyring } = {}) {
  // String(undefined) would open (and create) a directory named "undefined".
  if (path === undefined || path === null) throw invalidArgument('path', 'is required: the data directory');
  const dir = keyring == null ? undefined : String(keyring);
  return new Memsilo(nativeSync(() => native.open(String(path), dir)), embeddingFunction);
}

/**
 * Connects to a memsilo server at `url` (or an array of a cluster's servers) with `apiKey`.
 */
async function connect(url, { apiKey, embeddingFunction } = {}) {
  if (typeof apiKey !== 'string') throw new TypeError('memsilo: connect needs {apiKey: string}');
  let handle;
  try {
    handle = await native.connect(Array.isArray(url) ? url.map(String) : String(url), apiKey);
  } catch (err) {
    throw toMemsiloError(err);
  }
  return new Memsilo(handle, embeddingFunction);
}

const ignoreSignal = () => {};

/**
 * Runs the bundled server (`memsilo serve --data DIR --listen ADDR`, ...) on a worker
 * thread; resolves to its exit code when it stops. SIGINT and SIGTERM stop the server
 * gracefully (and no longer end the process by themselves).
 */
async function serve(argv) {
  // The server's own SIGINT/SIGTERM handler chains to the one it finds. Node's default
  // handler re-raises the signal, which would loop forever; a JS listener puts libuv's
  // handler there instead, which only wakes the event loop.
  for (const sig of ['SIGINT', 'SIGTERM']) {
    if (!process.listeners(sig).includes(ignoreSignal)) process.on(sig, ignoreSignal);
  }
  return native.serve(argv.map(String));
}

/** Every operation name of the core's operation table. */
const OPERATIONS = Object.freeze(native.operations());
/** Every error code of the core's error table (each has its class in ERROR_CLASSES). */
const ERROR_CODES = Object.freeze(native.errorCodes());

module.exports = {
  open,
  connect,
  serve,
  Memsilo,
  MemsiloError,
  InvalidArgumentError,
  UnauthorizedError,
  ForbiddenError,
  NotFoundError,
  ConflictError,
  QuotaExceededError,
  RateLimitedError,
  PayloadTooLargeError,
  InternalError,
  MethodNotAllowedError,
  OPERATIONS,
  ERROR_CODES,
};

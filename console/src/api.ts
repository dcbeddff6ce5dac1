// The only way the console talks to the server: the public HTTP API, with the signed-in key
// as a Bearer token. The key lives in this tab's sessionStorage (never a cookie).

const STORE = 'memsilo.console.key';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface Grant {
  namespace: string;
  access: 'read' | 'write';
}

export interface WhoAmI {
  principal: 'root' | 'member' | 'scoped';
  key_id?: string;
  tenant_id?: string | null;
  role?: 'admin' | 'editor' | 'viewer' | null;
  namespaces?: Grant[];
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
  status: 'active' | 'provisioning' | 'suspended' | 'deleting' | 'deleted';
  isolation_mode: 'logical' | 'hybrid' | 'physical';
  parent_id: string | null;
  created_at: string;
  quotas: Quotas;
  usage: { members: number; namespaces: number; storage_bytes: number };
}

export interface Policy {
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
  embedder: string | null;
  dimensions: number | null;
  entity_count: number;
  relation_count: number;
  isolation_mode: string;
  policy: Policy;
}

export interface Key {
  id: string;
  name: string;
  prefix: string;
  tenant_id: string | null;
  member_id: string | null;
  role: string | null;
  namespaces: Grant[] | null;
  revoked: boolean;
  created_at: string;
  expires_at: string | null;
  key?: string;
}

export interface Member {
  member_id: string;
  tenant_id: string;
  user_identifier: string;
  role: 'admin' | 'editor' | 'viewer';
  added_at: string;
}

export interface Memory {
  id: string;
  content: string;
  score?: number;
  similarity?: number;
  keyword_score?: number | null;
  vector_score?: number | null;
  importance: number;
  metadata?: Record<string, unknown>;
  agent_id: string | null;
  tags: string[];
  created_at: string;
}

export interface Entity {
  id: string;
  name: string;
  type: string;
  properties: Record<string, unknown>;
}

export interface Relation {
  id: string;
  source: string;
  target: string;
  source_name: string;
  target_name: string;
  type: string;
  weight: number;
}

let key: string | null = sessionStorage.getItem(STORE);

/** The tenant rate bucket as the last tenant-scoped response reported it (X-RateLimit-*). */
export interface RateBucket {
  limit: number;
  remaining: number;
}
let lastRate: RateBucket | null = null;

export function rateBucket(): RateBucket | null {
  return lastRate;
}

export function currentKey(): string | null {
  return key;
}

export function setKey(k: string | null): void {
  key = k;
  lastRate = null;
  if (k) sessionStorage.setItem(STORE, k);
  else sessionStorage.removeItem(STORE);
}

export type Query = Record<string, string | number | boolean | string[] | undefined | null>;

function url(path: string, query?: Query): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((item) => q.append(k, item));
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** One request; the response as sent (for headers and text bodies). Errors are thrown. */
export async function request(
  method: string,
  path: string,
  opts: { query?: Query; body?: unknown; withKey?: string } = {},
): Promise<Response> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const k = opts.withKey ?? key;
  if (k) headers.Authorization = `Bearer ${k}`;
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  let resp: Response;
  try {
    resp = await fetch(url(path, opts.query), {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      credentials: 'omit',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'network', `The server did not answer (${String(e)})`);
  }
  const limit = resp.headers.get('x-ratelimit-limit');
  const remaining = resp.headers.get('x-ratelimit-remaining');
  if (limit !== null && remaining !== null) lastRate = { limit: Number(limit), remaining: Number(remaining) };
  if (!resp.ok) {
    let code = `http_${resp.status}`;
    let message = resp.statusText || `HTTP ${resp.status}`;
    try {
      const body = await resp.json();
      code = body.error ?? code;
      message = body.message ?? message;
    } catch {
      /* not JSON */
    }
    throw new ApiError(resp.status, code, message);
  }
  return resp;
}

/** A JSON call. */
export async function call<T>(method: string, path: string, opts: { query?: Query; body?: unknown } = {}): Promise<T> {
  const resp = await request(method, path, opts);
  return (await resp.json()) as T;
}

export const get = <T>(path: string, query?: Query) => call<T>('GET', path, { query });

/** Every item of a paged list (`offset`/`limit`, at most `max`). */
export async function listAll<T>(
  path: string,
  pick: (body: any) => T[],
  query: Query = {},
  max = 1000,
): Promise<T[]> {
  const out: T[] = [];
  for (let offset = 0; offset < max; ) {
    const resp = await request('GET', path, { query: { ...query, offset, limit: 100 } });
    const body = await resp.json();
    const items = pick(body);
    out.push(...items);
    const total = Number(resp.headers.get('x-total-count') ?? body?.total_count ?? out.length);
    offset += items.length;
    if (items.length === 0 || offset >= total) break;
  }
  return out;
}

export const enc = encodeURIComponent;

/** An operation the server's OpenAPI document lists: where it is and which query parameters
 * it takes. Features still being built elsewhere appear here once they land. */
export interface Operation {
  method: string;
  path: string;
  query: string[];
}

let operations: Promise<Map<string, Operation>> | null = null;
let schemas: Record<string, any> = {};

export function serverOperations(): Promise<Map<string, Operation>> {
  if (!operations) {
    operations = fetch('/openapi.json', { credentials: 'omit' })
      .then((r) => r.json())
      .then((doc) => {
        schemas = doc?.components?.schemas ?? {};
        const ops = new Map<string, Operation>();
        for (const [path, item] of Object.entries<any>(doc.paths ?? {})) {
          for (const [method, op] of Object.entries<any>(item)) {
            if (!op?.operationId) continue;
            const query = (op.parameters ?? []).filter((p: any) => p.in === 'query').map((p: any) => p.name);
            const id = String(op.operationId).replace(/_(get|post|put|delete|patch)$/, '');
            if (!ops.has(id) || method === 'post') ops.set(id, { method: method.toUpperCase(), path, query });
          }
        }
        return ops;
      })
      .catch(() => new Map<string, Operation>());
  }
  return operations;
}

/** Calls an operation found in the OpenAPI document: path placeholders are filled from
 * `args`, the rest goes in the body (POST/PUT/PATCH) or the query string. */
export async function callOperation(op: Operation, args: Record<string, unknown>): Promise<Response> {
  const rest: Record<string, unknown> = { ...args };
  const path = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const key = name in rest ? name : 'namespace';
    const v = rest[key];
    delete rest[key];
    return enc(String(v ?? ''));
  });
  if (op.method === 'GET' || op.method === 'DELETE') {
    return request(op.method, path, { query: rest as Query });
  }
  return request(op.method, path, { body: rest });
}

/** The values of `field` in the OpenAPI schema `schema` (e.g. recall's `mode`), or null if the
 * server does not know the field (the feature has not landed in this build). */
export async function schemaField(schema: string, field: string): Promise<string[] | null> {
  await serverOperations();
  const resolve = (s: any): any => (s?.$ref ? schemas[s.$ref.split('/').pop()] : s);
  let prop = resolve(schemas[schema])?.properties?.[field];
  if (!prop) return null;
  const variants = [prop, ...(prop.anyOf ?? []), ...(prop.oneOf ?? []), ...(prop.allOf ?? [])].map(resolve);
  const values = new Set<string>();
  for (const v of variants) {
    for (const e of v?.enum ?? []) if (typeof e === 'string') values.add(e);
    if (typeof v?.const === 'string') values.add(v.const);
    for (const o of v?.oneOf ?? []) {
      const r = resolve(o);
      for (const e of r?.enum ?? []) if (typeof e === 'string') values.add(e);
      if (typeof r?.const === 'string') values.add(r.const);
    }
  }
  return [...values];
}

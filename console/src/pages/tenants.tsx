// Tenants: status, isolation, quota use as bars, the parent/child tree; create, suspend or
// resume, edit quotas, delete with a typed confirmation.
import { useEffect, useState } from 'preact/hooks';
import { call, enc, get, listAll, rateBucket, request, type Quotas, type Tenant } from '../api';
import { parse, tenantRates, type Scrape } from '../metrics';
import { isRoot, useSession } from '../session';
import { Bar, ConfirmDelete, Day, Dialog, Empty, Field, fmtBytes, FormActions, Input, LoadError, PageHeader, Select, StatusBadge, Table, TenantSelect, useLoad, useNotice } from '../ui';

const GIB = 1024 ** 3;

/** Tenants in tree order (each parent followed by its children) with their depth. */
export function treeOrder(tenants: Tenant[]): { tenant: Tenant; depth: number }[] {
  const ids = new Set(tenants.map((t) => t.id));
  const children = new Map<string | null, Tenant[]>();
  for (const t of tenants) {
    const parent = t.parent_id && ids.has(t.parent_id) ? t.parent_id : null;
    children.set(parent, [...(children.get(parent) ?? []), t]);
  }
  const out: { tenant: Tenant; depth: number }[] = [];
  const walk = (parent: string | null, depth: number) => {
    for (const t of (children.get(parent) ?? []).sort((a, b) => a.name.localeCompare(b.name))) {
      out.push({ tenant: t, depth });
      walk(t.id, depth + 1);
    }
  };
  walk(null, 0);
  return out;
}

/** Every few seconds while the page is open (only for a key /metrics answers): each tenant's
 * requests per second between the last two scrapes, its own plus its descendants' (a child's
 * requests count against its parent's QPS limit too). */
const RATE_EVERY_MS = 2000;
function useQpsUse(enabled: boolean, tenants: Tenant[]): Map<string, number> | null {
  const [scrapes, setScrapes] = useState<Scrape[]>([]);
  useEffect(() => {
    if (!enabled) return;
    let stop = false;
    let timer: number | undefined;
    const tick = async () => {
      try {
        const text = await (await request('GET', '/metrics')).text();
        if (!stop) setScrapes((old) => [...old.slice(-1), { at: Date.now(), samples: parse(text) }]);
      } catch {
        /* no rates then: the QPS limit is shown alone */
      }
      if (!stop) timer = window.setTimeout(tick, RATE_EVERY_MS);
    };
    tick();
    return () => {
      stop = true;
      window.clearTimeout(timer);
    };
  }, [enabled]);
  if (scrapes.length < 2) return null;
  const own = new Map([...tenantRates(scrapes)].map(([id, r]) => [id, r.total[r.total.length - 1] ?? 0]));
  const byId = new Map(tenants.map((t) => [t.id, t]));
  const out = new Map<string, number>();
  for (const t of tenants) {
    // Walk up from each tenant, adding its own rate to every ancestor.
    let at: Tenant | undefined = t;
    for (let hops = 0; at && hops < 64; hops++) {
      out.set(at.id, (out.get(at.id) ?? 0) + (own.get(t.id) ?? 0));
      at = at.parent_id ? byId.get(at.parent_id) : undefined;
    }
  }
  return out;
}

export function TenantsPage() {
  const s = useSession();
  const root = isRoot(s);
  // Whatever list_tenants gives this key: every tenant for the admin, its own for a tenant admin.
  const { data, error, reload } = useLoad<Tenant[]>(
    () =>
      listAll<Tenant>('/api/v1/tenants', (b) => b.tenants).catch((e) =>
        s.who.tenant_id ? get<Tenant>(`/api/v1/tenants/${enc(s.who.tenant_id)}`).then((t) => [t]) : Promise.reject(e),
      ),
    [root],
  );
  const notice = useNotice();
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<Tenant | null>(null);
  const [deleting, setDeleting] = useState<Tenant | null>(null);
  const tenants = data ?? [];
  // The rate bucket of the signed-in key's own tenant, from the last response's X-RateLimit-*.
  const rate = data ? rateBucket() : null;
  // For a key that may read /metrics (the admin): every tenant's measured rate.
  const qpsUse = useQpsUse(s.metrics, tenants);
  const rows = treeOrder(tenants);

  const setStatus = (t: Tenant, status: 'active' | 'suspended') =>
    notice
      .run(
        () => call('PUT', `/api/v1/tenants/${enc(t.id)}`, { body: { status } }),
        `${t.name} is ${status === 'active' ? 'active again' : 'suspended: its keys now get 403'}.`,
      )
      .then(reload);

  return (
    <section aria-labelledby="page-title">
      <PageHeader
        title="Tenants"
        subtitle={root ? `${tenants.length} tenant${tenants.length === 1 ? '' : 's'}, children under their parent` : 'Your tenant'}
      >
        {root && (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New tenant
          </button>
        )}
      </PageHeader>
      {notice.view}
      <LoadError error={error} />
      {data && rows.length === 0 && <Empty>No tenants yet. Create one to give a customer its own quotas and keys.</Empty>}
      {rows.length > 0 && (
        <Table caption="Tenants" cols={['Name', 'Status', 'Isolation', 'Storage', 'Namespaces', 'Members', 'QPS', 'Created']} actions={root}>
              {rows.map(({ tenant: t, depth }) => (
                <tr key={t.id} data-tenant={t.name}>
                  <th scope="row" class="tree-cell">
                    <span class="tree-indent" style={{ paddingLeft: `${depth * 1.25}rem` }}>
                      {depth > 0 && (
                        <span class="tree-branch" aria-hidden="true">
                          └
                        </span>
                      )}
                      <span class="strong">{t.name}</span>
                      {depth > 0 && <span class="sr-only"> (child of {tenants.find((p) => p.id === t.parent_id)?.name})</span>}
                    </span>
                    <div class="mono small muted" title={t.id}>
                      {t.id.slice(0, 8)}…
                    </div>
                  </th>
                  <td>
                    <StatusBadge status={t.status} />
                  </td>
                  <td>{t.isolation_mode}</td>
                  <td class="bar-cell">
                    <Bar
                      label={`${t.name} storage`}
                      used={t.usage.storage_bytes}
                      limit={t.quotas.storage_quota_bytes}
                      format={fmtBytes}
                    />
                  </td>
                  <td class="bar-cell">
                    <Bar label={`${t.name} namespaces`} used={t.usage.namespaces} limit={t.quotas.max_namespaces} />
                  </td>
                  <td class="bar-cell">
                    <Bar label={`${t.name} members`} used={t.usage.members} limit={t.quotas.max_members} />
                  </td>
                  <td class="bar-cell">
                    {qpsUse ? (
                      <Bar
                        label={`${t.name} requests per second`}
                        used={Math.round((qpsUse.get(t.id) ?? 0) * 10) / 10}
                        limit={t.quotas.qps_limit}
                        format={(n) => `${n}/s`}
                      />
                    ) : rate && t.id === s.who.tenant_id ? (
                      <Bar label={`${t.name} requests this second`} used={rate.limit - rate.remaining} limit={rate.limit} format={(n) => `${n}/s`} />
                    ) : (
                      <span class="num">{t.quotas.qps_limit}/s</span>
                    )}
                  </td>
                  <td class="nowrap">
                    <Day at={t.created_at} />
                  </td>
                  {root && (
                    <td class="row-actions">
                      {t.status === 'suspended' ? (
                        <button type="button" onClick={() => setStatus(t, 'active')} aria-label={`Resume ${t.name}`}>
                          Resume
                        </button>
                      ) : (
                        <button type="button" onClick={() => setStatus(t, 'suspended')} aria-label={`Suspend ${t.name}`}>
                          Suspend
                        </button>
                      )}
                      <button type="button" onClick={() => setEditing(t)} aria-label={`Edit quotas of ${t.name}`}>
                        Quotas
                      </button>
                      <button type="button" class="danger-outline" onClick={() => setDeleting(t)} aria-label={`Delete ${t.name}`}>
                        Delete
                      </button>
                    </td>
                  )}
                </tr>
              ))}
        </Table>
      )}
      <CreateTenant
        open={creating}
        tenants={tenants}
        onClose={() => setCreating(false)}
        onCreate={(body) =>
          notice.act(() => call('POST', '/api/v1/tenants', { body }), `Tenant ${body.name} created.`, reload)
        }
      />
      {editing && (
        <EditQuotas
          tenant={editing}
          onClose={() => setEditing(null)}
          onSave={(quotas) =>
            notice.act(() => call('PUT', `/api/v1/tenants/${enc(editing.id)}`, { body: { quotas } }), `Quotas of ${editing.name} saved.`, reload)
          }
        />
      )}
      <ConfirmDelete
        what="tenant"
        name={deleting?.name ?? ''}
        open={!!deleting}
        consequence="Its namespaces with their memories, its keys and its members are deleted with it."
        onClose={() => setDeleting(null)}
        onConfirm={() =>
          notice.act(() => call('DELETE', `/api/v1/tenants/${enc(deleting!.id)}`), `Tenant ${deleting!.name} deleted.`, reload)
        }
      />
    </section>
  );
}

function CreateTenant(props: {
  open: boolean;
  tenants: Tenant[];
  onClose: () => void;
  onCreate: (body: { name: string; isolation_mode: string; parent_id?: string; quotas: Partial<Quotas> }) => Promise<boolean>;
}) {
  const [name, setName] = useState('');
  const [mode, setMode] = useState('logical');
  const [parent, setParent] = useState('');
  const [qps, setQps] = useState('100');
  const [gib, setGib] = useState('10');
  const submit = async (e: Event) => {
    e.preventDefault();
    const ok = await props.onCreate({
      name: name.trim(),
      isolation_mode: mode,
      parent_id: parent || undefined,
      quotas: { qps_limit: Number(qps), storage_quota_bytes: Math.round(Number(gib) * GIB) },
    });
    if (ok) {
      setName('');
      setParent('');
      props.onClose();
    }
  };
  return (
    <Dialog title="New tenant" open={props.open} onClose={props.onClose}>
      <form onSubmit={submit} class="form-grid">
        <Field label="Name" hint="3–64 letters, digits or _">
          {(id) => (
            <input id={id} required pattern="[A-Za-z0-9_]{3,64}" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          )}
        </Field>
        <Select label="Isolation mode" hint="logical: shared files; hybrid: a file per tenant; physical: a file per namespace" value={mode} onChange={setMode} options={[['logical', 'logical'], ['hybrid', 'hybrid'], ['physical', 'physical']]} />
        <TenantSelect
          label="Parent tenant"
          hint="A child's usage also counts against its parent's quotas"
          value={parent}
          onChange={setParent}
          tenants={props.tenants}
          none="None (top level)"
        />
        <div class="row">
          <Input label="QPS limit" type="number" min="1" required value={qps} onChange={setQps} />
          <Field label="Storage quota (GiB)">
            {(id) => (
              <input id={id} type="number" min="0.001" step="any" required value={gib} onInput={(e) => setGib(e.currentTarget.value)} />
            )}
          </Field>
        </div>
        <FormActions onCancel={props.onClose} submit="Create tenant" />
      </form>
    </Dialog>
  );
}

function EditQuotas(props: { tenant: Tenant; onClose: () => void; onSave: (q: Partial<Quotas>) => Promise<boolean> }) {
  const q = props.tenant.quotas;
  const [v, setV] = useState({
    storage: String(+(q.storage_quota_bytes / GIB).toFixed(3)),
    qps: String(q.qps_limit),
    members: String(q.max_members),
    namespaces: String(q.max_namespaces),
    connections: String(q.max_connections),
  });
  const set = (k: keyof typeof v) => (e: Event) => setV({ ...v, [k]: (e.currentTarget as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    const ok = await props.onSave({
      storage_quota_bytes: Math.round(Number(v.storage) * GIB),
      qps_limit: Number(v.qps),
      max_members: Number(v.members),
      max_namespaces: Number(v.namespaces),
      max_connections: Number(v.connections),
    });
    if (ok) props.onClose();
  };
  return (
    <Dialog title={`Quotas of ${props.tenant.name}`} open onClose={props.onClose}>
      <form onSubmit={submit} class="form-grid">
        <div class="row">
          <Field label="Storage quota (GiB)">
            {(id) => <input id={id} type="number" min="0.001" step="any" required value={v.storage} onInput={set('storage')} />}
          </Field>
          <Field label="QPS limit">
            {(id) => <input id={id} type="number" min="1" required value={v.qps} onInput={set('qps')} />}
          </Field>
        </div>
        <div class="row">
          <Field label="Max members">
            {(id) => <input id={id} type="number" min="0" required value={v.members} onInput={set('members')} />}
          </Field>
          <Field label="Max namespaces">
            {(id) => <input id={id} type="number" min="0" required value={v.namespaces} onInput={set('namespaces')} />}
          </Field>
          <Field label="Max connections">
            {(id) => <input id={id} type="number" min="1" required value={v.connections} onInput={set('connections')} />}
          </Field>
        </div>
        <FormActions onCancel={props.onClose} submit="Save quotas" />
      </form>
    </Dialog>
  );
}

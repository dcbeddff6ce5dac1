// Namespaces: memory counts, bytes, embedder, editable decay policy, created_at; create;
// delete with confirmation; the orphan view (namespaces whose tenant is gone or suspended).
import { useState } from 'preact/hooks';
import { call, enc, listAll, type Namespace, type Policy, type Tenant } from '../api';
import { canManage, isRoot, useSession } from '../session';
import { ConfirmDelete, Day, Dialog, Empty, Field, fmtBytes, FormActions, Input, LoadError, PageHeader, Table, TenantSelect, useLoad, useNotice } from '../ui';

interface Data {
  namespaces: Namespace[];
  tenants: Map<string, Tenant> | null;
}

/** Why a namespace is an orphan, or null. */
export function orphanReason(n: Namespace, tenants: Map<string, Tenant>): string | null {
  if (!n.tenant_id) return null;
  const t = tenants.get(n.tenant_id);
  if (!t) return 'tenant is gone';
  if (t.status !== 'active' && t.status !== 'provisioning') return `tenant ${t.name} is ${t.status}`;
  return null;
}

export function NamespacesPage(props: { params: URLSearchParams }) {
  const s = useSession();
  const root = isRoot(s);
  const manage = canManage(s);
  const { data, error, reload } = useLoad<Data>(async () => {
    const namespaces = await listAll<Namespace>('/v1/namespaces', (b) => b);
    let tenants: Map<string, Tenant> | null = null;
    if (root) tenants = new Map((await listAll<Tenant>('/api/v1/tenants', (b) => b.tenants)).map((t) => [t.id, t]));
    else if (s.tenant) tenants = new Map([[s.tenant.id, s.tenant]]);
    return { namespaces, tenants };
  }, [root]);
  const [view, setView] = useState<'all' | 'orphans'>(props.params.get('view') === 'orphans' ? 'orphans' : 'all');
  const notice = useNotice();
  const [creating, setCreating] = useState(false);
  const [policyOf, setPolicyOf] = useState<Namespace | null>(null);
  const [deleting, setDeleting] = useState<Namespace | null>(null);
  const tenants = data?.tenants ?? null;
  const tenantName = (id: string | null) => (id ? (tenants?.get(id)?.name ?? `${id.slice(0, 8)}… (gone)`) : '—');
  const all = data?.namespaces ?? [];
  const orphans = root && tenants ? all.filter((n) => orphanReason(n, tenants)) : [];
  const rows = view === 'orphans' ? orphans : all;

  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Namespaces" subtitle="Each an isolated store of memories, vectors and a knowledge graph">
        {manage && (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New namespace
          </button>
        )}
      </PageHeader>
      {root && (
        <div class="tabs" role="group" aria-label="Which namespaces">
          <button type="button" aria-pressed={view === 'all'} onClick={() => setView('all')}>
            All <span class="count">{all.length}</span>
          </button>
          <button type="button" aria-pressed={view === 'orphans'} onClick={() => setView('orphans')}>
            Orphans <span class="count">{orphans.length}</span>
          </button>
        </div>
      )}
      {view === 'orphans' && (
        <p class="subtitle view-note">
          Namespaces whose tenant is gone or not active: review them weekly and delete what nobody can reach any more.
        </p>
      )}
      {notice.view}
      <LoadError error={error} />
      {data && rows.length === 0 && <Empty>{view === 'orphans' ? 'No orphaned namespaces.' : 'No namespaces this key may see.'}</Empty>}
      {rows.length > 0 && (
        <Table caption={view === 'orphans' ? 'Orphaned namespaces' : 'Namespaces'} cols={['Name', 'Tenant', '#Memories', '#Size', 'Embedder', 'Policy', 'Created', ...(view === 'orphans' ? ['Why'] : [])]} actions>
              {rows.map((n) => (
                <tr key={n.name} data-namespace={n.name}>
                  <th scope="row" class="nowrap">
                    <a href={`#/memories?ns=${enc(n.name)}`} class="strong">
                      {n.name}
                    </a>
                    <div class="small muted">
                      {n.entity_count} entities · {n.relation_count} relations
                    </div>
                  </th>
                  <td>{tenantName(n.tenant_id)}</td>
                  <td class="num">{n.memory_count.toLocaleString('en-US')}</td>
                  <td class="num nowrap">{fmtBytes(n.storage_bytes)}</td>
                  <td class="small">{n.embedder ? `${n.embedder}${n.dimensions ? ` (${n.dimensions}-d)` : ''}` : 'not fixed yet'}</td>
                  <td class="small nowrap">
                    decay {n.policy.decay_rate} · min {n.policy.min_importance}
                    <br />
                    ttl {n.policy.ttl_default == null ? 'none' : `${n.policy.ttl_default} s`}
                  </td>
                  <td class="nowrap">
                    <Day at={n.created_at} />
                  </td>
                  {view === 'orphans' && <td>{tenants && orphanReason(n, tenants)}</td>}
                  <td class="row-actions">
                    <a class="button" href={`#/graph?ns=${enc(n.name)}`} aria-label={`Graph of ${n.name}`}>
                      Graph
                    </a>
                    {manage && (
                      <>
                        <button type="button" onClick={() => setPolicyOf(n)} aria-label={`Edit policy of ${n.name}`}>
                          Policy
                        </button>
                        <button type="button" class="danger-outline" onClick={() => setDeleting(n)} aria-label={`Delete ${n.name}`}>
                          Delete
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
        </Table>
      )}
      {creating && (
        <CreateNamespace
          tenants={root ? [...(tenants?.values() ?? [])] : []}
          onClose={() => setCreating(false)}
          onCreate={(body) =>
            notice.act(() => call('POST', '/v1/namespaces', { body }), `Namespace ${body.name} created.`, reload)
          }
        />
      )}
      {policyOf && (
        <EditPolicy
          ns={policyOf}
          onClose={() => setPolicyOf(null)}
          onSave={(policy) =>
            notice.act(() => call('PUT', `/v1/namespaces/${enc(policyOf.name)}/policy`, { body: policy }), `Policy of ${policyOf.name} saved.`, reload)
          }
        />
      )}
      <ConfirmDelete
        what="namespace"
        name={deleting?.name ?? ''}
        open={!!deleting}
        consequence="Its memories, vectors and graph are deleted at once."
        onClose={() => setDeleting(null)}
        onConfirm={() =>
          notice.act(() => call('DELETE', `/v1/namespaces/${enc(deleting!.name)}`), `Namespace ${deleting!.name} deleted.`, reload)
        }
      />
    </section>
  );
}

function CreateNamespace(props: {
  tenants: Tenant[];
  onClose: () => void;
  onCreate: (body: { name: string; tenant_id?: string }) => Promise<boolean>;
}) {
  const [name, setName] = useState('');
  const [tenant, setTenant] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    if (await props.onCreate({ name: name.trim(), tenant_id: tenant || undefined })) props.onClose();
  };
  return (
    <Dialog title="New namespace" open onClose={props.onClose}>
      <form onSubmit={submit} class="form-grid">
        <Field label="Namespace name" hint="1–128 letters, digits, _ . or -">
          {(id) => (
            <input id={id} required pattern="[A-Za-z0-9_.\-]{1,128}" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          )}
        </Field>
        {props.tenants.length > 0 && (
          <TenantSelect label="Owning tenant" value={tenant} onChange={setTenant} tenants={props.tenants} none="No tenant" />
        )}
        <FormActions onCancel={props.onClose} submit="Create namespace" />
      </form>
    </Dialog>
  );
}

function EditPolicy(props: { ns: Namespace; onClose: () => void; onSave: (p: Policy) => Promise<boolean> }) {
  const p = props.ns.policy;
  const [decay, setDecay] = useState(String(p.decay_rate));
  const [min, setMin] = useState(String(p.min_importance));
  const [ttl, setTtl] = useState(p.ttl_default == null ? '' : String(p.ttl_default));
  const submit = async (e: Event) => {
    e.preventDefault();
    const ok = await props.onSave({
      decay_rate: Number(decay),
      min_importance: Number(min),
      ttl_default: ttl.trim() === '' ? null : Number(ttl),
    });
    if (ok) props.onClose();
  };
  return (
    <Dialog title={`Policy of ${props.ns.name}`} open onClose={props.onClose}>
      <form onSubmit={submit} class="form-grid">
        <Input label="Decay rate" hint="Importance lost per day (0 keeps memories as they are)" type="number" step="any" min="0" required value={decay} onChange={setDecay} />
        <Field label="Minimum importance" hint="Memories that decay below it are not recalled">
          {(id) => (
            <input id={id} type="number" step="any" min="0" max="1" required value={min} onInput={(e) => setMin(e.currentTarget.value)} />
          )}
        </Field>
        <Input label="Default TTL (seconds)" hint="Empty: memories do not expire" type="number" min="1" value={ttl} onChange={setTtl} />
        <FormActions onCancel={props.onClose} submit="Save policy" />
      </form>
    </Dialog>
  );
}

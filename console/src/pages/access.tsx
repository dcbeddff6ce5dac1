// Members and keys of a tenant: add or remove members with roles; create keys (the secret is
// shown once), list them by prefix, revoke, rotate.
import { useEffect, useState } from 'preact/hooks';
import { call, enc, listAll, type Key, type Member, type Namespace, type Tenant } from '../api';
import { isRoot, useSession } from '../session';
import { ConfirmDelete, Dialog, Empty, Field, fmtDate, FormActions, Input, LoadError, PageHeader, Select, Table, TenantSelect, useLoad, useNotice } from '../ui';

const ROOT_KEYS = '';

export function AccessPage(props: { params: URLSearchParams }) {
  const s = useSession();
  const root = isRoot(s);
  const tenants = useLoad<Tenant[]>(
    () => (root ? listAll<Tenant>('/api/v1/tenants', (b) => b.tenants) : Promise.resolve(s.tenant ? [s.tenant] : [])),
    [root],
  );
  const [tenantId, setTenantId] = useState<string>(props.params.get('tenant') ?? (root ? ROOT_KEYS : (s.who.tenant_id ?? '')));
  const tenant = tenants.data?.find((t) => t.id === tenantId) ?? null;
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Members & keys" subtitle="Who belongs to a tenant, and the keys that reach its namespaces">
        {root && (
          <TenantSelect label="Tenant" value={tenantId} onChange={setTenantId} tenants={(tenants.data ?? [])} none="All keys (no tenant filter)" />
        )}
      </PageHeader>
      <LoadError error={tenants.error} />
      {tenant && <Members tenant={tenant} key={tenant.id} />}
      <Keys tenantId={tenantId || null} tenants={tenants.data ?? []} key={`keys-${tenantId}`} />
    </section>
  );
}

function Members(props: { tenant: Tenant }) {
  const t = props.tenant;
  const members = useLoad<Member[]>(() => listAll<Member>(`/api/v1/tenants/${enc(t.id)}/members`, (b) => b.members), [t.id]);
  const notice = useNotice();
  const [user, setUser] = useState('');
  const [role, setRole] = useState('viewer');
  const [removing, setRemoving] = useState<Member | null>(null);
  const add = async (e: Event) => {
    e.preventDefault();
    const ok = await notice.run(
      () => call('POST', `/api/v1/tenants/${enc(t.id)}/members`, { body: { user_identifier: user.trim(), role } }),
      `${user.trim()} added as ${role}.`,
    );
    if (ok) {
      setUser('');
      members.reload();
    }
  };
  return (
    <section class="card" aria-labelledby="members-title">
      <h2 id="members-title">Members of {t.name}</h2>
      {notice.view}
      <LoadError error={members.error} />
      <form class="inline-form" onSubmit={add} aria-label="Add a member">
        <Field label="User">
          {(id) => (
            <input id={id} required placeholder="name@example.com" value={user} onInput={(e) => setUser(e.currentTarget.value)} />
          )}
        </Field>
        <Select label="Role" value={role} onChange={setRole} options={[['viewer', 'viewer (read)'], ['editor', 'editor (read and write)'], ['admin', 'admin (manage the tenant)']]} />
        <button type="submit" class="primary">
          Add member
        </button>
      </form>
      {members.data && members.data.length === 0 && <Empty>No members yet.</Empty>}
      {members.data && members.data.length > 0 && (
        <Table caption={<>Members of {t.name}</>} cols={['User', 'Role', 'Member id', 'Added']} actions>
              {members.data.map((m) => (
                <tr key={m.member_id}>
                  <th scope="row">{m.user_identifier}</th>
                  <td>
                    <span class={`badge badge-role-${m.role}`}>{m.role}</span>
                  </td>
                  <td class="mono small">{m.member_id}</td>
                  <td class="nowrap">{fmtDate(m.added_at)}</td>
                  <td class="row-actions">
                    <button type="button" class="danger-outline" onClick={() => setRemoving(m)} aria-label={`Remove ${m.user_identifier}`}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
        </Table>
      )}
      <ConfirmDelete
        what="member"
        verb="Remove"
        name={removing?.user_identifier ?? ''}
        open={!!removing}
        consequence="The member's keys are revoked at once."
        onClose={() => setRemoving(null)}
        onConfirm={() =>
          notice.act(
            () => call('DELETE', `/api/v1/tenants/${enc(t.id)}/members/${enc(removing!.member_id)}`),
            `${removing!.user_identifier} removed; their keys are revoked.`,
            members.reload,
          )
        }
      />
    </section>
  );
}

function scope(k: Key, members: Member[]): string {
  if (k.namespaces?.length) return k.namespaces.map((g) => `${g.namespace} (${g.access})`).join(', ');
  if (k.member_id) {
    const m = members.find((x) => x.member_id === k.member_id);
    return `${m ? `${m.user_identifier} (${m.role})` : `member ${k.member_id.slice(0, 8)}…`}${k.role ? ` · ${k.role}` : ''}`;
  }
  if (k.role) return `tenant ${k.role}`;
  return '—';
}

function Keys(props: { tenantId: string | null; tenants: Tenant[] }) {
  const keys = useLoad<Key[]>(
    () => listAll<Key>('/v1/keys', (b) => b, props.tenantId ? { tenant_id: props.tenantId } : {}),
    [props.tenantId],
  );
  // Members of the tenant, to name the member a key was issued to.
  const members = useLoad<Member[]>(
    () => (props.tenantId ? listAll<Member>(`/api/v1/tenants/${enc(props.tenantId)}/members`, (b) => b.members) : Promise.resolve([])),
    [props.tenantId],
  );
  const notice = useNotice();
  const [prefix, setPrefix] = useState('');
  const [creating, setCreating] = useState(false);
  const [secret, setSecret] = useState<Key | null>(null);
  const [revoking, setRevoking] = useState<Key | null>(null);
  const tenantName = (id: string | null) => (id ? (props.tenants.find((t) => t.id === id)?.name ?? id.slice(0, 8)) : 'none');
  const shown = (keys.data ?? []).filter((k) => k.prefix.startsWith(prefix.trim()) || k.name.startsWith(prefix.trim()));
  const rotate = async (k: Key) => {
    try {
      const fresh = await call<Key>('POST', `/v1/keys/${enc(k.id)}/rotate`);
      setSecret(fresh);
      notice.setNotice({ kind: 'ok', text: `Key ${k.name} rotated: the old secret no longer works.` });
      keys.reload();
    } catch (e) {
      await notice.run(() => Promise.reject(e), '');
    }
  };
  return (
    <section class="card" aria-labelledby="keys-title">
      <div class="card-header">
        <h2 id="keys-title">API keys</h2>
        <button type="button" class="primary" onClick={() => setCreating(true)}>
          New key
        </button>
      </div>
      {notice.view}
      <LoadError error={keys.error} />
      <div class="inline-form">
        <Field label="Filter by prefix or name">
          {(id) => (
            <input id={id} type="search" placeholder="msk_…" value={prefix} onInput={(e) => setPrefix(e.currentTarget.value)} />
          )}
        </Field>
      </div>
      {keys.data && shown.length === 0 && <Empty>No keys{prefix ? ` starting with ${prefix}` : ''}.</Empty>}
      {shown.length > 0 && (
        <Table caption="API keys" cols={['Name', 'Prefix', 'Tenant', 'Scope', 'Created', 'Expires', 'State']} actions>
              {shown.map((k) => (
                <tr key={k.id} data-key={k.name}>
                  <th scope="row">{k.name}</th>
                  <td class="mono small">{k.prefix}</td>
                  <td>{tenantName(k.tenant_id)}</td>
                  <td class="small">{scope(k, members.data ?? [])}</td>
                  <td class="nowrap">{fmtDate(k.created_at)}</td>
                  <td class="nowrap">{fmtDate(k.expires_at)}</td>
                  <td>
                    <span class={`badge ${k.revoked ? 'badge-suspended' : 'badge-active'}`}>{k.revoked ? 'revoked' : 'active'}</span>
                  </td>
                  <td class="row-actions">
                    {!k.revoked && (
                      <>
                        <button type="button" onClick={() => rotate(k)} aria-label={`Rotate ${k.name}`}>
                          Rotate
                        </button>
                        <button type="button" class="danger-outline" onClick={() => setRevoking(k)} aria-label={`Revoke ${k.name}`}>
                          Revoke
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              ))}
        </Table>
      )}
      {creating && (
        <CreateKey
          tenantId={props.tenantId}
          tenants={props.tenants}
          onClose={() => setCreating(false)}
          onCreated={(k) => {
            setCreating(false);
            setSecret(k);
            keys.reload();
          }}
        />
      )}
      {secret && <SecretOnce created={secret} onClose={() => setSecret(null)} />}
      <ConfirmDelete
        what="key"
        verb="Revoke"
        name={revoking?.name ?? ''}
        open={!!revoking}
        consequence="Requests with this key are refused from now on."
        onClose={() => setRevoking(null)}
        onConfirm={() =>
          notice.act(() => call('DELETE', `/v1/keys/${enc(revoking!.id)}`), `Key ${revoking!.name} revoked.`, keys.reload)
        }
      />
    </section>
  );
}

function CreateKey(props: { tenantId: string | null; tenants: Tenant[]; onClose: () => void; onCreated: (k: Key) => void }) {
  const s = useSession();
  const [name, setName] = useState('');
  const [tenantId, setTenantId] = useState(props.tenantId ?? '');
  const [kind, setKind] = useState<'namespaces' | 'role' | 'member'>('namespaces');
  const [memberId, setMemberId] = useState('');
  const [members, setMembers] = useState<Member[]>([]);
  const [grants, setGrants] = useState<Record<string, '' | 'read' | 'write'>>({});
  const [role, setRole] = useState('viewer');
  const [expires, setExpires] = useState('');
  const [error, setError] = useState('');
  const [namespaces, setNamespaces] = useState<Namespace[]>([]);
  useEffect(() => {
    listAll<Namespace>('/v1/namespaces', (b) => b, tenantId ? { tenant_id: tenantId } : {})
      .then((all) => setNamespaces(tenantId ? all : all.filter((n) => !n.tenant_id)))
      .catch(() => setNamespaces([]));
    if (!tenantId) {
      setMembers([]);
      if (kind !== 'namespaces') setKind('namespaces');
      return;
    }
    listAll<Member>(`/api/v1/tenants/${enc(tenantId)}/members`, (b) => b.members)
      .then((m) => {
        setMembers(m);
        setMemberId(m[0]?.member_id ?? '');
      })
      .catch(() => setMembers([]));
  }, [tenantId]);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError('');
    const body: Record<string, unknown> = { name: name.trim() };
    if (tenantId) body.tenant_id = tenantId;
    if (kind === 'namespaces') {
      body.namespaces = Object.entries(grants)
        .filter(([, a]) => a)
        .map(([namespace, access]) => ({ namespace, access }));
    } else if (kind === 'role') body.role = role;
    else body.member_id = memberId;
    if (expires) body.expires_at = new Date(`${expires}T23:59:59Z`).toISOString();
    try {
      props.onCreated(await call<Key>('POST', '/v1/keys', { body }));
    } catch (err) {
      setError(String((err as Error).message));
    }
  };
  return (
    <Dialog title="New API key" open onClose={props.onClose}>
      <form onSubmit={submit} class="form-grid">
        <Input label="Key name" required maxLength={128} value={name} onChange={setName} />
        {isRoot(s) && (
          <TenantSelect label="Key tenant" value={tenantId} onChange={setTenantId} tenants={props.tenants} none="No tenant" />
        )}
        <fieldset>
          <legend>What the key may reach</legend>
          <label class="radio">
            <input type="radio" name="kind" checked={kind === 'namespaces'} onChange={() => setKind('namespaces')} /> Chosen
            namespaces
          </label>
          <label class="radio">
            <input type="radio" name="kind" checked={kind === 'role'} disabled={!tenantId} onChange={() => setKind('role')} /> A role
            over every namespace of the tenant
          </label>
          <label class="radio">
            <input
              type="radio"
              name="kind"
              checked={kind === 'member'}
              disabled={!tenantId || members.length === 0}
              onChange={() => setKind('member')}
            />{' '}
            Issued to a member (the member's role decides)
          </label>
        </fieldset>
        {kind === 'namespaces' && (
          <div class="grant-list">
            {namespaces.length === 0 && <Empty>No namespaces to grant{tenantId ? ' in this tenant' : ''}.</Empty>}
            {namespaces.map((n) => (
              <Field label={`Access to ${n.name}`} key={n.name}>
                {(id) => (
                  <select
                    id={id}
                    value={grants[n.name] ?? ''}
                    onChange={(e) => setGrants({ ...grants, [n.name]: e.currentTarget.value as '' | 'read' | 'write' })}
                  >
                    <option value="">none</option>
                    <option value="read">read</option>
                    <option value="write">write</option>
                  </select>
                )}
              </Field>
            ))}
          </div>
        )}
        {kind === 'role' && (
          <Select label="Role" value={role} onChange={setRole} options={[['viewer', 'viewer'], ['editor', 'editor'], ['admin', 'admin']]} />
        )}
        {kind === 'member' && (
          <Field label="Member">
            {(id) => (
              <select id={id} value={memberId} onChange={(e) => setMemberId(e.currentTarget.value)}>
                {members.map((m) => (
                  <option key={m.member_id} value={m.member_id}>
                    {m.user_identifier} ({m.role})
                  </option>
                ))}
              </select>
            )}
          </Field>
        )}
        <Input label="Expires on (optional)" type="date" value={expires} onChange={setExpires} />
        {error && (
          <p class="notice notice-error" role="alert">
            {error}
          </p>
        )}
        <FormActions onCancel={props.onClose} submit="Create key" />
      </form>
    </Dialog>
  );
}

/** The full secret of a new or rotated key: shown this once, with a copy button. */
function SecretOnce(props: { created: Key; onClose: () => void }) {
  const [copied, setCopied] = useState('');
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.created.key ?? '');
      setCopied('Copied to the clipboard.');
    } catch {
      setCopied('Copy failed: select the key and copy it by hand.');
    }
  };
  return (
    <Dialog title={`Key ${props.created.name}`} open onClose={props.onClose}>
      <p class="warning" role="alert">
        Copy this key now. It is shown only once: memsilo keeps only its hash and cannot show it again.
      </p>
      <Field label="Secret key">
        {(id) => <input id={id} class="mono secret" readOnly value={props.created.key} onFocus={(e) => e.currentTarget.select()} />}
      </Field>
      <p role="status" class="small">
        {copied}
      </p>
      <div class="actions">
        <button type="button" onClick={copy}>
          Copy key
        </button>
        <button type="button" class="primary" onClick={props.onClose}>
          I have stored it
        </button>
      </div>
    </Dialog>
  );
}

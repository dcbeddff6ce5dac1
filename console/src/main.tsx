import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import './style.css';
import { ApiError, currentKey, get, request, serverOperations, setKey, type Tenant, type WhoAmI } from './api';
import { canManage, describe, SessionContext, type Session } from './session';
import { errorText, Field } from './ui';
import { TenantsPage } from './pages/tenants';
import { AccessPage } from './pages/access';
import { NamespacesPage } from './pages/namespaces';
import { MemoriesPage } from './pages/memories';
import { GraphPage } from './pages/graph';
import { LivePage } from './pages/live';

interface PageDef {
  id: string;
  title: string;
  show: (s: Session) => boolean;
  view: (params: URLSearchParams) => preact.JSX.Element;
}

const PAGES: PageDef[] = [
  { id: 'tenants', title: 'Tenants', show: canManage, view: () => <TenantsPage /> },
  { id: 'access', title: 'Members & keys', show: canManage, view: (p) => <AccessPage params={p} /> },
  { id: 'namespaces', title: 'Namespaces', show: () => true, view: (p) => <NamespacesPage params={p} /> },
  { id: 'memories', title: 'Memories', show: () => true, view: (p) => <MemoriesPage params={p} /> },
  { id: 'graph', title: 'Graph', show: () => true, view: (p) => <GraphPage params={p} /> },
  { id: 'live', title: 'Live', show: (s) => s.metrics, view: () => <LivePage /> },
];

function parseHash(): { page: string; params: URLSearchParams } {
  const h = location.hash.replace(/^#\/?/, '');
  const [page, query] = h.split('?');
  return { page: page || '', params: new URLSearchParams(query ?? '') };
}

async function open(key: string): Promise<Omit<Session, 'signOut'>> {
  const who = await call(key);
  let tenant: Tenant | null = null;
  if (who.tenant_id && who.principal !== 'root') {
    tenant = await get<Tenant>(`/api/v1/tenants/${encodeURIComponent(who.tenant_id)}`).catch(() => null);
  }
  const metrics = await request('GET', '/metrics').then(
    () => true,
    () => false,
  );
  const ops = await serverOperations();
  return { who, tenant, metrics, ops };
}

async function call(key: string): Promise<WhoAmI> {
  setKey(key);
  try {
    return await get<WhoAmI>('/v1/whoami');
  } catch (e) {
    setKey(null);
    throw e;
  }
}

function SignIn(props: { onSignedIn: (s: Omit<Session, 'signOut'>) => void; error?: string }) {
  const [key, setKeyText] = useState('');
  const [error, setError] = useState(props.error ?? '');
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      props.onSignedIn(await open(key.trim()));
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401 ? 'This key is not valid (unknown, revoked or expired).' : errorText(err),
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin" id="main">
      <form class="card signin-card" onSubmit={submit} aria-labelledby="signin-title">
        <div class="brand brand-large" aria-hidden="true">
          <span class="brand-mark">m</span> memsilo
        </div>
        <h1 id="signin-title">Sign in to the console</h1>
        <p class="subtitle">
          Use an admin key, a tenant admin's key or a namespace key. The console shows exactly what that key may see. The
          key stays in this tab only.
        </p>
        <Field label="API key">
          {(id) => (
            <input
              id={id}
              type="password"
              autocomplete="off"
              spellcheck={false}
              required
              value={key}
              onInput={(e) => setKeyText(e.currentTarget.value)}
            />
          )}
        </Field>
        {error && (
          <p class="notice notice-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" class="primary wide" disabled={busy || !key.trim()}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

function Shell(props: { session: Session }) {
  const s = props.session;
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const on = () => setRoute(parseHash());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  const pages = PAGES.filter((p) => p.show(s));
  const page = pages.find((p) => p.id === route.page) ?? pages[0];
  useEffect(() => {
    document.title = `${page.title} · memsilo console`;
  }, [page.id]);
  return (
    <SessionContext.Provider value={s}>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <div class="layout">
        <aside class="sidebar">
          <div class="brand">
            <span class="brand-mark" aria-hidden="true">
              m
            </span>{' '}
            memsilo
          </div>
          <nav aria-label="Console">
            <ul>
              {pages.map((p) => (
                <li key={p.id}>
                  <a href={`#/${p.id}`} aria-current={p.id === page.id ? 'page' : undefined}>
                    {p.title}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
          <div class="whoami">
            <div class="whoami-label">Signed in as</div>
            <div class="whoami-value" data-testid="whoami">
              {describe(s.who, s.tenant)}
            </div>
            {s.who.key_id && <div class="mono small">key {s.who.key_id}</div>}
            <button type="button" class="wide" onClick={s.signOut}>
              Sign out
            </button>
          </div>
        </aside>
        <main id="main" tabIndex={-1} class="content">
          {page.view(route.params)}
        </main>
      </div>
    </SessionContext.Provider>
  );
}

function App() {
  const [session, setSession] = useState<Omit<Session, 'signOut'> | null>(null);
  const [restoring, setRestoring] = useState(!!currentKey());
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    const k = currentKey();
    if (!k) return;
    open(k)
      .then(setSession, (e) => setError(`Signed out: ${errorText(e)}`))
      .finally(() => setRestoring(false));
  }, []);
  const signOut = () => {
    setKey(null);
    setSession(null);
    location.hash = '';
  };
  if (restoring) return <main class="signin" id="main" aria-busy="true" />;
  if (!session) return <SignIn onSignedIn={setSession} error={error} />;
  return <Shell session={{ ...session, signOut }} key={session.who.key_id ?? 'root'} />;
}

render(<App />, document.getElementById('app')!);

// Who is signed in and what that key may do (decided by the server; the console only hides
// what would answer 403 anyway).
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Operation, Tenant, WhoAmI } from './api';

export interface Session {
  who: WhoAmI;
  /** The key's own tenant, when it has one and may read it. */
  tenant: Tenant | null;
  /** Whether GET /metrics answers this key. */
  metrics: boolean;
  /** Operations listed in the server's OpenAPI document. */
  ops: Map<string, Operation>;
  signOut: () => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('no session');
  return s;
}

export const isRoot = (s: Session) => s.who.principal === 'root';
export const isTenantAdmin = (s: Session) => s.who.principal === 'member' && s.who.role === 'admin';
export const canManage = (s: Session) => isRoot(s) || isTenantAdmin(s);

export function describe(who: WhoAmI, tenant: Tenant | null): string {
  const t = tenant ? ` of ${tenant.name}` : '';
  switch (who.principal) {
    case 'root':
      return 'Administrator';
    case 'member':
      return `Tenant ${who.role ?? 'member'}${t}`;
    case 'scoped': {
      const n = who.namespaces?.length ?? 0;
      return `Namespace key${t} · ${n} namespace${n === 1 ? '' : 's'}`;
    }
  }
}

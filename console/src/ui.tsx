// Small shared pieces: data loading, notices, dialogs, bars and formatting.
import type { ComponentChildren, JSX } from 'preact';
import { useCallback, useEffect, useId, useRef, useState } from 'preact/hooks';
import { ApiError, type Tenant } from './api';

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.status ? `${e.status} ${e.code}: ${e.message}` : e.message;
  return String(e);
}

/** Loads with `fn` whenever `deps` change; `reload` runs it again. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const seq = useRef(0);
  const reload = useCallback(() => {
    const n = ++seq.current;
    setLoading(true);
    fn().then(
      (d) => {
        if (n !== seq.current) return;
        setData(d);
        setError(null);
        setLoading(false);
      },
      (e) => {
        if (n !== seq.current) return;
        setError(e);
        setLoading(false);
      },
    );
  }, deps);
  useEffect(reload, [reload]);
  return { data, error, loading, reload };
}

/** A message for the outcome of the last action, announced to screen readers. */
export function useNotice() {
  const [notice, setNotice] = useState<{ kind: 'ok' | 'error'; text: string } | null>(null);
  const run = useCallback(async (what: () => Promise<unknown>, ok: string): Promise<boolean> => {
    try {
      await what();
      setNotice({ kind: 'ok', text: ok });
      return true;
    } catch (e) {
      setNotice({ kind: 'error', text: errorText(e) });
      return false;
    }
  }, []);
  /** `run`, then `after` (a reload) whatever the outcome. */
  const act = useCallback(
    (what: () => Promise<unknown>, ok: string, after: () => void): Promise<boolean> =>
      run(what, ok).then((done) => {
        after();
        return done;
      }),
    [run],
  );
  const view = <Notice notice={notice} onClose={() => setNotice(null)} />;
  return { run, act, view, setNotice };
}

export function Notice(props: { notice: { kind: 'ok' | 'error'; text: string } | null; onClose?: () => void }) {
  const n = props.notice;
  return (
    <div role={n?.kind === 'error' ? 'alert' : 'status'} aria-live="polite" class="notice-slot">
      {n && (
        <div class={`notice notice-${n.kind}`}>
          <span>{n.text}</span>
          {props.onClose && (
            <button type="button" class="link" onClick={props.onClose} aria-label="Dismiss message">
              ×
            </button>
          )}
        </div>
      )}
    </div>
  );
}

export function LoadError(props: { error: unknown }) {
  if (!props.error) return null;
  const e = props.error;
  const forbidden = e instanceof ApiError && (e.status === 403 || e.status === 401);
  return (
    <p class={`notice notice-${forbidden ? 'muted' : 'error'}`} role="alert">
      {forbidden ? `This key may not see this: ${errorText(e)}` : errorText(e)}
    </p>
  );
}

/** A modal built on <dialog>: focus is trapped and Escape closes it. */
export function Dialog(props: { title: string; open: boolean; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (props.open && !d.open) d.showModal();
    if (!props.open && d.open) d.close();
  }, [props.open]);
  return (
    <dialog ref={ref} aria-labelledby={titleId} onClose={props.onClose} onCancel={props.onClose}>
      {props.open && (
        <div class="dialog-body">
          <h2 id={titleId}>{props.title}</h2>
          {props.children}
        </div>
      )}
    </dialog>
  );
}

/** Deletion that asks for the object's name to be typed first. */
export function ConfirmDelete(props: {
  what: string;
  /** What the button says (Delete by default). */
  verb?: string;
  name: string;
  consequence: string;
  open: boolean;
  onClose: () => void;
  onConfirm: () => Promise<boolean>;
}) {
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  const id = useId();
  useEffect(() => setTyped(''), [props.open, props.name]);
  const submit = async (e: Event) => {
    e.preventDefault();
    if (typed !== props.name) return;
    setBusy(true);
    const ok = await props.onConfirm();
    setBusy(false);
    if (ok) props.onClose();
  };
  return (
    <Dialog title={`${props.verb ?? 'Delete'} ${props.what} ${props.name}`} open={props.open} onClose={props.onClose}>
      <form onSubmit={submit}>
        <p class="warning">{props.consequence} This cannot be undone.</p>
        <label for={id}>
          Type <strong>{props.name}</strong> to confirm
        </label>
        <input id={id} value={typed} autocomplete="off" onInput={(e) => setTyped(e.currentTarget.value)} />
        <div class="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class="danger" disabled={typed !== props.name || busy}>
            {props.verb ?? 'Delete'} {props.what}
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** A labelled control: the label is tied to the first child by id. */
export function Field(props: { label: string; hint?: string; children: (id: string) => JSX.Element }) {
  const id = useId();
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      {props.children(id)}
      {props.hint && <small class="hint">{props.hint}</small>}
    </div>
  );
}

type InputAttrs = Omit<JSX.InputHTMLAttributes<HTMLInputElement>, 'value' | 'onChange' | 'onInput' | 'label' | 'id'>;

/** A labelled text (or number, date, search) input. */
export function Input(props: { label: string; hint?: string; value: string; onChange: (v: string) => void } & InputAttrs) {
  const { label, hint, value, onChange, ...rest } = props;
  return (
    <Field label={label} hint={hint}>
      {(id) => <input id={id} {...rest} value={value} onInput={(e) => onChange(e.currentTarget.value)} />}
    </Field>
  );
}

/** A labelled choice among fixed options: [value, text] pairs. */
export function Select(props: { label: string; hint?: string; value: string; onChange: (v: string) => void; options: [string, string][] }) {
  return (
    <Field label={props.label} hint={props.hint}>
      {(id) => (
        <select id={id} value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
          {props.options.map(([value, text]) => (
            <option key={value} value={value}>
              {text}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

/** Use against a limit as a bar. */
export function Bar(props: { label: string; used: number; limit: number; format?: (n: number) => string }) {
  const f = props.format ?? ((n: number) => n.toLocaleString('en-US'));
  const pct = props.limit > 0 ? Math.min(100, (props.used / props.limit) * 100) : 0;
  const level = pct >= 90 ? 'high' : pct >= 70 ? 'mid' : 'low';
  const text = `${f(props.used)} of ${f(props.limit)}`;
  return (
    <div class="bar-wrap" title={`${props.label}: ${text}`}>
      <div
        class="bar"
        role="meter"
        aria-label={props.label}
        aria-valuemin={0}
        aria-valuemax={props.limit}
        aria-valuenow={props.used}
        aria-valuetext={text}
      >
        <div class={`bar-fill bar-${level}`} style={{ width: `${Math.max(pct, props.used > 0 ? 1.5 : 0)}%` }} />
      </div>
      <span class="bar-text">{text}</span>
    </div>
  );
}

export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v >= 10 ? 0 : 1)} ${units[i]}`;
}

export function fmtDate(s: string | null | undefined): string {
  if (!s) return '—';
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) return s;
  return d.toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
}

/** A date without the time, the full time in a tooltip. */
export function Day(props: { at: string | null | undefined }) {
  return <time dateTime={props.at ?? undefined} title={fmtDate(props.at)}>{props.at ? fmtDate(props.at).slice(0, 10) : '—'}</time>;
}

export function StatusBadge(props: { status: string }) {
  return <span class={`badge badge-${props.status}`}>{props.status}</span>;
}

export function PageHeader(props: { title: string; subtitle?: string; children?: ComponentChildren }) {
  return (
    <header class="page-header">
      <div>
        <h1>{props.title}</h1>
        {props.subtitle && <p class="subtitle">{props.subtitle}</p>}
      </div>
      <div class="page-actions">{props.children}</div>
    </header>
  );
}

export function Empty(props: { children: ComponentChildren }) {
  return <p class="empty">{props.children}</p>;
}

/** A table's header row; a column named `#x` is numeric (right-aligned); `actions` adds an
 * unlabelled column for the row's buttons. */
/** Column headers (`#name`: a numeric column); `actions` adds a last, unlabelled column (named
 * `Actions` for screen readers, or the given name). */
export function TableHead(props: { cols: string[]; actions?: boolean | string }) {
  return (
    <thead>
      <tr>
        {props.cols.map((c) =>
          c.startsWith('#') ? (
            <th scope="col" class="num" key={c}>
              {c.slice(1)}
            </th>
          ) : (
            <th scope="col" key={c}>
              {c}
            </th>
          ),
        )}
        {props.actions && (
          <th scope="col">
            <span class="sr-only">{typeof props.actions === 'string' ? props.actions : 'Actions'}</span>
          </th>
        )}
      </tr>
    </thead>
  );
}

/** A table with a caption for screen readers, its header row and `children` as its rows. */
export function Table(props: { caption: ComponentChildren; cols: string[]; actions?: boolean; class?: string; children: ComponentChildren }) {
  return (
    <div class="table-wrap">
      <table class={props.class}>
        <caption class="sr-only">{props.caption}</caption>
        <TableHead cols={props.cols} actions={props.actions} />
        <tbody>{props.children}</tbody>
      </table>
    </div>
  );
}

/** A dialog form's Cancel and submit buttons. */
export function FormActions(props: { onCancel: () => void; submit: string }) {
  return (
    <div class="actions">
      <button type="button" onClick={props.onCancel}>
        Cancel
      </button>
      <button type="submit" class="primary">
        {props.submit}
      </button>
    </div>
  );
}

/** A labelled choice of tenant; `none` names the empty choice. */
export function TenantSelect(props: {
  label: string;
  hint?: string;
  value: string;
  onChange: (v: string) => void;
  tenants: Tenant[];
  none: string;
}) {
  return (
    <Field label={props.label} hint={props.hint}>
      {(id) => (
        <select id={id} value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
          <option value="">{props.none}</option>
          {props.tenants.map((t) => (
            <option key={t.id} value={t.id}>
              {t.name}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

// Memories of a namespace: store one, the recall playground (query, filters, mode, top_k,
// scores), browsing with the list cursor and export, where the server offers them.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, call, callOperation, schemaField, type Memory } from '../api';
import { useSession } from '../session';
import { Dialog, Empty, errorText, Field, fmtDate, FormActions, Input, Notice, PageHeader, Select, Table, useNotice } from '../ui';
import { NamespacePicker, useChosenNamespace, useNamespaceNames } from './nspick';

export function MemoriesPage(props: { params: URLSearchParams }) {
  const names = useNamespaceNames();
  const [ns, setNs] = useChosenNamespace(props.params, names);
  const s = useSession();
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Memories" subtitle="Store, recall, browse and export the memories of one namespace">
        <NamespacePicker value={ns} onChange={setNs} names={names} />
      </PageHeader>
      <div class="grid-2">
        <Recall ns={ns} />
        <Store ns={ns} />
      </div>
      {s.ops.has('list_memories') && <Browse ns={ns} />}
      {s.ops.has('export_namespace') && <Export ns={ns} />}
    </section>
  );
}

/** The filter typed in a form: nothing when blank, else a JSON object (the server checks the
 * filter language itself and answers 400 naming what is wrong). */
export function filterOf(text: string): { filter?: unknown; error?: string } {
  if (!text.trim()) return {};
  let filter: unknown;
  try {
    filter = JSON.parse(text);
  } catch (err) {
    return { error: `The filter is not valid JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    return { error: 'The filter must be a JSON object, e.g. {"tags": {"$contains": "roadmap"}}' };
  }
  return { filter };
}

/** A server refusal of a request carrying a filter, said plainly. */
function refusal(err: unknown, filtered: boolean): string {
  const text = errorText(err);
  return filtered && err instanceof ApiError && err.status === 400 ? `The server refused the request (check the filter): ${text}` : text;
}

const FILTER_HINT = 'The filter language as JSON, e.g. {"tags": {"$contains": "roadmap"}} or {"importance": {"$gte": 0.5}}';

function tagsOf(text: string): string[] {
  return text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
}

function Store(props: { ns: string }) {
  const notice = useNotice();
  const [content, setContent] = useState('');
  const [tags, setTags] = useState('');
  const [importance, setImportance] = useState('0.5');
  const [agent, setAgent] = useState('');
  const [metadata, setMetadata] = useState('');
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    setError('');
    let meta: unknown;
    if (metadata.trim()) {
      try {
        meta = JSON.parse(metadata);
      } catch (err) {
        setError(`The metadata is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
    }
    const body = {
      namespace: props.ns,
      content,
      tags: tagsOf(tags),
      importance: Number(importance),
      agent_id: agent.trim() || undefined,
      metadata: meta,
    };
    if (await notice.run(() => call<Memory>('POST', '/v1/memory/store', { body }), `Stored in ${props.ns}.`)) setContent('');
  };
  return (
    <section class="card" aria-labelledby="store-title">
      <h2 id="store-title">Store a memory</h2>
      <form onSubmit={submit} class="form-grid">
        <Field label="Content">
          {(id) => <textarea id={id} rows={3} required value={content} onInput={(e) => setContent(e.currentTarget.value)} />}
        </Field>
        <div class="row">
          <Input label="Tags" hint="Comma-separated" value={tags} onChange={setTags} />
          <Input label="Importance" type="number" min="0" max="1" step="0.05" value={importance} onChange={setImportance} />
          <Input label="Agent id" value={agent} onChange={setAgent} />
        </div>
        <Field label="Metadata (JSON)" hint='Optional, e.g. {"tier": "gold"}'>
          {(id) => <textarea id={id} rows={1} class="mono" value={metadata} onInput={(e) => setMetadata(e.currentTarget.value)} />}
        </Field>
        <div class="actions">
          <button type="submit" class="primary" disabled={!props.ns}>
            Store memory
          </button>
        </div>
      </form>
      <Notice notice={error ? { kind: 'error', text: error } : null} />
      {notice.view}
    </section>
  );
}

function Recall(props: { ns: string }) {
  const [query, setQuery] = useState('');
  const [topK, setTopK] = useState('5');
  const [tags, setTags] = useState('');
  const [agent, setAgent] = useState('');
  const [minImportance, setMinImportance] = useState('');
  const [mode, setMode] = useState('');
  const [filter, setFilter] = useState('');
  const [modes, setModes] = useState<string[] | null>(null);
  const [hasFilter, setHasFilter] = useState(false);
  const [hits, setHits] = useState<Memory[] | null>(null);
  const [error, setError] = useState('');
  const [took, setTook] = useState(0);
  useEffect(() => {
    schemaField('Recall', 'mode').then((m) => setModes(m && m.length ? m : null));
    schemaField('Recall', 'filter').then((f) => setHasFilter(f !== null));
  }, []);
  const s = useSession();
  const [editing, setEditing] = useState<Memory | null>(null);
  const best = Math.max(0, ...(hits ?? []).map((h) => h.score ?? 0));
  const submit = async (e?: Event) => {
    e?.preventDefault();
    setError('');
    const body: Record<string, unknown> = { namespace: props.ns, query, top_k: Number(topK) };
    if (tagsOf(tags).length) body.tags = tagsOf(tags);
    if (agent.trim()) body.agent_id = agent.trim();
    if (minImportance !== '') body.min_importance = Number(minImportance);
    if (modes && mode) body.mode = mode;
    if (hasFilter) {
      const f = filterOf(filter);
      if (f.error) {
        setHits(null);
        setError(f.error);
        return;
      }
      if (f.filter) body.filter = f.filter;
    }
    const started = performance.now();
    try {
      setHits(await call<Memory[]>('POST', '/v1/memory/recall', { body }));
      setTook(performance.now() - started);
    } catch (err) {
      setHits(null);
      setError(refusal(err, 'filter' in body));
    }
  };
  return (
    <section class="card" aria-labelledby="recall-title">
      <h2 id="recall-title">Recall playground</h2>
      <form onSubmit={submit} class="form-grid" aria-label="Recall">
        <Input label="Query" required type="search" value={query} onChange={setQuery} />
        <div class="row">
          <Input label="Top k" type="number" min="1" max="100" value={topK} onChange={setTopK} />
          {modes && (
            <Field label="Mode">
              {(id) => (
                <select id={id} value={mode} onChange={(e) => setMode(e.currentTarget.value)}>
                  <option value="">server default</option>
                  {modes.map((m) => (
                    <option key={m} value={m}>
                      {m}
                    </option>
                  ))}
                </select>
              )}
            </Field>
          )}
          <Input label="Min importance" type="number" min="0" max="1" step="0.05" value={minImportance} onChange={setMinImportance} />
        </div>
        <div class="row">
          <Input label="Only tags" hint="All of them, comma-separated" value={tags} onChange={setTags} />
          <Input label="Only agent" value={agent} onChange={setAgent} />
        </div>
        {hasFilter && (
          <Field label="Filter (JSON)" hint={FILTER_HINT}>
            {(id) => <textarea id={id} rows={2} class="mono" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />}
          </Field>
        )}
        <div class="actions">
          <button type="submit" class="primary" disabled={!props.ns}>
            Recall
          </button>
        </div>
      </form>
      <Notice notice={error ? { kind: 'error', text: error } : null} />
      {hits && hits.length === 0 && <Empty>Nothing recalled.</Empty>}
      {hits && hits.length > 0 && (
        <>
          {/* Bars relative to the best hit: scores are on different scales per mode. */}
          <p class="small muted" role="status">
            {hits.length} result{hits.length === 1 ? '' : 's'} in {took.toFixed(0)} ms
          </p>
          <ol class="hits" aria-label="Recalled memories">
            {hits.map((h) => (
              <li key={h.id} class="hit">
                <div class="hit-score">
                  <span class="score" aria-label={`score ${h.score?.toFixed(3)}`}>
                    {h.score?.toFixed(3)}
                  </span>
                  <div class="bar" aria-hidden="true">
                    <div class="bar-fill bar-low" style={{ width: `${best > 0 ? Math.max(0, Math.min(1, (h.score ?? 0) / best)) * 100 : 0}%` }} />
                  </div>
                </div>
                <div class="hit-body">
                  <p class="hit-content">{h.content}</p>
                  <p class="small muted">
                    similarity {h.similarity?.toFixed(3) ?? '—'}
                    {typeof h.keyword_score === 'number' ? ` · keyword ${h.keyword_score.toFixed(3)}` : ''} · importance {h.importance} · {fmtDate(h.created_at)}
                    {h.agent_id ? ` · agent ${h.agent_id}` : ''}
                  </p>
                  {h.tags.length > 0 && (
                    <ul class="tags" aria-label="Tags of this memory">
                      {h.tags.map((t) => (
                        <li key={t} class="tag">
                          {t}
                        </li>
                      ))}
                    </ul>
                  )}
                </div>
                {s.ops.has('update_memory') && (
                  <div class="hit-actions">
                    <button type="button" onClick={() => setEditing(h)} aria-label={`Edit: ${h.content.slice(0, 40)}`}>
                      Edit
                    </button>
                  </div>
                )}
              </li>
            ))}
          </ol>
        </>
      )}
      {editing && (
        <EditMemory
          ns={props.ns}
          memory={editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            submit();
          }}
        />
      )}
    </section>
  );
}

/** Changes a memory's content, importance or tags with `update_memory` (content is embedded
 * again by the server). */
function EditMemory(props: { ns: string; memory: Memory; onClose: () => void; onSaved: () => void }) {
  const s = useSession();
  const m = props.memory;
  const [content, setContent] = useState(m.content);
  const [importance, setImportance] = useState(String(m.importance));
  const [tags, setTags] = useState(m.tags.join(', '));
  const [error, setError] = useState('');
  const submit = async (e: Event) => {
    e.preventDefault();
    setError('');
    const changes: Record<string, unknown> = { id: m.id, namespace: props.ns, importance: Number(importance), tags: tagsOf(tags) };
    if (content !== m.content) changes.content = content;
    try {
      await callOperation(s.ops.get('update_memory')!, changes);
      props.onSaved();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <Dialog title="Edit memory" open onClose={props.onClose}>
      <form onSubmit={submit} class="form-grid">
        <Field label="Memory content">
          {(id) => <textarea id={id} rows={3} required value={content} onInput={(e) => setContent(e.currentTarget.value)} />}
        </Field>
        <div class="row">
          <Input label="Memory importance" type="number" min="0" max="1" step="0.05" value={importance} onChange={setImportance} />
          <Input label="Memory tags" hint="Comma-separated" value={tags} onChange={setTags} />
        </div>
        <Notice notice={error ? { kind: 'error', text: error } : null} />
        <FormActions onCancel={props.onClose} submit="Save memory" />
      </form>
    </Dialog>
  );
}

interface MemoryPage {
  memories: Memory[];
  next_cursor: string | null;
}

/** Pages through `list_memories` with its cursor (optionally filtered and ordered), with
 * `count_memories` for the same filter. */
function Browse(props: { ns: string }) {
  const s = useSession();
  const [pages, setPages] = useState<MemoryPage[]>([]);
  const [size, setSize] = useState('20');
  const [order, setOrder] = useState('created_at');
  // The order the rows on screen were listed in (the select may already name another).
  const [shownOrder, setShownOrder] = useState('created_at');
  const [filter, setFilter] = useState('');
  const [count, setCount] = useState<{ n: number; filtered: boolean } | null>(null);
  const [error, setError] = useState('');
  const load = async (cursor: string | null) => {
    setError('');
    const f = filterOf(filter);
    if (f.error) {
      setError(f.error);
      return;
    }
    const where = { namespace: props.ns, ...(f.filter ? { filter: f.filter } : {}) };
    try {
      // The page and its count are asked for together and shown together, so a count of an
      // earlier filter is never on screen beside the rows of a new one.
      const listing = callOperation(s.ops.get('list_memories')!, {
        ...where,
        order_by: order,
        limit: Number(size),
        descending: true,
        ...(cursor ? { cursor } : {}),
      }).then((resp) => resp.json() as Promise<MemoryPage>);
      const counting =
        !cursor && s.ops.has('count_memories')
          ? callOperation(s.ops.get('count_memories')!, where).then((resp) => resp.json() as Promise<{ count: number }>)
          : null;
      const [page, counted] = await Promise.all([listing, counting]);
      setPages((p) => (cursor ? [...p, page] : [page]));
      setShownOrder(order);
      if (counted) setCount({ n: counted.count, filtered: !!f.filter });
    } catch (err) {
      if (!cursor) {
        setPages([]);
        setCount(null);
      }
      setError(refusal(err, !!f.filter));
    }
  };
  useEffect(() => {
    setPages([]);
    setCount(null);
  }, [props.ns]);
  const items = pages.flatMap((p) => p.memories);
  const next = pages.length ? pages[pages.length - 1].next_cursor : null;
  const orderName = `${shownOrder.replace('_', ' ')}, ${shownOrder === 'importance' ? 'highest' : 'newest'} first`;
  return (
    <section class="card" aria-labelledby="browse-title">
      <div class="card-header">
        <h2 id="browse-title">Browse</h2>
        {count !== null && (
          <span class="small muted" data-testid="browse-count">
            {count.n.toLocaleString('en-US')} memor{count.n === 1 ? 'y' : 'ies'}
            {count.filtered ? ' match the filter' : ' in all'}, {items.length} shown
          </span>
        )}
      </div>
      <form
        class="form-grid"
        aria-label="Browse memories"
        onSubmit={(e) => {
          e.preventDefault();
          load(null);
        }}
      >
        <div class="row">
          <Select label="Order by" value={order} onChange={setOrder} options={[['created_at', 'created at'], ['updated_at', 'updated at'], ['importance', 'importance']]} />
          <Select label="Page size" value={size} onChange={setSize} options={[['5', '5'], ['20', '20'], ['100', '100']]} />
        </div>
        <Field label="Browse filter (JSON)" hint={FILTER_HINT}>
          {(id) => <textarea id={id} rows={1} class="mono" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />}
        </Field>
        <div class="actions">
          <button type="submit" disabled={!props.ns}>
            {pages.length ? 'Reload' : 'List memories'}
          </button>
        </div>
      </form>
      <Notice notice={error ? { kind: 'error', text: error } : null} />
      {pages.length > 0 && items.length === 0 && <Empty>{filter.trim() ? 'No memory matches the filter.' : 'This namespace holds no memories.'}</Empty>}
      {items.length > 0 && (
        <Table caption={<>Memories of {props.ns}, by {orderName}</>} cols={['Content', 'Tags', '#Importance', 'Agent', 'Created']}>
              {items.map((m) => (
                <tr key={m.id}>
                  <td>{m.content}</td>
                  <td class="small">{m.tags.join(', ')}</td>
                  <td class="num">{m.importance}</td>
                  <td class="small">{m.agent_id ?? '—'}</td>
                  <td class="nowrap">{fmtDate(m.created_at)}</td>
                </tr>
              ))}
        </Table>
      )}
      {next && (
        <div class="actions">
          <button type="button" onClick={() => load(next)}>
            Load more
          </button>
        </div>
      )}
    </section>
  );
}

/** The namespace's export (every page of `export_namespace`) as a JSON Lines file. */
function Export(props: { ns: string }) {
  const s = useSession();
  const notice = useNotice();
  const [file, setFile] = useState<{ href: string; lines: number; ns: string } | null>(null);
  const run = () =>
    notice.run(async () => {
      const lines: unknown[] = [];
      let cursor: string | null = null;
      do {
        const resp = await callOperation(s.ops.get('export_namespace')!, { namespace: props.ns, ...(cursor ? { cursor } : {}) });
        const page = (await resp.json()) as { lines: unknown[]; next_cursor: string | null };
        lines.push(...page.lines);
        cursor = page.next_cursor;
      } while (cursor);
      const blob = new Blob(lines.map((l) => `${JSON.stringify(l)}\n`), { type: 'application/x-ndjson' });
      if (file) URL.revokeObjectURL(file.href);
      setFile({ href: URL.createObjectURL(blob), lines: lines.length, ns: props.ns });
    }, `Export of ${props.ns} is ready.`);
  return (
    <section class="card" aria-labelledby="export-title">
      <div class="card-header">
        <h2 id="export-title">Export</h2>
        <button type="button" onClick={run} disabled={!props.ns}>
          Export {props.ns || 'namespace'}
        </button>
      </div>
      <p class="small muted">Every memory, entity and relation of the namespace as JSON Lines, page by page.</p>
      {notice.view}
      {file && (
        <a class="button primary" href={file.href} download={`${file.ns}.jsonl`}>
          Download {file.ns}.jsonl ({file.lines} lines)
        </a>
      )}
    </section>
  );
}

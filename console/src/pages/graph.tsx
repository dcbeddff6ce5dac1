// The knowledge graph of a namespace: an entity's neighbourhood drawn as SVG. Drag a node to
// move it; click it (or focus it and press Enter) to explore its own neighbourhood.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { call, enc, get, type Entity, type Relation } from '../api';
import { forceLayout, type Point } from '../layout';
import { Empty, errorText, Input, Notice, PageHeader, Select, useNotice } from '../ui';
import { NamespacePicker, useChosenNamespace, useNamespaceNames } from './nspick';

const W = 880;
const H = 520;
const PALETTE = ['#4f46e5', '#0f766e', '#b45309', '#be123c', '#0369a1', '#15803d', '#a21caf', '#7c3aed'];

/** A colour per entity type: in order of first appearance (distinct for the first eight
 * types), then by a hash of the name. */
const seen: string[] = [];
function colorOf(type: string): string {
  let i = seen.indexOf(type);
  if (i < 0 && seen.length < PALETTE.length) i = seen.push(type) - 1;
  if (i >= 0) return PALETTE[i];
  let h = 0;
  for (const c of type) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

interface View {
  focus: string;
  entities: Entity[];
  relations: Relation[];
}

export function GraphPage(props: { params: URLSearchParams }) {
  const names = useNamespaceNames();
  const [ns, setNs] = useChosenNamespace(props.params, names);
  const [entity, setEntity] = useState(props.params.get('entity') ?? '');
  const [depth, setDepth] = useState('2');
  const [view, setView] = useState<View | null>(null);
  const [error, setError] = useState('');
  const [selected, setSelected] = useState<string | null>(null);

  const explore = async (what: string) => {
    setError('');
    try {
      const focus = await get<Entity>(`/v1/namespaces/${enc(ns)}/graph/entities/${enc(what)}`);
      const g = await get<{ entities: Entity[]; relations: Relation[] }>(`/v1/namespaces/${enc(ns)}/graph/neighbors`, {
        entity: focus.id,
        depth: Number(depth),
      });
      const entities = g.entities.some((e) => e.id === focus.id) ? g.entities : [focus, ...g.entities];
      setView({ focus: focus.id, entities, relations: g.relations });
      setSelected(focus.id);
      setEntity(focus.name);
    } catch (e) {
      setView(null);
      setError(errorText(e));
    }
  };
  const submit = (e: Event) => {
    e.preventDefault();
    explore(entity.trim());
  };
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Graph" subtitle="An entity's neighbourhood in a namespace's knowledge graph">
        <NamespacePicker value={ns} onChange={setNs} names={names} />
      </PageHeader>
      <form class="card inline-form" onSubmit={submit} aria-label="Explore an entity">
        <Input label="Entity" hint="Name or id" required value={entity} onChange={setEntity} />
        <Select label="Depth" value={depth} onChange={setDepth} options={[['1', '1 hop'], ['2', '2 hops'], ['3', '3 hops']]} />
        <button type="submit" class="primary" disabled={!ns}>
          Show neighbourhood
        </button>
      </form>
      <Notice notice={error ? { kind: 'error', text: error } : null} />
      {view && (
        <div class="graph-layout">
          <GraphCanvas view={view} selected={selected} onSelect={setSelected} onExplore={(id) => explore(id)} />
          <Details view={view} selected={selected} />
        </div>
      )}
      {!view && !error && <Empty>Enter an entity to draw its neighbourhood.</Empty>}
      <AddToGraph ns={ns} onAdded={(name) => view && explore(view.entities.find((e) => e.id === view.focus)?.name ?? name)} />
    </section>
  );
}

function GraphCanvas(props: { view: View; selected: string | null; onSelect: (id: string) => void; onExplore: (id: string) => void }) {
  const { view } = props;
  const initial = useMemo(
    () =>
      forceLayout(
        view.entities.map((e) => e.id),
        view.relations.map((r) => [r.source, r.target]),
        view.focus,
        W,
        H,
      ),
    [view],
  );
  const [pos, setPos] = useState<Map<string, Point>>(initial);
  useEffect(() => setPos(initial), [initial]);
  const svg = useRef<SVGSVGElement>(null);
  const drag = useRef<{ id: string; moved: boolean } | null>(null);
  const toLocal = (e: PointerEvent): Point => {
    const r = svg.current!.getBoundingClientRect();
    return { x: ((e.clientX - r.left) / r.width) * W, y: ((e.clientY - r.top) / r.height) * H };
  };
  const onMove = (e: PointerEvent) => {
    const d = drag.current;
    if (!d) return;
    d.moved = true;
    const p = toLocal(e);
    setPos((old) => new Map(old).set(d.id, p));
  };
  const onUp = () => {
    const d = drag.current;
    drag.current = null;
    if (d && !d.moved) props.onExplore(d.id);
  };
  const byId = new Map(view.entities.map((e) => [e.id, e]));
  return (
    <figure class="card graph-card">
      <svg
        ref={svg}
        viewBox={`0 0 ${W} ${H}`}
        class="graph"
        role="group"
        aria-label={`Graph of ${byId.get(view.focus)?.name}: ${view.entities.length} entities, ${view.relations.length} relations`}
        onPointerMove={onMove}
        onPointerUp={onUp}
        onPointerLeave={() => (drag.current = null)}
      >
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" fill="#94a3b8" />
          </marker>
        </defs>
        {view.relations.map((r) => {
          const a = pos.get(r.source);
          const b = pos.get(r.target);
          if (!a || !b) return null;
          const d = Math.max(1, Math.hypot(b.x - a.x, b.y - a.y));
          const end = { x: b.x - ((b.x - a.x) / d) * 22, y: b.y - ((b.y - a.y) / d) * 22 };
          return (
            <g key={r.id} class="edge">
              <line x1={a.x} y1={a.y} x2={end.x} y2={end.y} stroke="#94a3b8" stroke-width={1 + Math.min(3, r.weight)} marker-end="url(#arrow)" />
              <text x={(a.x + b.x) / 2} y={(a.y + b.y) / 2 - 6} class="edge-label" text-anchor="middle">
                {r.type}
              </text>
            </g>
          );
        })}
        {view.entities.map((e) => {
          const p = pos.get(e.id);
          if (!p) return null;
          const focus = e.id === view.focus;
          return (
            <g
              key={e.id}
              class={`node${props.selected === e.id ? ' node-selected' : ''}`}
              transform={`translate(${p.x},${p.y})`}
              tabIndex={0}
              role="button"
              aria-label={`${e.name} (${e.type})${focus ? ', centre' : ''}: explore`}
              onPointerDown={(ev) => {
                (ev.currentTarget as Element).setPointerCapture?.(ev.pointerId);
                drag.current = { id: e.id, moved: false };
                props.onSelect(e.id);
              }}
              onFocus={() => props.onSelect(e.id)}
              onKeyDown={(ev) => {
                if (ev.key === 'Enter' || ev.key === ' ') {
                  ev.preventDefault();
                  props.onExplore(e.id);
                }
              }}
            >
              <circle r={focus ? 20 : 15} fill={colorOf(e.type)} stroke="#fff" stroke-width="3" />
              <text y={focus ? 36 : 31} text-anchor="middle" class="node-label">
                {e.name}
              </text>
            </g>
          );
        })}
      </svg>
      <figcaption class="small muted">
        Drag a node to move it; click it or press Enter on it to explore its neighbourhood.
      </figcaption>
    </figure>
  );
}

function Details(props: { view: View; selected: string | null }) {
  const e = props.view.entities.find((x) => x.id === props.selected);
  const types = [...new Set(props.view.entities.map((x) => x.type))];
  return (
    <aside class="card graph-details" aria-label="Selected entity">
      {e ? (
        <>
          <h2>{e.name}</h2>
          <dl>
            <dt>Type</dt>
            <dd>
              <span class="swatch" style={{ background: colorOf(e.type) }} aria-hidden="true" /> {e.type}
            </dd>
            <dt>Id</dt>
            <dd class="mono small">{e.id}</dd>
            <dt>Relations</dt>
            <dd>
              <ul class="plain">
                {props.view.relations
                  .filter((r) => r.source === e.id || r.target === e.id)
                  .map((r) => (
                    <li key={r.id}>
                      {r.source_name} <span class="muted">—{r.type}→</span> {r.target_name}
                    </li>
                  ))}
              </ul>
            </dd>
            {Object.keys(e.properties ?? {}).length > 0 && (
              <>
                <dt>Properties</dt>
                <dd>
                  <pre class="mono small">{JSON.stringify(e.properties, null, 2)}</pre>
                </dd>
              </>
            )}
          </dl>
        </>
      ) : (
        <p class="muted">Select a node.</p>
      )}
      <h3>Types</h3>
      <ul class="plain legend">
        {types.map((t) => (
          <li key={t}>
            <span class="swatch" style={{ background: colorOf(t) }} aria-hidden="true" /> {t}
          </li>
        ))}
      </ul>
    </aside>
  );
}

function AddToGraph(props: { ns: string; onAdded: (name: string) => void }) {
  const notice = useNotice();
  const [name, setName] = useState('');
  const [type, setType] = useState('');
  const [source, setSource] = useState('');
  const [target, setTarget] = useState('');
  const [rel, setRel] = useState('');
  const addEntity = async (e: Event) => {
    e.preventDefault();
    const body = { name: name.trim(), ...(type.trim() ? { type: type.trim() } : {}) };
    if (await notice.run(() => call('POST', `/v1/namespaces/${enc(props.ns)}/graph/entities`, { body }), `Entity ${body.name} saved.`)) {
      props.onAdded(body.name);
      setName('');
    }
  };
  const addRelation = async (e: Event) => {
    e.preventDefault();
    const body = { source: source.trim(), target: target.trim(), type: rel.trim() };
    if (
      await notice.run(
        () => call('POST', `/v1/namespaces/${enc(props.ns)}/graph/relations`, { body }),
        `${body.source} —${body.type}→ ${body.target} saved.`,
      )
    ) {
      props.onAdded(body.source);
    }
  };
  return (
    <section class="card" aria-labelledby="add-graph-title">
      <h2 id="add-graph-title">Add to the graph</h2>
      {notice.view}
      <div class="grid-2">
        <form class="inline-form" onSubmit={addEntity} aria-label="Add an entity">
          <Input label="Entity name" required value={name} onChange={setName} />
          <Input label="Entity type" placeholder="entity" value={type} onChange={setType} />
          <button type="submit" disabled={!props.ns}>
            Add entity
          </button>
        </form>
        <form class="inline-form" onSubmit={addRelation} aria-label="Add a relation">
          <Input label="From" required value={source} onChange={setSource} />
          <Input label="Relation" required placeholder="works_at" value={rel} onChange={setRel} />
          <Input label="To" required value={target} onChange={setTarget} />
          <button type="submit" disabled={!props.ns}>
            Add relation
          </button>
        </form>
      </div>
    </section>
  );
}

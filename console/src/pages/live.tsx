// Live view fed from the server's /metrics: requests per second, latency percentiles, and
// 4xx/5xx per route and per tenant, as charts. Scraped every 2 s with the signed-in key.
import { useEffect, useRef, useState } from 'preact/hooks';
import { listAll, request, type Tenant } from '../api';
import { histogramDelta, histograms, parse, quantile, sumBy, tenantRates, TENANT_LATENCY, TENANT_REQUESTS, type Sample, type Scrape } from '../metrics';
import { Empty, errorText, fmtBytes, LoadError, PageHeader, TableHead } from '../ui';

const EVERY_MS = 2000;
const KEEP = 60;
const REQUESTS = 'memsilo_http_requests_total';
const LATENCY = 'memsilo_http_request_duration_seconds';
/** The console's own scrapes are left out of the charts. */
const OTHER = '_other';
const ownRoute = (l: Record<string, string>) => l.route === '/metrics';


export function LivePage() {
  const [scrapes, setScrapes] = useState<Scrape[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [paused, setPaused] = useState(false);
  // Tenant names for the ids in the metrics, where this key may list tenants.
  // (`_other`: the tenants past the server's bound on tenant series.)
  const [names, setNames] = useState<Map<string, string>>(new Map([[OTHER, 'other tenants']]));
  useEffect(() => {
    listAll<Tenant>('/api/v1/tenants', (b) => b.tenants)
      .then((ts) => setNames(new Map([[OTHER, 'other tenants'], ...ts.map((t): [string, string] => [t.id, t.name])])))
      .catch(() => {});
  }, []);
  const timer = useRef<number | undefined>();
  useEffect(() => {
    let stop = false;
    const tick = async () => {
      try {
        const text = await (await request('GET', '/metrics')).text();
        if (stop) return;
        setScrapes((old) => [...old.slice(-KEEP), { at: Date.now(), samples: parse(text) }]);
        setError(null);
      } catch (e) {
        if (!stop) setError(e);
      }
      if (!stop && !paused) timer.current = window.setTimeout(tick, EVERY_MS);
    };
    if (!paused) tick();
    return () => {
      stop = true;
      window.clearTimeout(timer.current);
    };
  }, [paused]);

  const last = scrapes[scrapes.length - 1];
  const first = scrapes[0];
  // Requests per second between consecutive scrapes.
  const series = scrapes.slice(1).map((s, i) => {
    const prev = scrapes[i];
    const count = (x: Scrape) => [...sumBy(x.samples, REQUESTS, [], (l) => !ownRoute(l)).values()].reduce((a, b) => a + b, 0);
    const secs = (s.at - prev.at) / 1000;
    return { at: s.at, rate: secs > 0 ? Math.max(0, count(s) - count(prev)) / secs : 0 };
  });
  const current = series.length ? series[series.length - 1].rate : 0;
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Live" subtitle={`From /metrics every ${EVERY_MS / 1000} s, watched for ${scrapes.length > 1 ? Math.round((last.at - first.at) / 1000) : 0} s`}>
        <button type="button" onClick={() => setPaused(!paused)} aria-pressed={paused}>
          {paused ? 'Resume' : 'Pause'}
        </button>
      </PageHeader>
      <LoadError error={error} />
      {error && <p class="small muted">{errorText(error)}</p>}
      {!last && !error && <Empty>Reading metrics…</Empty>}
      {last && (
        <>
          <div class="stats">
            <Stat label="Requests/s now" value={current.toFixed(1)} />
            <Stat
              label="Requests since start"
              value={[...sumBy(last.samples, REQUESTS, [], (l) => !ownRoute(l)).values()].reduce((a, b) => a + b, 0).toLocaleString('en-US')}
            />
            <Stat label="In flight" value={String(last.samples.find((s) => s.name === 'memsilo_http_requests_in_flight')?.value ?? 0)} />
            <Stat
              label="Errors (4xx / 5xx)"
              value={`${sumClass(last.samples, '4')} / ${sumClass(last.samples, '5')}`}
            />
          </div>
          <section class="card" aria-labelledby="rps-title">
            <h2 id="rps-title">Requests per second</h2>
            <LineChart points={series.map((p) => p.rate)} label="Requests per second over the last two minutes" />
          </section>
          <div class="grid-2">
            <RoutesChart last={last} />
            <TenantsChart last={last} names={names} />
          </div>
          <LatencyChart last={last} first={first} per="route" exclude={(route) => route === '/metrics'} />
          <div class="grid-2">
            <TenantRates scrapes={scrapes} names={names} />
            <LatencyChart last={last} first={first} per="tenant" names={names} />
          </div>
        </>
      )}
    </section>
  );
}

function sumClass(samples: Sample[], cls: string): number {
  return [...sumBy(samples, REQUESTS, [], (l) => (l.status ?? '').startsWith(cls) && !ownRoute(l)).values()].reduce((a, b) => a + b, 0);
}

function Stat(props: { label: string; value: string }) {
  return (
    <div class="card stat">
      <div class="stat-value">{props.value}</div>
      <div class="stat-label">{props.label}</div>
    </div>
  );
}

function LineChart(props: { points: number[]; label: string }) {
  const w = 900;
  const h = 160;
  const max = Math.max(1, ...props.points);
  const step = w / Math.max(1, 60 - 1);
  const offset = w - (props.points.length - 1) * step;
  const xy = props.points.map((v, i) => [offset + i * step, h - 8 - (v / max) * (h - 24)] as const);
  const path = xy.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join(' ');
  const area = xy.length ? `${path} L${xy[xy.length - 1][0].toFixed(1)},${h - 8} L${xy[0][0].toFixed(1)},${h - 8} Z` : '';
  return (
    <svg viewBox={`0 0 ${w} ${h}`} class="chart" role="img" aria-label={`${props.label}; peak ${max.toFixed(1)}/s`}>
      {[0, 0.5, 1].map((f) => (
        <g key={f}>
          <line x1="0" x2={w} y1={h - 8 - f * (h - 24)} y2={h - 8 - f * (h - 24)} class="grid-line" />
          <text x="4" y={h - 12 - f * (h - 24)} class="axis-label">
            {(max * f).toFixed(max * f < 10 ? 1 : 0)}/s
          </text>
        </g>
      ))}
      {area && <path d={area} class="area" />}
      {path && <path d={path} class="line" />}
    </svg>
  );
}

/** Horizontal stacked bars: ok / 4xx / 5xx per key. */
function StackedBars(props: { rows: { key: string; ok: number; c4: number; c5: number }[]; label: string; errorsOnly?: boolean }) {
  const max = Math.max(1, ...props.rows.map((r) => r.ok + r.c4 + r.c5));
  const rowH = 26;
  const w = 520;
  const labelW = 210;
  const h = props.rows.length * rowH + 24;
  return (
    <svg viewBox={`0 0 ${w} ${h}`} class="chart" role="img" aria-label={props.label}>
      {props.rows.map((r, i) => {
        const y = i * rowH + 4;
        const scale = (w - labelW - 90) / max;
        const okW = r.ok * scale;
        const c4W = r.c4 * scale;
        const c5W = r.c5 * scale;
        return (
          <g key={r.key}>
            <text x={labelW - 8} y={y + 14} text-anchor="end" class="axis-label mono">
              {r.key.length > 30 ? `…${r.key.slice(-29)}` : r.key}
            </text>
            <rect x={labelW} y={y} width={okW} height={18} class="seg-ok" />
            <rect x={labelW + okW} y={y} width={c4W} height={18} class="seg-4xx" />
            <rect x={labelW + okW + c4W} y={y} width={c5W} height={18} class="seg-5xx" />
            <text x={labelW + okW + c4W + c5W + 6} y={y + 14} class="axis-label">
              {r.ok + r.c4 + r.c5}
              {r.c4 + r.c5 ? ` (${r.c4}/${r.c5})` : ''}
            </text>
          </g>
        );
      })}
      <g transform={`translate(${labelW}, ${h - 8})`} class="axis-label">
        {!props.errorsOnly && (
          <>
            <rect width="10" height="8" y="-8" class="seg-ok" />
            <text x="14">2xx</text>
          </>
        )}
        <rect x="50" width="10" height="8" y="-8" class="seg-4xx" />
        <text x="64">4xx</text>
        <rect x="100" width="10" height="8" y="-8" class="seg-5xx" />
        <text x="114">5xx</text>
      </g>
    </svg>
  );
}

/** Counts of `name` per `label` since the server started, split into 2xx/4xx/5xx (by its
 * `status` or `class` label). */
function byStatus(
  last: Scrape,
  name: string,
  label: string,
  exclude: (l: Record<string, string>) => boolean,
  names: Map<string, string> = new Map(),
) {
  const status = last.samples.some((s) => s.name === name && 'class' in s.labels) ? 'class' : 'status';
  const totals = new Map<string, { key: string; ok: number; c4: number; c5: number }>();
  for (const [k, v] of sumBy(last.samples, name, [label, status], (l) => !exclude(l))) {
    const [id, st] = k.split('\t');
    const key = names.get(id) ?? id;
    const t = totals.get(key) ?? { key, ok: 0, c4: 0, c5: 0 };
    if (st.startsWith('5')) t.c5 += v;
    else if (st.startsWith('4')) t.c4 += v;
    else t.ok += v;
    totals.set(key, t);
  }
  return [...totals.values()].filter((r) => r.ok + r.c4 + r.c5 > 0).sort((a, b) => b.ok + b.c4 + b.c5 - (a.ok + a.c4 + a.c5));
}

function RoutesChart(props: { last: Scrape }) {
  const rows = byStatus(props.last, REQUESTS, 'route', ownRoute);
  return (
    <section class="card" aria-labelledby="routes-title">
      <h2 id="routes-title">Requests and errors per route</h2>
      <p class="small muted">Since the server started</p>
      {rows.length ? <StackedBars rows={rows.slice(0, 12)} label="Requests per route, split into 2xx, 4xx and 5xx" /> : <Empty>No requests yet.</Empty>}
    </section>
  );
}

/** p50/p95/p99 per route (`memsilo_http_request_duration_seconds`) or per tenant
 * (`memsilo_tenant_request_duration_seconds`). */
function LatencyChart(props: {
  last: Scrape;
  first: Scrape;
  per: 'route' | 'tenant';
  exclude?: (key: string) => boolean;
  names?: Map<string, string>;
}) {
  const [family, label] = props.per === 'route' ? [LATENCY, 'route'] : [TENANT_LATENCY, 'tenant_id'];
  const id = `${props.per}-latency-title`;
  const now = histograms(props.last.samples, family, label);
  const before = histograms(props.first.samples, family, label);
  const rows = [...now.entries()]
    .filter(([key]) => !props.exclude?.(key))
    .map(([key, buckets]) => {
      const windowed = histogramDelta(buckets, before.get(key));
      const use = windowed.some(([, c]) => c > 0) ? windowed : buckets;
      return { key, name: props.names?.get(key) ?? key, p50: quantile(0.5, use), p95: quantile(0.95, use), p99: quantile(0.99, use) };
    })
    .filter((r) => r.p50 !== null)
    .sort((a, b) => (b.p99 ?? 0) - (a.p99 ?? 0))
    .slice(0, 12);
  const max = Math.max(0.001, ...rows.map((r) => r.p99 ?? 0));
  const ms = (s: number | null) => (s === null ? '—' : s * 1000 < 10 ? (s * 1000).toFixed(2) : (s * 1000).toFixed(0));
  return (
    <section class="card" aria-labelledby={id}>
      <h2 id={id}>Latency per {props.per} (ms)</h2>
      <p class="small muted">p50 · p95 · p99 from the server's histogram buckets: of the requests seen while watching, else since the server started</p>
      {rows.length === 0 && <Empty>No requests yet.</Empty>}
      {rows.length > 0 && (
        <table class="compact">
          <caption class="sr-only">Latency percentiles per {props.per} in milliseconds</caption>
          <TableHead cols={[props.per === 'route' ? 'Route' : 'Tenant', '#p50', '#p95', '#p99']} actions="Chart" />
          <tbody>
            {rows.map((r) => (
              <tr key={r.key}>
                <th scope="row" class="mono small route-cell">
                  {r.name}
                </th>
                <td class="num">{ms(r.p50)}</td>
                <td class="num">{ms(r.p95)}</td>
                <td class="num">{ms(r.p99)}</td>
                <td class="spark-cell">
                  <svg viewBox="0 0 100 12" class="spark" aria-hidden="true">
                    <rect width={(100 * (r.p99 ?? 0)) / max} height="12" class="seg-p99" />
                    <rect width={(100 * (r.p95 ?? 0)) / max} height="12" class="seg-p95" />
                    <rect width={(100 * (r.p50 ?? 0)) / max} height="12" class="seg-p50" />
                  </svg>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function TenantRates(props: { scrapes: Scrape[]; names: Map<string, string> }) {
  const rates = [...tenantRates(props.scrapes).entries()]
    .map(([id, r]) => ({
      id,
      name: props.names.get(id) ?? id,
      ...r,
      now: r.total[r.total.length - 1] ?? 0,
      errNow: r.errors[r.errors.length - 1] ?? 0,
      peak: Math.max(0, ...r.total),
    }))
    .sort((a, b) => b.peak - a.peak || a.name.localeCompare(b.name))
    .slice(0, 12);
  const max = Math.max(1, ...rates.map((r) => r.peak));
  return (
    <section class="card" aria-labelledby="tenant-rates-title">
      <h2 id="tenant-rates-title">Requests per second per tenant</h2>
      <p class="small muted">Requests made with each tenant's keys, between scrapes; errors are its 4xx and 5xx</p>
      {rates.length === 0 && <Empty>No tenant requests yet.</Empty>}
      {rates.length > 0 && (
        <table class="compact">
          <caption class="sr-only">Requests per second per tenant</caption>
          <TableHead cols={['Tenant', '#now/s', '#errors/s', '#peak/s']} actions="Chart" />
          <tbody>
            {rates.map((r) => (
              <tr key={r.id} data-tenant-rate={r.name}>
                <th scope="row" class="small route-cell">
                  {r.name}
                </th>
                <td class="num">{r.now.toFixed(1)}</td>
                <td class="num">{r.errNow.toFixed(1)}</td>
                <td class="num">{r.peak.toFixed(1)}</td>
                <td class="rate-cell">
                  <Spark total={r.total} errors={r.errors} max={max} label={`${r.name}: requests per second, peak ${r.peak.toFixed(1)}`} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** A small line chart of a rate (and its errors) over the watched window. */
function Spark(props: { total: number[]; errors: number[]; max: number; label: string }) {
  const w = 120;
  const h = 24;
  // Across the width from the first scrape watched to the last.
  const step = w / Math.max(1, props.total.length - 1);
  const line = (points: number[]) =>
    points.map((v, i) => `${i ? 'L' : 'M'}${(i * step).toFixed(1)},${(h - 2 - (v / props.max) * (h - 4)).toFixed(1)}`).join(' ');
  return (
    <svg viewBox={`0 0 ${w} ${h}`} class="spark spark-line" role="img" aria-label={props.label}>
      {props.total.length > 0 && <path d={line(props.total)} class="line" />}
      {props.errors.some((e) => e > 0) && <path d={line(props.errors)} class="line line-error" />}
    </svg>
  );
}

/** Requests per tenant by class (or only its errors, from an older server), and the tenants'
 * storage gauge; tenant ids are shown by name when this key may list tenants. */
function TenantsChart(props: { last: Scrape; names: Map<string, string> }) {
  // Every request of each tenant by class where the server counts them, else its errors only.
  const family =
    props.last.samples.find((s) => s.name === TENANT_REQUESTS) ??
    props.last.samples.find((s) => s.name.endsWith('_total') && s.name !== REQUESTS && 'tenant_id' in s.labels && 'class' in s.labels);
  const names = new Map([...props.names, ['-', 'no tenant']]);
  const requests = family ? byStatus(props.last, family.name, 'tenant_id', ownRoute, names) : null;
  const onlyErrors = family?.name.includes('error');
  const storage = props.last.samples.filter((s) => s.name === 'memsilo_tenant_storage_bytes');
  const maxStorage = Math.max(1, ...storage.map((s) => s.value));
  return (
    <section class="card" aria-labelledby="tenants-live-title">
      <h2 id="tenants-live-title">Per tenant</h2>
      {requests ? (
        <>
          <p class="small muted">
            {onlyErrors ? '4xx and 5xx' : 'Requests'} since the server started
          </p>
          {requests.length > 0 ? (
            <StackedBars
              rows={requests.slice(0, 12)}
              label={onlyErrors ? 'Errors per tenant, split into 4xx and 5xx' : 'Requests per tenant, split into 2xx, 4xx and 5xx'}
              errorsOnly={onlyErrors}
            />
          ) : (
            <Empty>No errors.</Empty>
          )}
        </>
      ) : (
        <p class="small muted">This server exports no per-tenant request counters.</p>
      )}
      <h3>Storage</h3>
      {storage.length === 0 && <Empty>No tenants.</Empty>}
      <ul class="plain storage-list">
        {storage.map((s) => (
          <li key={s.labels.tenant_id}>
            <span class="storage-name">{props.names.get(s.labels.tenant_id) ?? s.labels.tenant ?? s.labels.tenant_id}</span>
            <span class="bar" aria-hidden="true">
              <span class="bar-fill bar-low" style={{ width: `${(100 * s.value) / maxStorage}%` }} />
            </span>
            <span class="num small">{fmtBytes(s.value)}</span>
          </li>
        ))}
      </ul>
    </section>
  );
}

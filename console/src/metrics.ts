// Reading the server's Prometheus text (/metrics): samples, rates between two scrapes, and
// latency percentiles from histogram buckets.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** One reading of /metrics and when it was taken (ms). */
export interface Scrape {
  at: number;
  samples: Sample[];
}

/** Per tenant (labelled by tenant id only): requests by class, and their latency. */
export const TENANT_REQUESTS = 'memsilo_tenant_requests_total';
export const TENANT_LATENCY = 'memsilo_tenant_request_duration_seconds';

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) {
      labels[l[1]] = l[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const value = m[3] === '+Inf' ? Infinity : Number(m[3]);
    if (!Number.isNaN(value)) out.push({ name: m[1], labels, value });
  }
  return out;
}

/** Sums `name`'s samples grouped by the labels in `by` (joined with a tab). */
export function sumBy(samples: Sample[], name: string, by: string[], where: (l: Record<string, string>) => boolean = () => true) {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== name || !where(s.labels)) continue;
    const key = by.map((b) => s.labels[b] ?? '').join('\t');
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

/** The q-quantile (0..1) of a histogram given as cumulative (upper bound, count) pairs,
 * interpolated linearly inside the bucket; the last finite bound if it falls in +Inf. */
export function quantile(q: number, buckets: [number, number][]): number | null {
  const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
  const total = sorted.length ? sorted[sorted.length - 1][1] : 0;
  if (!total) return null;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank) {
      if (!Number.isFinite(bound)) return prevBound;
      const inBucket = count - prevCount;
      return inBucket > 0 ? prevBound + ((bound - prevBound) * (rank - prevCount)) / inBucket : bound;
    }
    prevBound = bound;
    prevCount = count;
  }
  return prevBound;
}

/** Histogram buckets of `name` per value of `label`: (le, cumulative count). */
export function histograms(samples: Sample[], name: string, label: string): Map<string, [number, number][]> {
  const out = new Map<string, [number, number][]>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket`) continue;
    const key = s.labels[label] ?? '';
    const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
    out.set(key, [...(out.get(key) ?? []), [le, s.value]]);
  }
  return out;
}

/** Bucket counts of `later` minus `earlier` (the requests between two scrapes). */
export function histogramDelta(later: [number, number][], earlier: [number, number][] | undefined): [number, number][] {
  if (!earlier) return later;
  const before = new Map(earlier.map(([le, c]) => [le, c]));
  const d = later.map(([le, c]) => [le, c - (before.get(le) ?? 0)] as [number, number]);
  return d.some(([, c]) => c < 0) ? later : d;
}

/** Requests per second of each tenant between consecutive scrapes (`memsilo_tenant_requests_total`),
 * all of them and its 4xx/5xx, over the watched window. */
export function tenantRates(scrapes: Scrape[]): Map<string, { total: number[]; errors: number[] }> {
  const out = new Map<string, { total: number[]; errors: number[] }>();
  const counts = (x: Scrape, errors: boolean) =>
    sumBy(x.samples, TENANT_REQUESTS, ['tenant_id'], (l) => !errors || l.class === '4xx' || l.class === '5xx');
  const tenants = new Set(scrapes.flatMap((x) => [...counts(x, false).keys()]));
  for (const t of tenants) out.set(t, { total: [], errors: [] });
  scrapes.slice(1).forEach((x, i) => {
    const prev = scrapes[i];
    const secs = (x.at - prev.at) / 1000;
    for (const [errors, key] of [[false, 'total'], [true, 'errors']] as const) {
      const now = counts(x, errors);
      const before = counts(prev, errors);
      for (const t of tenants) {
        const d = (now.get(t) ?? 0) - (before.get(t) ?? 0);
        out.get(t)![key].push(secs > 0 ? Math.max(0, d) / secs : 0);
      }
    }
  });
  return out;
}

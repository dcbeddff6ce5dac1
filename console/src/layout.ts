// A small force-directed layout for an entity's neighbourhood: springs along relations,
// repulsion between every pair, a pull towards the centre; the focused entity stays in the
// middle. Deterministic (initial positions on a circle), so the same graph draws the same.

export interface Point {
  x: number;
  y: number;
}

export function forceLayout(
  ids: string[],
  edges: [string, string][],
  center: string | null,
  width: number,
  height: number,
  iterations = 300,
): Map<string, Point> {
  const n = ids.length;
  const pos = new Map<string, Point>();
  const cx = width / 2;
  const cy = height / 2;
  const r0 = Math.min(width, height) * 0.35;
  ids.forEach((id, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, n);
    pos.set(id, id === center ? { x: cx, y: cy } : { x: cx + r0 * Math.cos(a), y: cy + r0 * Math.sin(a) });
  });
  if (n <= 1) return pos;
  const ideal = Math.max(70, Math.min(160, Math.sqrt((width * height) / n) * 0.75));
  const links = edges.filter(([a, b]) => a !== b && pos.has(a) && pos.has(b));
  let temperature = ideal;
  for (let it = 0; it < iterations; it++) {
    const disp = new Map<string, Point>(ids.map((id) => [id, { x: 0, y: 0 }]));
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const a = pos.get(ids[i])!;
        const b = pos.get(ids[j])!;
        let dx = a.x - b.x;
        let dy = a.y - b.y;
        let d = Math.hypot(dx, dy);
        if (d < 0.01) {
          dx = 0.01 * (i - j);
          dy = 0.01;
          d = Math.hypot(dx, dy);
        }
        const f = (ideal * ideal) / d;
        const da = disp.get(ids[i])!;
        const db = disp.get(ids[j])!;
        da.x += (dx / d) * f;
        da.y += (dy / d) * f;
        db.x -= (dx / d) * f;
        db.y -= (dy / d) * f;
      }
    }
    for (const [s, t] of links) {
      const a = pos.get(s)!;
      const b = pos.get(t)!;
      const dx = a.x - b.x;
      const dy = a.y - b.y;
      const d = Math.max(0.01, Math.hypot(dx, dy));
      const f = (d * d) / ideal;
      const da = disp.get(s)!;
      const db = disp.get(t)!;
      da.x -= (dx / d) * f;
      da.y -= (dy / d) * f;
      db.x += (dx / d) * f;
      db.y += (dy / d) * f;
    }
    for (const id of ids) {
      if (id === center) continue;
      const p = pos.get(id)!;
      const d = disp.get(id)!;
      d.x += (cx - p.x) * 0.05;
      d.y += (cy - p.y) * 0.05;
      const len = Math.max(0.01, Math.hypot(d.x, d.y));
      const step = Math.min(len, temperature);
      p.x = Math.min(width - 40, Math.max(40, p.x + (d.x / len) * step));
      p.y = Math.min(height - 30, Math.max(30, p.y + (d.y / len) * step));
    }
    temperature = Math.max(1, temperature * 0.97);
  }
  return pos;
}

'use strict';
// Framework filters onto memsilo's filter language (shared by the LangChain.js adapters).
// memsilo filters address memory fields and `metadata.<path>`; the adapters keep a framework's
// own fields under a base path, so each field key gains that prefix. Operators and the logical
// keys ($and, $or, $not) pass unchanged.

/** `filter` with each field key `k` rewritten to `${base}.k` (undefined stays undefined). */
function scopedFilter(filter, base) {
  if (filter === undefined || filter === null) return undefined;
  const out = {};
  for (const [key, value] of Object.entries(filter)) {
    if (key === '$and' || key === '$or') out[key] = value.map((part) => scopedFilter(part, base));
    else if (key === '$not') out[key] = scopedFilter(value, base);
    else if (key.startsWith('$')) out[key] = value; // unknown operator: the engine names it
    else out[`${base}.${key}`] = value;
  }
  return out;
}

/** The conjunction of the non-empty filters given (undefined when there are none). */
function allOf(...parts) {
  const present = parts.filter((p) => p && Object.keys(p).length > 0);
  if (present.length === 0) return undefined;
  return present.length === 1 ? present[0] : { $and: present };
}

module.exports = { scopedFilter, allOf };

//! Export and import of a namespace as JSON lines (see [`crate::transfer`] for the format).

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::handle::Handle;
use crate::transfer::{
    at_line, decode_cursor, encode_cursor, export_graph_row, export_memory, line_head, line_kind,
    name_line, parse_line, prepare_group, source_embedder, ExportArgs, ExportPage, Group,
    ImportArgs, ImportSummary, Kind, LineIn, Numbered, Vectors, DEFAULT_PAGE, FORMAT, MAX_PAGE,
};

impl Handle {
    /// One page of the JSON Lines export of a namespace (see the module docs).
    pub fn export_page(&self, args: ExportArgs) -> Result<ExportPage> {
        let limit = args.limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid("limit", format!("must be between 1 and {MAX_PAGE}")));
        }
        let ns = args.namespace.as_str();
        let mut lines = Vec::new();
        let (mut phase, mut after) = match &args.cursor {
            None => {
                let info = self.get_namespace(ns)?;
                lines.push(serde_json::value::to_raw_value(&json!({
                    "kind": "namespace", "format": FORMAT, "name": info.name,
                    "dimensions": info.dimensions, "embedder": info.embedder,
                    "policy": info.policy,
                }))?);
                ('e', String::new())
            }
            Some(c) => {
                let (p, a) = decode_cursor(c)?;
                (p, a.to_owned())
            }
        };
        loop {
            let room = limit.saturating_sub(lines.len());
            if room == 0 {
                return Ok(ExportPage { lines, next_cursor: Some(encode_cursor(phase, &after)) });
            }
            match phase {
                'e' | 'r' => {
                    let relations = phase == 'r';
                    let from = (!after.is_empty()).then_some(after.as_str());
                    let rows = self.graph_rows(ns, relations, from, room)?;
                    let full = rows.len() == room;
                    if let Some(last) = rows.last() {
                        last["id"].as_str().unwrap_or("").clone_into(&mut after);
                    }
                    let kind = if relations { "relation" } else { "entity" };
                    for row in rows {
                        lines.push(serde_json::value::to_raw_value(&export_graph_row(kind, row))?);
                    }
                    if !full {
                        phase = if relations { 'm' } else { 'r' };
                        after.clear();
                    }
                }
                _ => {
                    let from = (!after.is_empty()).then_some(after.as_str());
                    let (memories, next) = self.memory_rows(ns, from, room)?;
                    for m in &memories {
                        lines.push(export_memory(m)?);
                    }
                    match next {
                        Some(next) => after = next,
                        None => return Ok(ExportPage { lines, next_cursor: None }),
                    }
                }
            }
        }
    }

    /// Imports one batch of export lines into `namespace` (see the module docs).
    pub fn import_batch(&self, args: ImportArgs) -> Result<ImportSummary> {
        let first = args.first_line.unwrap_or(1);
        let ns = args.namespace.as_str();
        let mut summary = ImportSummary { lines: args.lines.len() as u64, ..Default::default() };
        let mut groups: Vec<(Kind, Numbered)> = Vec::new();
        for (i, line) in args.lines.into_iter().enumerate() {
            let number = first + i as u64;
            let (kind, map) = match line {
                // A line as text (what a file holds) is checked here, so its errors name it. A
                // memory line stays text: it is read once, typed (see `typed_memory`).
                Value::String(text) => {
                    if line_head(number, text.as_bytes())? == Kind::Memory {
                        (Kind::Memory, LineIn::Text(text))
                    } else {
                        let (kind, map) = parse_line(number, text.as_bytes())?;
                        (kind, LineIn::Object(map))
                    }
                }
                Value::Object(map) => {
                    let kind =
                        line_kind(&map).map_err(|r| Error::invalid(format!("line {number}"), r))?;
                    (kind, LineIn::Object(map))
                }
                _ => {
                    return Err(Error::invalid(
                        format!("line {number}"),
                        "not a JSON object (or its text)",
                    ))
                }
            };
            match groups.last_mut() {
                Some((k, items)) if *k == kind => items.push((number, map)),
                _ => groups.push((kind, vec![(number, map)])),
            }
        }
        // Check every line before writing any.
        let target = self.get_namespace(ns)?;
        let default = self.state.options.embedder.name();
        let mut source = args.embedder;
        let mut prepared = Vec::with_capacity(groups.len());
        for (kind, items) in groups {
            if kind == Kind::Namespace {
                source = items.last().and_then(|(_, line)| match line {
                    LineIn::Object(map) => source_embedder(map),
                    LineIn::Text(_) => None,
                });
            }
            let plan = Vectors::plan(source.as_deref(), target.embedder.as_deref(), default);
            prepared.push(prepare_group(kind, items, target.dimensions, &plan)?);
        }
        for group in prepared {
            match group {
                Group::Policy(line, policy) => {
                    // Retention is administration: only a changed policy needs the right.
                    let current = serde_json::to_value(self.get_memory_policy(ns)?)?;
                    if policy != current {
                        let set = json!({ "namespace": ns, "policy": policy });
                        self.call("set_memory_policy", set).map_err(|e| match e {
                            Error::Forbidden { namespace, .. } => Error::Forbidden {
                                message: format!(
                                    "line {line}: the export's decay policy differs and setting \
                                     it needs an admin key"
                                ),
                                namespace,
                            },
                            other => at_line(line, other),
                        })?;
                    }
                }
                Group::Entities(numbers, items) => {
                    let done = self
                        .import_entities(ns, items, |i| format!("entities[{i}]"))
                        .map_err(|e| name_line(e, "entities", &numbers))?;
                    summary.entities += done.len() as u64;
                }
                Group::Relations(numbers, items) => {
                    let done = self
                        .import_relations(ns, items, |i| format!("relations[{i}]"))
                        .map_err(|e| name_line(e, "relations", &numbers))?;
                    summary.relations += done.len() as u64;
                }
                Group::Memories(numbers, items, expired, by) => {
                    summary.expired += expired;
                    if items.is_empty() {
                        continue;
                    }
                    let n = items.len() as u64;
                    self.store_memories_by(ns, items, &by)
                        .map_err(|e| name_line(e, "memories", &numbers))?;
                    summary.memories += n;
                }
            }
        }
        Ok(summary)
    }
}

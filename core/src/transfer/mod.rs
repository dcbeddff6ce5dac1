//! Copy, export and import: a namespace as JSON Lines.
//!
//! An export is one JSON object per line, each with a `kind`:
//!
//! | kind | fields |
//! | --- | --- |
//! | `namespace` | `format` (`memsilo-export/3`), `name`, `dimensions`, `embedder`, `policy` — always the first line |
//! | `entity` | `id`, `name`, `type`, `properties` |
//! | `relation` | `id`, `source`, `target` (entity ids), `source_name`, `target_name`, `type`, `weight`, `properties` |
//! | `memory` | a memory as `get_memory` returns it (`id`, `content`, ...) plus `vector` |
//!
//! A memory's `vector` is written as a string: the standard (padded) base64 of its values as
//! little-endian IEEE 754 f32, 4 bytes each (see [`encode_vector`]) — a fifth of the size of
//! the numbers as JSON text, and neither formatted nor parsed digit by digit. An import reads
//! either that string or a JSON array of numbers (what `memsilo-export/1` files hold, and
//! what a hand-written line gives).
//!
//! The namespace line's `embedder` (`memsilo-export/3`) names what made the memories'
//! vectors: the embedder recorded on the namespace (as its stats show it), `caller` for
//! caller-supplied vectors, `null` when it holds none yet. An import keeps the vectors as that
//! embedder's when the target namespace uses the same one (or has none yet and the engine's
//! embedder is that one), so text stores and recalls in the target go on working; keeps them
//! as caller vectors when the source held caller vectors (or the target does); and when the
//! target is embedded with another embedder, drops them and embeds each memory's content again
//! with the target's. The line comes first and the faces split a file into batches, so a
//! batch without it passes the name in [`ImportArgs::embedder`] ([`Batch::embedder`] carries
//! it). Files of the earlier formats (`memsilo-export/1` and `/2`, without `embedder`) import
//! as they always did: their vectors are caller vectors.
//!
//! [`Handle::export_page`] returns the lines in pages with an opaque cursor, so no face ever
//! holds a whole namespace; [`Handle::import_batch`] takes a batch of lines, and an
//! [`crate::api::Importer`] (what every face imports with) the text of a whole file in chunks. Entities come
//! before the relations that name them, and a batch of one kind is one transaction: all of it
//! or none. Importing again is idempotent: memories keep their ids (an upsert), entities are
//! upserted by name and type (a new entity keeps its exported id, unless another entity of
//! the namespace has it), relations keep their ids (one already there is left alone) and find
//! their ends by exported id, else by name. So a copy has the same ids as its source.
//! A bad line is `invalid_argument` naming it: `line 50000: vector has 3 dimensions,
//! namespace has 384`.
//!
//! [`Handle::export_page`]: crate::Handle::export_page
//! [`Handle::import_batch`]: crate::Handle::import_batch

mod export;
mod format;
mod import;
mod lines;
#[cfg(test)]
mod tests;

pub use export::*;
pub use format::*;
pub(crate) use import::*;
pub use lines::*;

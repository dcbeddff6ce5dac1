//! JSON schemas of each operation's arguments and result, for the OpenAPI document.

use serde_json::{json, Map, Value};

/// An operation's argument schema, split the way the routes need it.
#[derive(Debug, Default)]
pub struct Args {
    /// The whole argument object.
    pub body: Value,
    /// Each argument's schema.
    pub fields: Map<String, Value>,
    /// Required arguments.
    pub required: Vec<String>,
}

/// Collects named schemas referenced by the document.
#[derive(Debug, Default)]
pub struct Components {
    defs: Map<String, Value>,
}

impl Components {
    /// The argument schema of `op`.
    pub fn request(&mut self, _op: &str) -> Args {
        Args { body: json!({ "type": "object" }), ..Args::default() }
    }

    /// The result schema of `op`.
    pub fn response(&mut self, _op: &str) -> Value {
        json!({})
    }

    /// The collected schemas.
    pub fn into_map(self) -> Map<String, Value> {
        self.defs
    }
}

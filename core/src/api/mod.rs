//! The one operation table shared by every transport: the HTTP server, the remote client,
//! and the Python, Node and C bindings all speak [`Request`] (an operation name plus JSON
//! arguments) and get a [`Reply`] back, so each face behaves identically by construction.

mod args;
mod backend;
mod dispatch;
mod importer;
mod operations;
mod reply;
mod subject;
#[cfg(test)]
mod tests;

pub use crate::document::decode;
pub use crate::error::{error_body, error_from_body};
pub use args::*;
pub use backend::Backend;
pub use importer::{ImportRun, ImportThread, Importer};
pub use operations::{Effect, Request, MAX_JSON_DEPTH};
pub use reply::{EncodedReply, Reply};

use reply::{with_message, Answer};

//! What the approximate index needs of the shared state ([`IndexHost`]).

use std::sync::Arc;

use super::State;
use crate::datastore::{DataTables, NamespaceId};
use crate::encryption::EnvKey;
use crate::error::Result;
use crate::index::IndexHost;
use crate::records::NamespaceRecord;
use crate::store::Store;

impl IndexHost for State {
    fn data_env(&self, rec: &NamespaceRecord) -> Result<Arc<Store<DataTables>>> {
        self.data_env_of(rec)
    }

    fn is_dead(&self, ns: NamespaceId) -> bool {
        State::is_dead(self, ns)
    }

    fn data_key(&self, rec: &NamespaceRecord) -> Result<Option<EnvKey>> {
        self.key_for(&rec.location, rec.tenant_id.as_deref())
    }
}

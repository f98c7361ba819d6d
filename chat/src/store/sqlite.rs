//! PLACEHOLDER — being written (SQLite backend).
use std::sync::Arc;
use super::{Store, StoreError, StoreResult};
pub struct SqliteStore;
pub(super) async fn open_dyn(_path: &std::path::Path) -> StoreResult<Arc<dyn Store>> {
    Err(StoreError::Backend("sqlite backend not built yet".into()))
}

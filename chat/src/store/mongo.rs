//! PLACEHOLDER — being written (MongoDB backend).
use std::sync::Arc;
use super::{Store, StoreError, StoreResult};
pub struct MongoStore;
pub(super) async fn open_dyn(_uri: &str) -> StoreResult<Arc<dyn Store>> {
    Err(StoreError::Backend("mongodb backend not built yet".into()))
}

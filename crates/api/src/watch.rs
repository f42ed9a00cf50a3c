//! The watch event envelope: one JSON object per line on a watch stream.

use serde::{Deserialize, Serialize};

/// `{"type":"ADDED","object":{...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WatchEvent<T> {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The object (a `Status` for `ERROR`).
    pub object: T,
}

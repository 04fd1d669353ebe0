//! `.on_error(Conn, topic: t)` (docs/LANGUAGE.md#on_error): where a stream's
//! runtime errors go besides the error counters.

use crate::plan::{ConfigValue, ConnectorId};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The connector that receives one error record per runtime error raised
/// by any operator of the stream ([`crate::OpSpec::OnError`]; its place in
/// the chain does not matter).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorRoute {
    /// The connector.
    pub connector: ConnectorId,
    /// Site parameters (`topic` overrides the connector's).
    pub params: Vec<(Arc<str>, ConfigValue)>,
}

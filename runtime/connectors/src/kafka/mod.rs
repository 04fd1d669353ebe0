//! The `kafka` connector (being written on its own branch; this file is replaced there).

use crate::error::ConfigError;
use crate::source::{Source, SourceConfig, SourceContext, SourceSender};
use crate::{ConnectorConfig, Sink, SinkContext};

/// Starts a kafka source.
pub(crate) fn open_source(
    config: &SourceConfig,
    _context: &SourceContext,
    _sender: SourceSender,
) -> Result<Box<dyn Source>, ConfigError> {
    Err(ConfigError::InvalidValue {
        connector: config.connector.name.clone(),
        param: "kind".into(),
        reason: "the kafka source is not available in this build".into(),
    })
}

/// Opens a kafka sink.
pub(crate) fn open_sink(
    config: &ConnectorConfig,
    _context: &SinkContext,
) -> Result<Box<dyn Sink>, ConfigError> {
    Err(ConfigError::InvalidValue {
        connector: config.name.clone(),
        param: "kind".into(),
        reason: "the kafka sink is not available in this build".into(),
    })
}

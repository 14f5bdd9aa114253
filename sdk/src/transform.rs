//! The trait a plugin implements, and the self-description it returns.

use serde::de::DeserializeOwned;

use crate::record::{Error, Record};

/// A plugin's self-description: name, version and the content types it
/// consumes and produces. The host validates a chain with it before running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Short plugin name, e.g. `parse`.
    pub name: String,
    /// Semantic version, normally `env!("CARGO_PKG_VERSION")`.
    pub version: String,
    /// Accepted input content types (`*/*` accepts anything).
    pub accepts: Vec<String>,
    /// Content types this plugin may emit.
    pub produces: Vec<String>,
}

impl Info {
    /// An info with no declared content types yet.
    pub fn new(name: &str, version: &str) -> Self {
        Info {
            name: name.to_owned(),
            version: version.to_owned(),
            accepts: Vec::new(),
            produces: Vec::new(),
        }
    }

    /// Declare accepted input content types.
    pub fn accepts(mut self, types: &[&str]) -> Self {
        self.accepts = types.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// Declare emitted content types.
    pub fn produces(mut self, types: &[&str]) -> Self {
        self.produces = types.iter().map(|t| (*t).to_owned()).collect();
        self
    }
}

/// A document transformation. Implement this, then call
/// [`export!`](crate::export) with the implementing type.
///
/// Only [`Transform::process`] is required for record-at-a-time plugins.
/// Override [`Transform::process_batch`] when a batch can be processed more
/// cheaply as a whole (vectorised model inference, shared lookups).
pub trait Transform: Sized + 'static {
    /// The stage configuration, deserialised from the pipeline file's
    /// `[stage.config]` table. Use [`NoConfig`] when there is none.
    type Config: DeserializeOwned + Default;

    /// Describe the plugin. Must not depend on configuration.
    fn info() -> Info;

    /// Build an instance from its configuration. An error here stops the
    /// pipeline before it starts, so validate the configuration fully.
    fn new(config: Self::Config) -> Result<Self, Error>;

    /// Process one record into zero or more output records.
    fn process(&mut self, record: Record) -> Result<Vec<Record>, Error>;

    /// Process a batch: exactly one result per input, in input order.
    fn process_batch(&mut self, batch: Vec<Record>) -> Vec<Result<Vec<Record>, Error>> {
        batch.into_iter().map(|r| self.process(r)).collect()
    }
}

/// Parse the JSON configuration the host passes to `init` into `T::Config`.
/// An empty string or `null` means "no configuration" (`Default`).
pub(crate) fn parse_config<T: Transform>(config: &str) -> Result<T::Config, Error> {
    let trimmed = config.trim();
    if trimmed.is_empty() || trimmed == "null" {
        return Ok(T::Config::default());
    }
    serde_json::from_str(trimmed)
        .map_err(|e| Error::BadInput(format!("invalid configuration for {}: {e}", T::info().name)))
}

/// The [`Transform::Config`] of a plugin that takes no configuration: accepts
/// an empty table and rejects any key, so a misplaced setting is reported.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

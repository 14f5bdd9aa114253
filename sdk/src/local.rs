//! Running a plugin natively, in-process, without the host or WASM.
//!
//! [`LocalInstance`] goes through the same configuration parsing as the
//! exported component, so unit tests and native-vs-WASM benchmarks exercise
//! exactly the plugin code that ships.

use crate::record::{Error, Record};
use crate::transform::{Transform, parse_config};

/// A plugin instance running natively. See the crate docs for an example.
pub struct LocalInstance<T: Transform> {
    plugin: T,
}

impl<T: Transform> LocalInstance<T> {
    /// Initialise the plugin with a JSON configuration (as the host would).
    pub fn new(config_json: &str) -> Result<Self, Error> {
        Ok(LocalInstance {
            plugin: T::new(parse_config::<T>(config_json)?)?,
        })
    }

    /// Process one record.
    pub fn process(&mut self, record: Record) -> Result<Vec<Record>, Error> {
        self.plugin.process(record)
    }

    /// Process a batch: one result per input, in order.
    pub fn process_batch(&mut self, batch: Vec<Record>) -> Vec<Result<Vec<Record>, Error>> {
        self.plugin.process_batch(batch)
    }

    /// The plugin's self-description.
    pub fn info(&self) -> crate::Info {
        T::info()
    }
}

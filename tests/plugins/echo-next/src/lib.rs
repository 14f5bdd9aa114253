//! Hot-swap test plugin: the next version of `echo` (`echo@0.2.0`). It
//! echoes every record with [`MARK`] appended to its body, so a test can
//! tell from an output alone which version produced it, and check that
//! against the output's lineage.

use weir_sdk::{Error, Info, Record, Transform};

/// The version this plugin says it is.
const VERSION: &str = "0.2.0";
/// What it appends to every body.
pub const MARK: &[u8] = b"\n<!-- echo 0.2.0 -->";

/// `echo`, version 0.2.0.
pub struct EchoNext;

/// No settings.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Transform for EchoNext {
    type Config = Config;

    fn info() -> Info {
        Info::new("echo", VERSION)
            .accepts(&["*/*"])
            .produces(&["*/*"])
    }

    fn new(_config: Config) -> Result<Self, Error> {
        Ok(EchoNext)
    }

    fn process(&mut self, mut record: Record) -> Result<Vec<Record>, Error> {
        record.body.extend_from_slice(MARK);
        Ok(vec![record])
    }
}

weir_sdk::export!(EchoNext);

//! Contract test plugin. Echoes every record unchanged, except when its
//! metadata asks for something else:
//! - `fanout = N`: emit N copies (N = 0 filters the record out), copy `i`
//!   with metadata `copy = i` added, so that tests can tell them apart;
//! - `fail = bad-input | failure`: return that error; `fail = panic`: panic
//!   (the instance traps);
//! - `fail-once = failure`: fail the first time a record id is seen, succeed
//!   on the retry (exercises the host's retry path).
//!
//! Config: `{"tag": "..."}` adds metadata `tag` to every output, so tests can
//! check that `init` received the stage configuration; `{"work": N}` spends
//! N million dependent multiply steps (about N ms of CPU) on every record
//! before answering, a stand-in for a costly model in benchmarks.

use std::collections::HashSet;

use weir_sdk::{Error, Info, Record, Transform};

/// The echo plugin.
pub struct Echo {
    tag: Option<String>,
    work: u64,
    failed_once: HashSet<String>,
}

/// Stage configuration.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    tag: Option<String>,
    #[serde(default)]
    work: u64,
}

impl Transform for Echo {
    type Config = Config;

    fn info() -> Info {
        Info::new("echo", env!("CARGO_PKG_VERSION"))
            .accepts(&["*/*"])
            .produces(&["*/*"])
    }

    fn new(config: Config) -> Result<Self, Error> {
        Ok(Echo {
            tag: config.tag,
            work: config.work,
            failed_once: HashSet::new(),
        })
    }

    fn process(&mut self, mut record: Record) -> Result<Vec<Record>, Error> {
        weir_sdk::count("records", 1);
        match record.meta("fail") {
            Some("bad-input") => return Err(Error::bad_input("asked to reject this record")),
            Some("failure") => return Err(Error::failure("asked to fail this record")),
            Some("panic") => panic!("asked to panic on {}", record.id),
            _ => {}
        }
        if record.meta("fail-once").is_some() && self.failed_once.insert(record.id.clone()) {
            return Err(Error::failure("failing the first attempt"));
        }
        busy(self.work);
        let fanout = record.meta("fanout").map(str::parse::<usize>).transpose();
        let fanout = fanout.map_err(|e| Error::bad_input(format!("fanout: {e}")))?;
        if let Some(tag) = &self.tag {
            record.metadata.push(("tag".into(), tag.clone()));
        }
        let Some(copies) = fanout else {
            return Ok(vec![record]);
        };
        Ok((0..copies)
            .map(|i| {
                let mut copy = record.clone();
                copy.metadata.push(("copy".into(), i.to_string()));
                copy
            })
            .collect())
    }
}

/// `millions` million dependent multiply steps (FNV-1a over a counter): a
/// fixed amount of CPU work that the compiler cannot skip.
fn busy(millions: u64) {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..millions * 1_000_000 {
        hash = (hash ^ i).wrapping_mul(0x0000_0100_0000_01b3);
    }
    std::hint::black_box(hash);
}

weir_sdk::export!(Echo);

//! # weir-sdk: write weir plugins in plain Rust
//!
//! A weir plugin is a WebAssembly component that the weir host runs in a
//! sandbox, one stage of a document chain. This crate hides the component
//! model entirely: you implement [`Transform`] for a type and call
//! [`export!`] once. You never write WIT glue.
//!
//! ```
//! use weir_sdk::{Error, Info, Record, Transform};
//!
//! /// Upper-cases UTF-8 text.
//! pub struct Shout {
//!     suffix: String,
//! }
//!
//! /// Stage configuration, from the pipeline file's `[stage.config]` table.
//! #[derive(serde::Deserialize, Default)]
//! pub struct Config {
//!     #[serde(default)]
//!     suffix: String,
//! }
//!
//! impl Transform for Shout {
//!     type Config = Config;
//!
//!     fn info() -> Info {
//!         Info::new("shout", env!("CARGO_PKG_VERSION"))
//!             .accepts(&["text/plain"])
//!             .produces(&["text/plain"])
//!     }
//!
//!     fn new(config: Config) -> Result<Self, Error> {
//!         Ok(Shout { suffix: config.suffix })
//!     }
//!
//!     fn process(&mut self, record: Record) -> Result<Vec<Record>, Error> {
//!         let text = record.body_str()?.to_uppercase() + &self.suffix;
//!         weir_sdk::count("shouted", 1);
//!         Ok(vec![record.derive("text/plain", text.into_bytes())])
//!     }
//! }
//!
//! weir_sdk::export!(Shout);
//!
//! // The same code runs natively, e.g. in unit tests and benchmarks:
//! let mut shout = weir_sdk::LocalInstance::<Shout>::new(r#"{"suffix":"!"}"#).unwrap();
//! let out = shout.process(Record::new("doc:1", 7, "text/plain", b"hi".to_vec())).unwrap();
//! assert_eq!(out[0].body, b"HI!");
//! ```
//!
//! Build the plugin with `cargo build --target wasm32-wasip2` and a
//! `crate-type = ["cdylib", "rlib"]` library; the `.wasm` file cargo writes
//! is the component the host loads. In the weir repository, `cargo build`
//! builds every crate under `plugins/` this way (see the README).
//!
//! ## Semantics the host guarantees
//! - [`Transform::new`] runs once per instance, before any record.
//! - An instance processes batches sequentially; it is reused across batches.
//! - Return [`Error::BadInput`] for input that will never work (the record is
//!   dead-lettered at once) and [`Error::Failure`] for anything that might
//!   work on a retry (the host retries, then dead-letters).
//! - A panic traps the instance. The host throws the instance away, isolates
//!   the record that caused it and dead-letters it with the panic message.
//! - No filesystem, network, environment or real clock unless the stage's
//!   `grants` allow them: a plugin is a pure function of its input and config.
//!
//! ## Cargo features
//! - `talc` (default): in WebAssembly builds the plugin allocates with talc
//!   rather than the standard library's dlmalloc, which is measurably faster
//!   in the sandbox (docs/decisions.md). Turn default features off to declare
//!   your own `#[global_allocator]`.

#![deny(missing_docs)]

#[cfg(all(feature = "talc", target_family = "wasm"))]
mod allocator;
mod export;
mod host;
mod json_text;
mod local;
mod lowercase;
mod record;
mod transform;

pub use host::{Level, count, log};
pub use json_text::write_json_string;
pub use local::LocalInstance;
pub use lowercase::push_lowercase;
pub use record::{Error, Record};
pub use transform::{Info, NoConfig, Transform};

/// Generated component bindings. Not part of the public API: use
/// [`export!`] instead.
#[doc(hidden)]
#[allow(missing_docs, unsafe_op_in_unsafe_fn, unused_qualifications)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "transform-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_transform_plugin",
        default_bindings_module: "weir_sdk::bindings",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use crate::export::Adapter;
}

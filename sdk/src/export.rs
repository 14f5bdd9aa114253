//! The bridge between the generated component bindings and [`Transform`].
//!
//! [`export!`](crate::export) instantiates [`Adapter`] for the plugin type and
//! hands it to wit-bindgen's export macro. The adapter owns the one plugin
//! instance of the component (components are single-threaded), converts
//! between WIT and SDK types by moving bodies (no copies), and reports panics
//! to the host before the instance traps.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::exports::weir::plugin::transform::{
    DocRecord, Error as WitError, Guest, Outcome, PluginInfo,
};
use crate::record::{Error, Record};
use crate::transform::{Transform, parse_config};

thread_local! {
    /// The plugin instance created by `init`, as `Box<T>` for the exported `T`.
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// Implements the generated `Guest` trait for any [`Transform`].
pub struct Adapter<T>(PhantomData<T>);

impl<T: Transform> Guest for Adapter<T> {
    fn describe() -> PluginInfo {
        let info = T::info();
        PluginInfo {
            name: info.name,
            version: info.version,
            accepts: info.accepts,
            produces: info.produces,
        }
    }

    fn init(config: String) -> Result<(), WitError> {
        install_panic_reporter();
        let plugin = T::new(parse_config::<T>(&config)?)?;
        INSTANCE.with(|slot| *slot.borrow_mut() = Some(Box::new(plugin)));
        Ok(())
    }

    fn process(batch: Vec<DocRecord>) -> Vec<Outcome> {
        INSTANCE.with(|slot| {
            let mut slot = slot.borrow_mut();
            let Some(plugin) = slot.as_mut().and_then(|p| p.downcast_mut::<T>()) else {
                let err = WitError::PluginFailure("process called before init".into());
                return batch.iter().map(|_| Err(err.clone())).collect();
            };
            let records = batch.into_iter().map(Record::from).collect();
            plugin
                .process_batch(records)
                .into_iter()
                .map(|outcome| {
                    outcome
                        .map(|outs| outs.into_iter().map(DocRecord::from).collect())
                        .map_err(WitError::from)
                })
                .collect()
        })
    }
}

/// Route panic messages to the host log, so the host can put the message in
/// the dead-letter reason of the record that trapped the instance.
fn install_panic_reporter() {
    std::panic::set_hook(Box::new(|info| {
        crate::host::log(
            crate::host::Level::Error,
            &info.to_string(),
            &[("panic", "true")],
        );
    }));
}

impl From<DocRecord> for Record {
    fn from(r: DocRecord) -> Self {
        Record {
            id: r.id,
            revision: r.revision,
            content_type: r.content_type,
            body: r.body,
            metadata: r.metadata,
        }
    }
}

impl From<Record> for DocRecord {
    fn from(r: Record) -> Self {
        DocRecord {
            id: r.id,
            revision: r.revision,
            content_type: r.content_type,
            body: r.body,
            metadata: r.metadata,
        }
    }
}

impl From<Error> for WitError {
    fn from(e: Error) -> Self {
        match e {
            Error::BadInput(m) => WitError::BadInput(m),
            Error::Failure(m) => WitError::PluginFailure(m),
        }
    }
}

/// Export a [`Transform`] implementation as the plugin's component interface.
///
/// Call it once per plugin crate, at the crate root. It expands to nothing
/// when compiling for a non-WASM target, so the crate still builds natively.
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type WeirPluginAdapter = $crate::__private::Adapter<$plugin>;
            $crate::bindings::__export_transform_plugin!(
                WeirPluginAdapter with_types_in $crate::bindings
            );
        };
    };
}

//! Cost of the host <-> plugin boundary: the same trivial plugin (the `echo`
//! test plugin, which returns its input) called natively and as a sandboxed
//! WASM component, for 1 KB and 32 KB records, one record per call and in
//! batches of 64, plus the cost of creating an instance.
//!
//! Run: `cargo bench -p weir-tests --bench boundary`

use weir::runtime::{DocRecord, Grants, Limits};
use weir_sdk::LocalInstance;
use weir_test_echo::Echo;
use weir_tests::bench::{Measurement, measure, print_table};

const BATCH: usize = 64;

fn record(i: usize, size: usize) -> DocRecord {
    DocRecord {
        id: format!("enwiki:{i}"),
        revision: i as u64,
        content_type: "text/x-wiki".into(),
        body: (0..size)
            .map(|b| b"abcdefghij klmnopqrstuvwxyz\n"[b % 28])
            .collect(),
        metadata: vec![
            ("title".into(), format!("Page {i}")),
            ("timestamp".into(), "2024-01-01T00:00:00Z".into()),
        ],
    }
}

fn cases(size: usize, label: &str) -> Vec<Measurement> {
    let runtime = weir_tests::runtime();
    let echo = weir_tests::load(&runtime, "echo");
    let mut wasm = echo
        .instantiate(&Limits::default(), &Grants::default(), "{}")
        .unwrap();
    let mut native = LocalInstance::<Echo>::new("{}").unwrap();
    let batch: Vec<DocRecord> = (0..BATCH).map(|i| record(i, size)).collect();
    let bytes = (size * BATCH) as u64;
    let batch_n = BATCH as u64;
    vec![
        measure(
            &format!("native, batch of {BATCH}, {label}"),
            batch_n,
            bytes,
            || native.process_batch(batch.iter().map(weir_tests::sdk_record).collect()),
        ),
        measure(
            &format!("wasm, batch of {BATCH}, {label}"),
            batch_n,
            bytes,
            || wasm.process(&batch).unwrap(),
        ),
        measure(
            &format!("native, 1 per call, {label}"),
            1,
            size as u64,
            || native.process(weir_tests::sdk_record(&batch[0])),
        ),
        measure(
            &format!("wasm, 1 per call, {label}"),
            1,
            size as u64,
            || wasm.process(&batch[..1]).unwrap(),
        ),
    ]
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` probes; nothing to list
    }
    println!("## Host <-> plugin boundary (echo plugin)");
    for (size, label) in [(1024, "1 KB"), (32 * 1024, "32 KB")] {
        let measured = cases(size, label);
        print_table(
            &format!("{label} records"),
            &measured,
            &format!("native, batch of {BATCH}, {label}"),
        );
        let native = measured[0].per_record();
        let wasm = measured[1].per_record();
        println!(
            "\nBoundary overhead per {label} record in batches of {BATCH}: {:.2?} (WASM {:.2?} - native {:.2?})",
            wasm.saturating_sub(native),
            wasm,
            native
        );
    }
    let runtime = weir_tests::runtime();
    let echo = weir_tests::load(&runtime, "echo");
    let instantiate = measure("instantiate + init (pooling allocator)", 1, 0, || {
        echo.instantiate(&Limits::default(), &Grants::default(), "{}")
            .unwrap()
    });
    println!(
        "\nInstance creation (instantiate + init): {:.2?}",
        instantiate.per_iteration
    );
}

//! Builds every plugin component as part of the normal `cargo build`.
//!
//! The crates under `plugins/` (shipped plugins) and `tests/plugins/`
//! (hostile and contract test plugins) are compiled for `wasm32-wasip2` with
//! the workspace's `plugin` profile, and each component is copied to
//! `<target>/wasm/<dir-name>.wasm` (e.g. `target/wasm/parse.wasm`), the
//! directory the example pipeline and the tests load plugins from.
//!
//! If the `wasm32-wasip2` target is not installed, it is added with rustup
//! first. The nested cargo uses its own target directory (`<target>/plugin-build`)
//! so it never waits on the lock the outer build holds. Set
//! `WEIR_SKIP_PLUGIN_BUILD=1` to skip this step (e.g. when packaging the host
//! alone).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs};

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";
const PLUGIN_PARENTS: [&str; 2] = ["plugins", "tests/plugins"];

fn main() {
    println!("cargo:rerun-if-env-changed=WEIR_SKIP_PLUGIN_BUILD");
    if env::var_os("WEIR_SKIP_PLUGIN_BUILD").is_some_and(|v| v == "1") {
        return;
    }
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .parent()
        .expect("host/ sits in the workspace root");
    for watched in ["plugins", "tests/plugins", "sdk", "wit", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let plugins = discover_plugins(workspace);
    if plugins.is_empty() {
        return;
    }
    ensure_wasm_target();
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    build_plugins(workspace, &target_dir, &plugins);
    install_components(&target_dir, &plugins);
}

/// Install the `wasm32-wasip2` standard library into the active toolchain if
/// it is missing, so a fresh checkout builds with plain `cargo build`.
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.is_some_and(|dir| dir.is_dir()) {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup (needed to build plugins)");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    if !added.is_ok_and(|s| s.success()) {
        panic!(
            "the {TARGET} target is missing and `rustup target add {TARGET}` failed; install it and rebuild"
        );
    }
}

/// A plugin crate: its directory name (the component's short name) and
/// its cargo package name.
struct PluginCrate {
    short_name: String,
    package: String,
}

fn discover_plugins(workspace: &Path) -> Vec<PluginCrate> {
    let mut found = Vec::new();
    for parent in PLUGIN_PARENTS {
        let Ok(entries) = fs::read_dir(workspace.join(parent)) else {
            continue;
        };
        for entry in entries.flatten() {
            let manifest = entry.path().join("Cargo.toml");
            let Ok(text) = fs::read_to_string(&manifest) else {
                continue;
            };
            let package = package_name(&text)
                .unwrap_or_else(|| panic!("no package name in {}", manifest.display()));
            found.push(PluginCrate {
                short_name: entry.file_name().to_string_lossy().into_owned(),
                package,
            });
        }
    }
    found.sort_by(|a, b| a.short_name.cmp(&b.short_name));
    found
}

/// The `name = "..."` of the `[package]` table (the first `name` key).
fn package_name(manifest: &str) -> Option<String> {
    manifest.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
    })
}

fn build_plugins(workspace: &Path, target_dir: &Path, plugins: &[PluginCrate]) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--locked",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
        ])
        .arg("--target-dir")
        .arg(target_dir.join("plugin-build"));
    for plugin in plugins {
        cmd.args(["-p", &plugin.package]);
    }
    // WebAssembly SIMD: memchr, memmem and friends use it in the guest, and
    // wasmtime compiles it to native vector instructions. More inlining than
    // LLVM's default (225): in the sandbox every function entry also pays a
    // deadline check, and fewer calls took the chain benchmark from 0.58x
    // to 0.62x of native (3000 was worse again: see docs/performance.md).
    cmd.env(
        "CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS",
        "-C target-feature=+simd128 -C llvm-args=-inline-threshold=1000",
    );
    // The outer build's flags and wrappers (clippy sets RUSTC_WORKSPACE_WRAPPER)
    // are for the host target; they must not leak into the wasm build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd
        .output()
        .expect("failed to run cargo to build the plugin components");
    if !output.status.success() {
        panic!(
            "building the plugin components for {TARGET} failed \
             (is the target installed? `rustup target add {TARGET}`):\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn install_components(target_dir: &Path, plugins: &[PluginCrate]) {
    let built = target_dir.join("plugin-build").join(TARGET).join(PROFILE);
    let installed = target_dir.join("wasm");
    fs::create_dir_all(&installed).expect("create target/wasm");
    for plugin in plugins {
        let artifact = built.join(format!("{}.wasm", plugin.package.replace('-', "_")));
        let destination = installed.join(format!("{}.wasm", plugin.short_name));
        fs::copy(&artifact, &destination).unwrap_or_else(|e| {
            panic!(
                "copy {} -> {}: {e} (does {} have crate-type = [\"cdylib\", ...]?)",
                artifact.display(),
                destination.display(),
                plugin.package
            )
        });
    }
}

# Larder's tasks. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Toolchain pieces the build needs (idempotent; fast when present).
setup:
    rustup target add wasm32v1-none wasm32-wasip2 >/dev/null

# The main demo: fs-core bundling a config dir and keeping state across runs.
demo: setup
    cargo run --quiet --locked -p fs-demo

# Guest programs for the tests and examples (wasm32-wasip2 components).
guests: setup
    cargo build --locked --release --target wasm32-wasip2 --manifest-path examples/guests/Cargo.toml

# Every test: lints, the no_std build, then unit, property (fs-core vs
# Linux), concurrency and fuzz-regression tests.
test: setup guests
    cargo clippy --locked --workspace --all-targets -- -D warnings
    # no_std + alloc: a target that has no std at all, and the guest target.
    cargo build --locked -p fs-core --no-default-features --target wasm32v1-none
    cargo build --locked -p fs-core --no-default-features --target wasm32-wasip2
    cargo test --locked -p fs-core --features fuzzing --test fuzz_regressions
    cargo test --workspace --locked

# Benchmarks (criterion): fs-core hot paths, with a memcpy baseline.
bench:
    cargo bench --locked -p fs-core --bench fs

# Fuzz one target (image | ops) for SECS seconds; needs cargo-fuzz.
fuzz target="ops" secs="60":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    cd crates/fs-core/fuzz && mkdir -p corpus/{{target}} && cp -n regressions/{{target}}/* corpus/{{target}}/ && \
      RUSTC_BOOTSTRAP=1 cargo fuzz run -O {{target}} corpus/{{target}} -- -max_total_time={{secs}} -rss_limit_mb=4096

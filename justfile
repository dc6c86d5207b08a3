# Larder's tasks. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The wasmtime CLI of the 48 line, for the tests of users pinned to it
# (tests/wasmtime48.rs finds it here too); `wasmtime` on PATH is current.
wasmtime48 := env_var_or_default("CARGO_HOME", env_var("HOME") / ".cargo") / "larder/wasmtime-48.0.8"

# Toolchain pieces the build needs (idempotent; fast when present).
setup:
    # The Rust toolchain, components and targets rust-toolchain.toml names
    # (installed explicitly: these machines set RUSTUP_AUTO_INSTALL=0).
    rustup toolchain install >/dev/null
    # The wasmtime CLI the tests run apps under and compare against: the
    # current release.
    wasmtime --version 2>/dev/null | grep -Eq '^wasmtime 50\.0\.1( |$)' || cargo install wasmtime-cli --version 50.0.1 --locked
    # And 48.0.8, the line users pinned to it run: a build with only what
    # running and serving components needs, at opt-level 1 (it runs only
    # the smoke subset, no slower there; it builds in 15 minutes here
    # instead of 38).
    {{wasmtime48}}/bin/wasmtime --version 2>/dev/null | grep -Eq '^wasmtime 48\.0\.8( |$)' || \
        CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install wasmtime-cli --version 48.0.8 --locked --root {{wasmtime48}} --no-default-features \
          --features run,serve,cranelift,component-model,component-model-async,wasi-http,parallel-compilation,pooling-allocator,cache,wat
    # The wac CLI, for the `wac plug` route.
    wac --version 2>/dev/null | grep -Eq '^wac-cli 0\.12\.0( |$)' || cargo install wac-cli --version 0.12.0 --locked
    # The S3-compatible server the store tests start on loopback: moto (and
    # boto3, the tests' independent S3 client) in a virtualenv under target/.
    test -x target/s3server/bin/moto_server || { rm -rf target/s3server; \
        python3 -m venv target/s3server || { $(command -v sudo || true) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(command -v sudo || true) apt-get install -y -qq python3-venv python3-pip >/dev/null && rm -rf target/s3server && python3 -m venv target/s3server; }; \
        target/s3server/bin/pip install -q 'moto[server]==5.2.5'; }
    # C examples: zig's C compiler (pip's `ziglang`, in a virtualenv under
    # target/), which bundles a current wasi-libc; Debian's 2022 one traps
    # real programs (SQLite) in the preview1 adapter.
    test -e target/zig/ziglang-0.15.2 || { rm -rf target/zig; python3 -m venv target/zig && \
        target/zig/bin/pip install -q ziglang==0.15.2 && touch target/zig/ziglang-0.15.2; }
    # componentize-py, which builds the Python example into a component
    # (CPython for WASI with its standard library, sqlite3 included).
    test -e target/py/componentize-py-0.25.1 || { rm -rf target/py; python3 -m venv target/py && \
        target/py/bin/pip install -q componentize-py==0.25.1 && touch target/py/componentize-py-0.25.1; }
    # SQLite's amalgamation, for the C database example: from the
    # libsqlite3-sys crate on crates.io (checked against its SHA-256).
    test -e target/sqlite/sqlite3.c || { mkdir -p target/sqlite && \
        python3 -c "import urllib.request as u; u.urlretrieve('https://static.crates.io/crates/libsqlite3-sys/libsqlite3-sys-0.35.0.crate', 'target/sqlite/src.crate')" && \
        echo '133c182a6a2c87864fe97778797e46c7e999672690dc9fa3ee8e241aa4a9c13f  target/sqlite/src.crate' | sha256sum -c --quiet && \
        tar xzf target/sqlite/src.crate -C target/sqlite --strip-components=2 libsqlite3-sys-0.35.0/sqlite3/sqlite3.c libsqlite3-sys-0.35.0/sqlite3/sqlite3.h; }
    # The browser tests: Debian's Chromium (driven headless by playwright-core)
    # and Node.js with npm for jco, the package and its tests.
    test -x /usr/bin/chromium && command -v npm >/dev/null || \
        { $(command -v sudo || true) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(command -v sudo || true) apt-get install -y -qq chromium $(command -v npm >/dev/null || echo nodejs npm) >/dev/null; }
    # An independent 9P2000.L client for `larder serve`'s interop tests:
    # diodls and diodcat from Debian's diod.
    command -v diodls >/dev/null || \
        { $(command -v sudo || true) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(command -v sudo || true) apt-get install -y -qq diod >/dev/null; }

# The guest adapter users `wac plug` into apps, with an empty filesystem
# preopened as `/` (the same bytes `larder adapter -o` writes).
build:
    cargo build --locked --release -p larder-cli
    mkdir -p target/wasm32-wasip2/release
    target/release/larder adapter -o target/wasm32-wasip2/release/vfs_adapter.wasm

# The main demo: an app composed with Larder and bundled config dirs runs
# under plain `wasmtime run`; fs-core keeps state in a snapshot image across
# runs; components share one filesystem under vfs-host / larder run; files
# persist with --store, and a composed app persists to S3 by itself; two
# processes share one filesystem through `larder serve`.
# The demo on release builds. `just demo debug` runs the same steps on debug
# builds: CI runs it in its fresh clone before the tests, which build those.
demo profile="release": setup guests
    cargo build --locked {{ if profile == "release" { "--release" } else { "" } }} -p larder-cli
    mkdir -p target/demo
    target/{{profile}}/larder adapter -o target/demo/vfs_adapter.wasm
    @echo "== larder compose: bundle examples/bundle into the settings app, run it with plain wasmtime"
    target/{{profile}}/larder compose examples/guests/target/wasm32-wasip2/release/settings.wasm -o target/demo/settings.wasm --mount /etc/app=examples/bundle/config:ro --mount /var/lib/app=examples/bundle/state
    echo "input from the host's stdin" | wasmtime run target/demo/settings.wasm
    @echo; echo "== wac plug: the same app on an empty in-sandbox filesystem"
    wac plug --plug target/demo/vfs_adapter.wasm examples/guests/target/wasm32-wasip2/release/settings.wasm -o target/demo/settings-plugged.wasm
    wasmtime run target/demo/settings-plugged.wasm < /dev/null
    @echo; echo "== fs-core: bundle a config dir, keep state in a snapshot image (run twice)"
    cargo run --quiet --locked -p fs-demo
    @echo; echo "== two components in one process share files (vfs-host)"
    cargo run --locked --quiet -p vfs-host --example pipeline
    @echo; echo "== larder run: 4 instances append to one file"
    cargo run --locked --quiet -p larder-cli -- run examples/guests/target/wasm32-wasip2/release/append.wasm --instances 4 -- /log /files 100
    @echo; echo "== larder run --store: files kept in a plain directory across runs"
    rm -rf target/demo/store
    target/{{profile}}/larder run examples/guests/target/wasm32-wasip2/release/append.wasm --store target/demo/store -- /log /files 3
    target/{{profile}}/larder run examples/guests/target/wasm32-wasip2/release/append.wasm --store target/demo/store -- /log /files 3
    target/{{profile}}/larder ls --store target/demo/store
    wc -l target/demo/store/log
    @echo; echo "== larder compose --persist s3://: the composed app keeps its files in S3 itself (moto on loopback), under plain wasmtime"
    target/s3server/bin/moto_server -H 127.0.0.1 -p 8090 >/dev/null 2>&1 & \
      trap "kill $! 2>/dev/null" EXIT; \
      for i in $(seq 300); do curl -s -o /dev/null 127.0.0.1:8090 && break; sleep 0.1; done; \
      target/s3server/bin/python -c "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:8090', aws_access_key_id='demo', aws_secret_access_key='demo', region_name='us-east-1').create_bucket(Bucket='demo')"; \
      target/{{profile}}/larder compose examples/guests/target/wasm32-wasip2/release/append.wasm --persist 's3://demo/app?endpoint=http://127.0.0.1:8090' -o target/demo/append-s3.wasm; \
      export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo; set -x; \
      wasmtime run -S http --env AWS_ACCESS_KEY_ID --env AWS_SECRET_ACCESS_KEY target/demo/append-s3.wasm /log /files 3; \
      wasmtime run -S http --env AWS_ACCESS_KEY_ID --env AWS_SECRET_ACCESS_KEY target/demo/append-s3.wasm /log /files 2; \
      target/{{profile}}/larder ls --store 's3://demo/app?endpoint=http://127.0.0.1:8090'
    @echo; echo "== an HTTP handler with bundled, writable files under wasmtime serve"
    target/{{profile}}/larder compose examples/guests/target/wasm32-wasip2/release/edge_http.wasm -o target/demo/edge-http.wasm --mount /srv/files=examples/edge-http/files
    wasmtime serve -S cli --addr 127.0.0.1:8089 --max-instance-reuse-count 100 target/demo/edge-http.wasm 2>/dev/null & \
      trap "kill $! 2>/dev/null" EXIT; \
      for i in $(seq 200); do curl -s -o /dev/null 127.0.0.1:8089/files && break; sleep 0.1; done; \
      set -x; curl -s 127.0.0.1:8089/files; echo "hello from curl" | curl -s -T - 127.0.0.1:8089/files/hello.txt; \
      curl -s 127.0.0.1:8089/files; curl -s 127.0.0.1:8089/files/hello.txt
    @echo; echo "== larder serve: two wasmtime processes append to one shared file over 9P2000.L; diod's client lists it"
    target/{{profile}}/larder compose examples/guests/target/wasm32-wasip2/release/append.wasm --remote 127.0.0.1:5640 -o target/demo/append-remote.wasm
    target/{{profile}}/larder serve --listen 127.0.0.1:5640 & \
      trap "kill $! 2>/dev/null" EXIT; sleep 0.5; set -x; \
      wasmtime run -S inherit-network --env LARDER_INSTANCE=1 target/demo/append-remote.wasm /log /files 100 & first=$!; \
      wasmtime run -S inherit-network --env LARDER_INSTANCE=2 target/demo/append-remote.wasm /log /files 100; wait $first; \
      diodls -s 127.0.0.1:5640 -a / -l /; diodcat -s 127.0.0.1:5640 -a / /log | wc -l

# Guest programs for the tests and examples (wasm32-wasip2 components).
guests: setup
    cargo build --locked --release --target wasm32-wasip2 --manifest-path examples/guests/Cargo.toml
    # The same settings app as a wasip1 module (made a component through
    # wasmtime's preview1 adapter in the tests), the C examples and the
    # Python app, into target/guests.
    cargo build --locked --release --target wasm32-wasip1 --manifest-path examples/guests/Cargo.toml -p settings
    mkdir -p target/guests
    target/zig/bin/python -m ziglang cc -target wasm32-wasi -O2 -s -Wall -Werror -o target/guests/c-notes.wasm examples/c-notes/notes.c
    # SQLite compiles for a minute: once. (It detects WASI itself: no WAL,
    # dot-file locks.) Its own warnings are not ours to fix.
    test target/guests/sqlite3.o -nt target/sqlite/sqlite3.c || \
        target/zig/bin/python -m ziglang cc -target wasm32-wasi -O2 -c -DSQLITE_OMIT_WAL -DSQLITE_MAX_MMAP_SIZE=0 \
          -o target/guests/sqlite3.o target/sqlite/sqlite3.c
    target/zig/bin/python -m ziglang cc -target wasm32-wasi -O2 -s -Wall -Werror -I target/sqlite \
      -o target/guests/ledger.wasm examples/c-sqlite/ledger.c target/guests/sqlite3.o
    target/zig/bin/python -m ziglang cc -target wasm32-wasi -O2 -s -Wall -Werror -I target/sqlite \
      -o target/guests/bulk.wasm examples/c-sqlite/bulk.c target/guests/sqlite3.o
    target/zig/bin/python -m ziglang cc -target wasm32-wasi -O2 -s -Wall -Werror -o target/guests/copytree.wasm examples/c-files/copytree.c
    # The Python example, against the WASI 0.2 WIT this repository vendors
    # (about 20 s: only when it changed).
    test target/guests/python-app.wasm -nt examples/python/app.py || \
        target/py/bin/componentize-py -q $(printf -- '-d wit/deps/%s.wit ' io clocks-0.2 random filesystem-0.2 sockets cli) \
          -w wasi:cli/command@0.2.12 componentize -p examples/python app -o target/guests/python-app.wasm
    # The JavaScript example, by ComponentizeJS (npm, pinned in
    # examples/js/package-lock.json; about 20 s: only when it changed).
    test target/guests/js-app.wasm -nt examples/js/app.js -a target/guests/js-app.wasm -nt examples/js/wit/app.wit || \
        { cd examples/js && npm ci --no-audit --no-fund --loglevel=error && \
          npx componentize-js --wit wit --world-name app -o ../../target/guests/js-app.wasm app.js; }

# Every test: lints, the no_std build, then unit, property (fs-core vs
# Linux), concurrency, browser (Chromium, Node) and fuzz-regression tests.
test: setup guests web
    cargo fmt --all --check
    cargo clippy --locked --workspace --all-targets -- -D warnings
    cargo fmt --all --check --manifest-path examples/guests/Cargo.toml
    # The guest components' builds, for the target they ship to.
    cargo clippy --locked -p vfs-adapter --target wasm32-wasip2 -- -D warnings
    cargo clippy --locked -p vfs-adapter --features net --target wasm32-wasip2 -- -D warnings
    cargo clippy --locked -p vfs-adapter --features http --target wasm32-wasip2 -- -D warnings
    cargo clippy --locked -p vfs-adapter --features persist --target wasm32-wasip2 -- -D warnings
    cargo clippy --locked -p vfs-adapter --features persist-s3 --target wasm32-wasip2 -- -D warnings
    cargo clippy --locked -p vfs-adapter --features remote --target wasm32-wasip2 -- -D warnings
    cargo clippy --locked -p http-bridge --target wasm32-wasip2 -- -D warnings
    # The 9P client (the remote adapter's) and its tests, natively.
    cargo clippy --locked -p larder-9p --features server,client --all-targets -- -D warnings
    # no_std + alloc: a target that has no std at all, and the guest target.
    cargo build --locked -p fs-core --no-default-features --target x86_64-unknown-none
    cargo build --locked -p fs-core --no-default-features --target wasm32-wasip2
    # The sync engine builds for the guest too (composed-app persistence),
    # with its S3 store over wasi:http.
    cargo build --locked -p larder-sync --features s3 --target wasm32-wasip2
    cargo test --workspace --locked
    cargo test --locked -p larder-9p --features server,client --test client
    # Composed apps under jco: in headless Chromium with OPFS, and on Node.
    cd crates/sync-opfs && npm test
    # fs-core under a capped allocator, with the free-memory probe that
    # wasm builds always have.
    cargo test --locked -p fs-core --features alloc-probe --test out_of_memory
    # Last, so the run closes on a suite that has tests (not an empty doctest run).
    cargo test --locked -p fs-core --features fuzzing --test fuzz_regressions

# The browser package (crates/sync-opfs) and the apps its tests and the
# example run, composed with `--persist host` and transpiled by jco: for
# browsers with multi-memory, and for Node 20 (whose V8 has none).
web: guests
    # `npm install` keeps to package-lock.json; `npm ci` refuses it because
    # npm 11 leaves jco's other-platform optional packages out of the lock.
    cd crates/sync-opfs && npm install --no-audit --no-fund --loglevel=error && npm run --silent build
    cargo build --locked -p larder-cli
    mkdir -p target/web
    for app in notebook conformance fsbench; do \
      target/debug/larder compose examples/guests/target/wasm32-wasip2/release/$app.wasm --persist host -o target/web/$app.wasm; \
      crates/sync-opfs/node_modules/.bin/jco transpile target/web/$app.wasm --instantiation async --multi-memory --quiet -o target/web/browser/$app; \
      crates/sync-opfs/node_modules/.bin/jco transpile target/web/$app.wasm --instantiation async --quiet -o target/web/node/$app; \
      echo '{"type":"module"}' > target/web/node/$app/package.json; \
    done

# The browser example: a notebook whose files live in OPFS, on
# http://127.0.0.1:8086 until Ctrl-C (reload it; restart the browser).
example-browser: web
    node crates/sync-opfs/serve.mjs --port 8086 /=examples/browser /larder=crates/sync-opfs/dist /app=target/web/browser

# Two components in one process sharing files (vfs-host as a library).
example-pipeline: guests
    cargo run --locked --quiet -p vfs-host --example pipeline

# The async embedder example: edge-http on 127.0.0.1:8080, an instance per
# request on one filesystem (its files mounted from examples/edge-http)
# kept in target/example-http (until Ctrl-C).
example-http: guests
    cargo run --locked --quiet -p vfs-host --example http_host -- \
        examples/guests/target/wasm32-wasip2/release/edge_http.wasm \
        --mount /srv/files=examples/edge-http/files --store target/example-http

# The edge example: an HTTP file service with bundled files, served on
# 127.0.0.1:8080 until Ctrl-C (try `curl -T FILE 127.0.0.1:8080/files/NAME`).
example-edge: guests build
    target/release/larder compose examples/guests/target/wasm32-wasip2/release/edge_http.wasm -o target/demo/edge-http.wasm --mount /srv/files=examples/edge-http/files
    wasmtime serve -S cli --addr 127.0.0.1:8080 --max-instance-reuse-count 1000 --idle-instance-timeout 3600s target/demo/edge-http.wasm

# Eight instances appending to one file and creating files in one directory.
example-append: guests
    cargo run --locked --quiet -p larder-cli -- run examples/guests/target/wasm32-wasip2/release/append.wasm --instances 8 -- /log /files 1000

# The benchmark harness: fsbench under vfs-host and composed with the guest
# adapter vs wasmtime's host filesystem on tmpfs, in one run, plus start-up
# against bundle size; table and plot under target/bench/.
bench: guests
    test -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf || (apt-get update -qq && apt-get install -y -qq fonts-dejavu-core)
    cargo build --locked --release -p larder-cli
    cargo run --locked --release -p larder-bench
    test -n "${BENCH_ONLY:-}" || just bench-browser

# The browser rows: fsbench composed with `--persist host` in headless
# Chromium, files in OPFS, against `wasmtime run --dir` on tmpfs in the same
# run; table in target/bench/browser.md (`ROUNDS=N`, default 3).
bench-browser: web
    cd crates/sync-opfs && node bench/bench.mjs

# fs-core's own hot paths (criterion, with a memcpy baseline).
bench-core:
    cargo bench --locked -p fs-core --bench fs

# Fuzz the 9P2000.L decoder for SECS seconds; needs cargo-fuzz.
fuzz-9p secs="60":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    cd crates/larder-9p/fuzz && mkdir -p corpus/decode && cp -n regressions/decode/* corpus/decode/ && \
      RUSTC_BOOTSTRAP=1 cargo fuzz run -O decode corpus/decode -- -max_total_time={{secs}}

# Fuzz the sync engine's index decoder for SECS seconds; needs cargo-fuzz.
fuzz-index secs="60":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    cd crates/larder-sync/fuzz && mkdir -p corpus/index && \
      RUSTC_BOOTSTRAP=1 cargo fuzz run -O index corpus/index -- -max_total_time={{secs}}

# Fuzz one target (image | ops) for SECS seconds; needs cargo-fuzz.
fuzz target="ops" secs="60":
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    cd crates/fs-core/fuzz && mkdir -p corpus/{{target}} && cp -n regressions/{{target}}/* corpus/{{target}}/ && \
      RUSTC_BOOTSTRAP=1 cargo fuzz run -O {{target}} corpus/{{target}} -- -max_total_time={{secs}} -rss_limit_mb=4096

//! Attacks on the host from inside the sandbox and from a store's
//! contents: a guest using the store `larder run --store` lends it, a
//! bucket planted with a symlink object, and bad command lines. Each
//! asserts that nothing outside the store (or the export's destination)
//! changed, and what the attacker was told.

mod common;
#[path = "../../larder-sync/tests/common/moto.rs"]
mod moto;

use common::*;
use std::path::Path;
use std::process::Command;

/// A host directory the attacks aim at: a secret and a subdirectory.
fn victim(root: &Path) -> std::path::PathBuf {
    let v = root.join("victim");
    std::fs::create_dir_all(v.join("sub")).unwrap();
    std::fs::write(v.join("secret"), "host secret").unwrap();
    v
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Runs the hostile guest under `larder run --store STORE -- TARGET` and
/// asserts it said each of `lines` (one per call it made).
fn hostile_guest(store: &std::ffi::OsStr, target: &std::ffi::OsStr, lines: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("run")
        .arg(guest("hostile"))
        .arg("--store")
        .arg(store)
        .arg("--")
        .arg(target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    for line in lines {
        assert!(
            said.lines().any(|l| l.starts_with(line)),
            "expected {line:?} in:\n{said}"
        );
    }
}

/// A component importing `larder:vfs/store` under `larder run --store
/// DIR` plants a symlink object pointing at a host directory and uses
/// keys through it and out of the store: every such call fails, the
/// victim is untouched, and the link itself is stored as a symlink. The
/// same through a piecewise upload, whose misuse is refused too.
#[test]
fn a_guest_cannot_reach_host_files_through_a_lent_local_store() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = victim(tmp.path());
    let store = tmp.path().join("store");
    hostile_guest(
        store.as_os_str(),
        victim.as_os_str(),
        &[
            "put link: ok",
            "put through link: error permanent",
            "mkdir through link: error permanent",
            "get through link: error not-found",
            "head through link: ok false",
            "copy through link: error not-found",
            // Deleting what is not there succeeds, and deletes nothing.
            "delete through link: ok ()",
            "put climbing out: error permanent",
            "put absolute: error permanent",
            "upload through link: error permanent",
            "upload climbing out: error permanent",
            "upload out of order: error permanent",
            "upload past its size: error permanent",
            "upload keeping what is not there: error conflict",
            "upload once: ok ()",
            "upload twice: error permanent",
            "upload dropped unfinished: ok ()",
            "head dropped: ok false",
            "list: ok [\"esc\", \"twice\"]",
        ],
    );
    assert_eq!(listing(&victim), ["secret", "sub"]);
    assert_eq!(listing(&victim.join("sub")), Vec::<String>::new());
    assert_eq!(
        std::fs::read_to_string(victim.join("secret")).unwrap(),
        "host secret"
    );
    assert_eq!(listing(tmp.path()), ["store", "victim"]);
    assert_eq!(std::fs::read_link(store.join("esc")).unwrap(), victim);
}

/// A bucket holding a symlink object `a` (pointing at a host directory)
/// and an object `a/pwned`, as a guest can plant through `--persist`:
/// `larder export` writes only beneath its destination, names the key it
/// refused, and says the export was incomplete.
#[test]
fn export_never_writes_through_a_symlink_it_created() {
    let m = moto::Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let victim = victim(tmp.path());
    m.boto3(&format!(
        "S3.put_object(Bucket=B, Key='app/a', Body={:?}.encode(), Metadata={{'mode': '41471'}})\n\
         S3.put_object(Bucket=B, Key='app/a/pwned', Body=b'pwned')\n\
         S3.put_object(Bucket=B, Key='app/fine', Body=b'fine')\n",
        victim.to_str().unwrap()
    ));
    let dest = tmp.path().join("dest");
    let out = larder(&["export", "--store", &m.url("app"), dest.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not exporting a/pwned") && err.contains("1 objects were not exported"),
        "{err}"
    );
    assert_eq!(listing(&victim), ["secret", "sub"]);
    assert_eq!(std::fs::read_link(dest.join("a")).unwrap(), victim);
    assert_eq!(std::fs::read_to_string(dest.join("fine")).unwrap(), "fine");
}

/// Commands that only read a store create nothing when it is missing.
#[test]
fn read_only_commands_do_not_create_a_missing_store() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let dest = tmp.path().join("dest");
    let m = missing.to_str().unwrap();
    for args in [
        vec!["ls", "--store", m],
        vec!["cat", "--store", m, "/f"],
        vec!["export", "--store", m, dest.to_str().unwrap()],
    ] {
        assert_usage_error(&args, "no such directory");
    }
    assert_eq!(listing(tmp.path()), Vec::<String>::new());
}

/// fsshell composed with the adapter (`larder compose`), in `dir`.
fn composed_fsshell(dir: &Path) -> std::path::PathBuf {
    let composed = dir.join("fsshell.wasm");
    let out = larder(&[
        "compose",
        guest("fsshell").to_str().unwrap(),
        "-o",
        composed.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    composed
}

/// A guest opening one file over and over gets an error from the
/// filesystem (its default open-handle limit) before the runtime runs out
/// of handles and traps it, composed and under `larder run`; closing them
/// leaves everything working.
#[test]
fn opening_descriptors_in_a_loop_is_an_error_not_a_trap() {
    let tmp = tmpfs_dir();
    let composed = composed_fsshell(tmp.path());
    let mut larder_run = Command::new(env!("CARGO_BIN_EXE_larder"));
    larder_run.arg("run").arg(guest("fsshell"));
    let mut wasmtime_run = Command::new("wasmtime");
    wasmtime_run.arg("run").arg(&composed);
    for (route, cmd) in [
        ("composed", &mut wasmtime_run),
        ("larder run", &mut larder_run),
    ] {
        let mut sh = Shell::start(cmd);
        assert_eq!(sh.ask("write /f kept").0, "ok", "{route}");
        let limit = fs_core::DEFAULT_MAX_OPEN_HANDLES;
        let (held, _) = sh.ask("hold /f 200000");
        // The limit counts every open handle (the preopens' too). Rust's
        // std maps WASI's insufficient-memory to ENOMEM.
        let (n, error) = held
            .strip_prefix("opened ")
            .and_then(|r| r.split_once(", then error: "))
            .unwrap_or_else(|| panic!("{route}: {held}"));
        let n: u64 = n.parse().unwrap();
        assert!(n > limit - 16 && n <= limit, "{route}: {held}");
        assert!(error.contains("Out of memory"), "{route}: {held}");
        assert_eq!(sh.ask("cat /f").0, "kept", "{route}");
        assert_eq!(sh.ask("hold /f 1000").0, "opened 1000", "{route}");
        drop(sh.stdin);
        assert!(sh.child.wait().unwrap().success(), "{route}");
    }
}

/// `created K, then error: E` (or `wrote K MiB, then error: E`) as
/// (K, E); panics naming `route` on any other reply.
fn stopped(route: &str, reply: &str) -> (u64, String) {
    let rest = reply
        .strip_prefix("created ")
        .or_else(|| reply.strip_prefix("wrote "))
        .and_then(|r| r.split_once(", then error: "))
        .unwrap_or_else(|| panic!("{route}: no error: {reply}"));
    let n = rest.0.trim_end_matches(" MiB").parse().unwrap();
    (n, rest.1.to_string())
}

/// A composed app fills the filesystem: by default it stops at tmpfs's
/// limits on the adapter's 4 GiB (2 GiB of data, 524,288 inodes) with an
/// error, keeps working, and gets the space back when it deletes.
/// (Rust's std, like every wasi-libc program, reports a stream write
/// that hit insufficient-space as EIO; wasmtime's own host does the same
/// on a full tmpfs.)
#[test]
fn a_composed_app_hits_its_default_quota_not_the_end_of_memory() {
    let tmp = tmpfs_dir();
    let composed = composed_fsshell(tmp.path());
    let mut sh = Shell::start(Command::new("wasmtime").arg("run").arg(&composed));
    let limits = fs_core::FsConfig::for_memory(4 << 30);
    let (mib, e) = stopped("data", &sh.ask("grow /big 3000").0);
    assert_eq!(mib << 20, limits.max_bytes, "{e}");
    assert!(e.contains("I/O error"), "{e}");
    assert_eq!(sh.ask("rm /big").0, "ok");
    assert_eq!(sh.ask("grow /big 8").0, "wrote 8 MiB", "space comes back");
    assert_eq!(sh.ask("mkdir /d").0, "ok");
    // The root, /big and /d are inodes too.
    let (files, e) = stopped("inodes", &sh.ask("fill /d 600000").0);
    assert_eq!(files, limits.max_inodes - 3, "{e}");
    assert!(e.contains("No space left on device"), "{e}");
    assert_eq!(sh.ask("clear /d").0, "ok");
    assert_eq!(sh.ask("write /after kept").0, "ok");
    assert_eq!(sh.ask("cat /after").0, "kept");
    drop(sh.stdin);
    assert!(sh.child.wait().unwrap().success());
}

/// A runtime that caps the adapter's memory below its quota: creating
/// files until memory runs out answers ENOMEM (insufficient-memory), not a
/// trap, and the app carries on once it frees some.
#[test]
fn running_out_of_memory_in_a_composed_app_is_an_error_not_a_trap() {
    let tmp = tmpfs_dir();
    let composed = composed_fsshell(tmp.path());
    let mut sh = Shell::start(
        Command::new("wasmtime")
            .args(["run", "-W", "max-memory-size=67108864"])
            .arg(&composed),
    );
    assert_eq!(sh.ask("write /first kept").0, "ok");
    assert_eq!(sh.ask("mkdir /d").0, "ok");
    let (files, e) = stopped("files", &sh.ask("fill /d 10000000").0);
    assert!(files > 10_000, "{files} files before running out");
    assert!(e.contains("Out of memory"), "{e}");
    // Memory is full: even creating the file fails.
    assert_eq!(sh.ask("grow /big 100").0, format!("error: {e}"));
    assert_eq!(sh.ask("clear /d").0, "ok");
    assert_eq!(sh.ask("cat /first").0, "kept");
    assert_eq!(sh.ask("grow /big 8").0, "wrote 8 MiB");
    assert_eq!(sh.ask("write /after kept too").0, "ok");
    assert_eq!(sh.ask("cat /after").0, "kept too");
    drop(sh.stdin);
    assert!(sh.child.wait().unwrap().success());
}

/// `larder run --max-bytes/--max-inodes`: the app stops at exactly the
/// quota given and keeps working; a bad size is a usage error.
#[test]
fn larder_run_takes_a_quota() {
    let mut sh = Shell::start(
        Command::new(env!("CARGO_BIN_EXE_larder"))
            .args(["run", "--max-bytes", "10M", "--max-inodes", "50"])
            .arg(guest("fsshell")),
    );
    let (mib, e) = stopped("data", &sh.ask("grow /big 30").0);
    assert_eq!(mib, 10, "{e}");
    assert_eq!(sh.ask("mkdir /d").0, "ok");
    // 50, less the root, /big and /d.
    let (files, e) = stopped("inodes", &sh.ask("fill /d 100").0);
    assert_eq!(files, 47, "{e}");
    assert!(e.contains("No space left on device"), "{e}");
    assert_eq!(sh.ask("rm /big").0, "ok");
    assert_eq!(sh.ask("grow /again 4").0, "wrote 4 MiB");
    drop(sh.stdin);
    assert!(sh.child.wait().unwrap().success());
    assert_usage_error(
        &[
            "run",
            "--max-bytes",
            "lots",
            guest("fsshell").to_str().unwrap(),
        ],
        "`lots` is not a size",
    );
    assert_usage_error(
        &[
            "run",
            "--max-inodes",
            "0",
            guest("fsshell").to_str().unwrap(),
        ],
        "--max-inodes",
    );
}

/// Bad command lines and odd inputs: exit 2 with a message naming the
/// problem, no panic, no hang, nothing created.
#[test]
fn bad_input_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let s = store.to_str().unwrap();
    let app = guest("append");
    let app = app.to_str().unwrap();
    for (args, says) in [
        (
            vec!["run", app, "--store", s, "--sync-mode", "periodic=1e300"],
            "more than a year",
        ),
        (
            vec!["run", app, "--store", s, "--poll", "1e300"],
            "more than a year",
        ),
        (
            vec!["run", app, "--store", s, "--poll", "NaN"],
            "not a positive number",
        ),
        (
            vec!["serve", "--store", s, "--sync-mode", "periodic=inf"],
            "more than a year",
        ),
    ] {
        assert_usage_error(&args, says);
    }
    assert!(!store.exists());

    // A FIFO as the app: refused at once rather than read forever.
    let fifo = tmp.path().join("app.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out_wasm = tmp.path().join("out.wasm");
    for args in [
        vec![
            "compose",
            fifo.to_str().unwrap(),
            "-o",
            out_wasm.to_str().unwrap(),
        ],
        vec!["run", fifo.to_str().unwrap()],
    ] {
        assert_usage_error(&args, "not a regular file");
    }
    assert!(!out_wasm.exists());
}

/// `larder ARGS` with its stdout and stderr piped to this test.
fn piped(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_larder"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Closes the reading end (as `| head` does) and asserts the command then
/// ended with exit 0 and said nothing.
fn assert_ends_quietly(mut child: std::process::Child) {
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        text(&out.stderr)
    );
    assert_eq!(text(&out.stderr), "");
}

/// `larder cat` of an 8 TiB sparse file streams it in bounded memory, and
/// stops quietly when its reader goes away (`| head`).
#[test]
fn cat_streams_a_huge_sparse_file_and_stops_on_a_closed_pipe() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let f = std::fs::File::create(store.join("big")).unwrap();
    f.set_len(8 << 40).unwrap();
    let mut child = piped(&["cat", "--store", store.to_str().unwrap(), "/big"]);
    let mut first = vec![0u8; 1 << 20];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    assert!(first.iter().all(|&b| b == 0));
    assert_ends_quietly(child);
}

/// `larder ls | head`: ls stops quietly (exit 0, nothing on stderr) when
/// its reader goes away, as Unix tools do, rather than printing
/// `Broken pipe`.
#[test]
fn ls_stops_quietly_on_a_closed_pipe() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    // Far more than a pipe holds, so ls is still writing when it closes.
    for i in 0..5000 {
        std::fs::write(store.join(format!("file-{i:05}")), "x").unwrap();
    }
    let mut child = piped(&["ls", "--store", store.to_str().unwrap()]);
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.trim_end().ends_with("/file-00000"), "{first}");
    assert_ends_quietly(child);
}

/// `--store s3:/b/p` (one slash short) and the like are refused as URLs
/// mistyped, with exit 2, and create nothing; `./s3:` is a directory.
#[test]
fn a_mistyped_store_url_is_refused_not_created() {
    let tmp = tempfile::tempdir().unwrap();
    let app = guest("append");
    for url in ["s3:/bucket/prefix", "s3:bucket", "file:state", "S3:/b"] {
        for args in [
            vec!["run", app.to_str().unwrap(), "--store", url],
            vec!["ls", "--store", url],
            vec!["serve", "--store", url],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_larder"))
                .args(&args)
                .current_dir(tmp.path())
                .output()
                .unwrap();
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains("looks like a URL but is not one"),
                "{args:?}: {err}"
            );
        }
    }
    assert_eq!(listing(tmp.path()), Vec::<String>::new(), "nothing created");
    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .args([
            "run",
            app.to_str().unwrap(),
            "--store",
            "./s3:",
            "--",
            "/log",
            "/files",
            "1",
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(listing(tmp.path()), ["s3:"]);
}

/// A name in a local store that is not UTF-8 (another tool wrote it) is
/// not a path Larder can hold: `ls` and `export` skip it with a warning
/// naming it, and go on with the rest.
#[test]
fn a_non_utf8_name_in_a_local_store_is_skipped_with_a_warning() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    std::fs::create_dir(&store).unwrap();
    std::fs::write(store.join("ok"), "fine").unwrap();
    std::fs::write(store.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), "x").unwrap();
    let dest = tmp.path().join("dest");
    let s = store.to_str().unwrap();
    let ls = larder(&["ls", "--store", s]);
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    assert!(text(&ls.stdout).contains("/ok"));
    assert_eq!(text(&ls.stdout).lines().count(), 1);
    let out = larder(&["export", "--store", s, dest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(r"bad\xffname"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(listing(&dest), ["ok"]);
}

/// The same guest on a store lent from S3: keys that climb out of the
/// app's prefix or are absolute are refused, and every object the guest
/// made sits under the prefix (an S3 key cannot be traversed, so the
/// keys below its symlink object are plain objects there).
#[test]
fn a_guest_cannot_leave_its_prefix_in_a_lent_s3_store() {
    let m = moto::Moto::start();
    hostile_guest(
        m.url("app").as_ref(),
        "/victim".as_ref(),
        &[
            "put link: ok",
            "put climbing out: error permanent",
            "put absolute: error permanent",
        ],
    );
    let keys =
        m.boto3("for o in S3.list_objects_v2(Bucket=B).get('Contents', []): print(o['Key'])");
    assert!(!keys.trim().is_empty());
    for key in keys.lines() {
        assert!(key.starts_with("app/") && !key.contains(".."), "{key}");
    }
}

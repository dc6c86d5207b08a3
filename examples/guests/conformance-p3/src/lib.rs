//! The WASI 0.3 conformance program: every `wasi:filesystem@0.3` function
//! and its error cases, one line per behaviour, through the raw 0.3 API
//! (Rust's std speaks 0.2). The output is compared across hosts (Larder's
//! and wasmtime's own 0.3 host on tmpfs): it prints only what every host
//! must agree on (no inode numbers, no clock readings, no directory sizes).
//!
//! Runs against the preopen `/`, in a fresh directory `conf3` under it.
//! A few lines use Rust's std (WASI 0.2) on the same files, as toolchains
//! that mix the two do: both must see one filesystem.

use std::fmt::Debug;
use wasip3::filesystem::preopens;
use wasip3::filesystem::types::{
    Advice, Descriptor, DescriptorFlags as DF, DescriptorType, ErrorCode, NewTimestamp,
    OpenFlags as OF, PathFlags as PF,
};
use wasip3::wit_bindgen::StreamResult;

wasip3::cli::command::export!(Conformance);

struct Conformance;

/// The transcript, written to stdout at the end.
#[derive(Default)]
struct Out(String);

impl Out {
    fn show<T: Debug>(&mut self, name: &str, r: Result<T, ErrorCode>) {
        let line = match r {
            Ok(v) => format!("{name}: ok {v:?}\n"),
            Err(e) => format!("{name}: err {e:?}\n"),
        };
        self.0.push_str(&line);
    }
}

async fn stdout(text: String) {
    let (mut tx, rx) = wasip3::wit_stream::new();
    futures::join!(
        async { wasip3::cli::stdout::write_via_stream(rx).await.unwrap() },
        async {
            tx.write_all(text.into_bytes()).await;
            drop(tx);
        }
    );
}

/// `data` through `write-via-stream` at `offset`; the future's result.
async fn write(fd: &Descriptor, offset: u64, data: &[u8]) -> Result<(), ErrorCode> {
    let (mut tx, rx) = wasip3::wit_stream::new();
    let data = data.to_vec();
    let (r, ()) = futures::join!(async { fd.write_via_stream(rx, offset).await }, async {
        tx.write_all(data).await;
        drop(tx);
    });
    r
}

/// `data` through `append-via-stream`.
async fn append(fd: &Descriptor, data: &[u8]) -> Result<(), ErrorCode> {
    let (mut tx, rx) = wasip3::wit_stream::new();
    let data = data.to_vec();
    let (r, ()) = futures::join!(async { fd.append_via_stream(rx).await }, async {
        tx.write_all(data).await;
        drop(tx);
    });
    r
}

/// Everything `read-via-stream` gives from `offset`, in reads of up to
/// `chunk` bytes, then the future's result.
async fn read(fd: &Descriptor, offset: u64, chunk: usize) -> Result<Vec<u8>, ErrorCode> {
    let (mut rx, result) = fd.read_via_stream(offset);
    let mut got = Vec::new();
    loop {
        let (status, buf) = rx.read(Vec::with_capacity(chunk)).await;
        got.extend(buf);
        if !matches!(status, StreamResult::Complete(_)) {
            break;
        }
    }
    drop(rx);
    result.await.map(|()| got)
}

/// The names and types `read-directory` lists, sorted, then the result.
async fn list(fd: &Descriptor) -> Result<Vec<(String, DescriptorType)>, ErrorCode> {
    let (mut rx, result) = fd.read_directory();
    let mut all = Vec::new();
    loop {
        let (status, entries) = rx.read(Vec::with_capacity(16)).await;
        all.extend(entries.into_iter().map(|e| (e.name, e.type_)));
        if !matches!(status, StreamResult::Complete(_)) {
            break;
        }
    }
    drop(rx);
    all.sort_by(|a, b| a.0.cmp(&b.0));
    result.await.map(|()| all)
}

async fn open(d: &Descriptor, path: &str, o: OF, f: DF) -> Result<Descriptor, ErrorCode> {
    d.open_at(PF::SYMLINK_FOLLOW, path.to_string(), o, f).await
}

/// What a stat shows that every host agrees on.
async fn kind_size(
    d: &Descriptor,
    path: &str,
    follow: bool,
) -> Result<(DescriptorType, u64), ErrorCode> {
    let flags = if follow {
        PF::SYMLINK_FOLLOW
    } else {
        PF::empty()
    };
    d.stat_at(flags, path.to_string())
        .await
        .map(|s| (s.type_, s.size))
}

impl wasip3::exports::cli::run::Guest for Conformance {
    async fn run() -> Result<(), ()> {
        let mut out = Out::default();
        run(&mut out).await;
        stdout(out.0).await;
        Ok(())
    }
}

async fn run(out: &mut Out) {
    let dirs = preopens::get_directories();
    out.show(
        "preopens",
        Ok::<_, ErrorCode>(dirs.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>()),
    );
    let Some((root, _)) = dirs.into_iter().find(|(_, n)| n == "/") else {
        out.0.push_str("no preopen named /\n");
        return;
    };
    // A fresh directory to work in.
    let _ = clear(&root, "conf3").await;
    out.show("mkdir", root.create_directory_at("conf3".into()).await);
    out.show(
        "mkdir-existing",
        root.create_directory_at("conf3".into()).await,
    );
    let rw = DF::READ | DF::WRITE;
    let dir = open(
        &root,
        "conf3",
        OF::DIRECTORY,
        DF::READ | DF::MUTATE_DIRECTORY,
    )
    .await
    .expect("open conf3");
    out.show("dir-type", dir.get_type().await);
    out.show("dir-flags", dir.get_flags().await);

    // Opening.
    let f = open(&dir, "a.txt", OF::CREATE, rw).await;
    out.show("create", f.as_ref().map(|_| ()).map_err(|e| e.clone()));
    let f = f.expect("create a.txt");
    out.show("file-type", f.get_type().await);
    out.show("file-flags", f.get_flags().await);
    out.show(
        "create-exclusive-existing",
        open(&dir, "a.txt", OF::CREATE | OF::EXCLUSIVE, rw)
            .await
            .map(|_| ()),
    );
    out.show(
        "open-missing",
        open(&dir, "missing", OF::empty(), DF::READ)
            .await
            .map(|_| ()),
    );
    out.show(
        "open-file-as-directory",
        open(&dir, "a.txt", OF::DIRECTORY, DF::READ)
            .await
            .map(|_| ()),
    );
    out.show(
        "open-dir-for-write",
        open(&root, "conf3", OF::empty(), rw).await.map(|_| ()),
    );
    out.show(
        "open-climbing-out",
        open(&dir, "../../x", OF::CREATE, rw).await.map(|_| ()),
    );
    out.show(
        "open-absolute",
        open(&dir, "/etc/passwd", OF::empty(), DF::READ)
            .await
            .map(|_| ()),
    );
    out.show(
        "open-trailing-slash",
        open(&dir, "a.txt/", OF::empty(), DF::READ)
            .await
            .map(|_| ()),
    );
    out.show(
        "create-in-missing-dir",
        open(&dir, "no/such", OF::CREATE, rw).await.map(|_| ()),
    );

    // Streams: write, read, offsets, holes, append.
    out.show("write", write(&f, 0, b"hello world").await);
    out.show("read", read(&f, 0, 64).await.map(String::from_utf8));
    out.show(
        "read-from-offset",
        read(&f, 6, 64).await.map(String::from_utf8),
    );
    out.show("read-past-end", read(&f, 100, 64).await);
    out.show(
        "read-in-small-chunks",
        read(&f, 0, 3).await.map(String::from_utf8),
    );
    out.show("write-at-offset", write(&f, 6, b"WORLD").await);
    out.show(
        "after-write-at-offset",
        read(&f, 0, 64).await.map(String::from_utf8),
    );
    out.show("write-past-end", write(&f, 20, b"tail").await);
    out.show("after-hole", read(&f, 0, 64).await);
    out.show("append", append(&f, b"+1").await);
    out.show("append-again", append(&f, b"+2").await);
    out.show(
        "after-append",
        read(&f, 20, 64).await.map(String::from_utf8),
    );
    out.show("size", f.stat().await.map(|s| s.size));
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    let b = open(&dir, "big", OF::CREATE, rw).await.expect("create big");
    out.show("big-write", write(&b, 0, &big).await);
    out.show(
        "big-read-matches",
        read(&b, 0, 1 << 20).await.map(|got| got == big),
    );
    out.show(
        "big-read-odd-chunks",
        read(&b, 5, 100_003).await.map(|got| got == big[5..]),
    );
    {
        // A reader that stops half way: the result is still `ok`.
        let (mut rx, result) = b.read_via_stream(0);
        let (_, first) = rx.read(Vec::with_capacity(1000)).await;
        drop(rx);
        out.show(
            "read-dropped-half-way",
            result.await.map(|()| first.len() <= 1000),
        );
    }
    {
        // A writer that stops after some bytes: those bytes are written.
        let w = open(&dir, "partial", OF::CREATE, rw)
            .await
            .expect("create partial");
        let (mut tx, rx) = wasip3::wit_stream::new();
        let (r, ()) = futures::join!(async { w.write_via_stream(rx, 0).await }, async {
            tx.write_all(b"abc".to_vec()).await;
            drop(tx);
        });
        out.show("write-ended-early", r);
        out.show("after-write-ended-early", read(&w, 0, 64).await);
    }
    {
        // A stream outlives its descriptor, as in 0.2.
        let w = open(&dir, "orphan", OF::CREATE, rw)
            .await
            .expect("create orphan");
        let (mut tx, rx) = wasip3::wit_stream::new();
        let written = w.write_via_stream(rx, 0);
        drop(w);
        let (r, ()) = futures::join!(async { written.await }, async {
            tx.write_all(b"still".to_vec()).await;
            drop(tx);
        });
        out.show("write-after-descriptor-dropped", r);
        out.show("orphan-written", kind_size(&dir, "orphan", false).await);
    }
    let ro = open(&dir, "a.txt", OF::empty(), DF::READ)
        .await
        .expect("open read-only");
    out.show("write-stream-on-read-only-fd", write(&ro, 0, b"x").await);
    out.show("append-on-read-only-fd", append(&ro, b"x").await);
    let wo = open(&dir, "a.txt", OF::empty(), DF::WRITE)
        .await
        .expect("open write-only");
    out.show("read-stream-on-write-only-fd", read(&wo, 0, 64).await);
    out.show("read-stream-on-dir", read(&dir, 0, 64).await);
    out.show("write-stream-on-dir", write(&dir, 0, b"x").await);

    // set-size, truncate, advise, sync.
    out.show("set-size-shrink", f.set_size(5).await);
    out.show("after-shrink", read(&f, 0, 64).await.map(String::from_utf8));
    out.show("set-size-grow", f.set_size(8).await);
    out.show("after-grow", read(&f, 0, 64).await);
    out.show("set-size-read-only", ro.set_size(1).await);
    out.show("set-size-on-dir", dir.set_size(0).await);
    out.show(
        "truncate-on-open",
        open(&dir, "a.txt", OF::TRUNCATE, rw).await.map(|_| ()),
    );
    out.show("after-truncate", f.stat().await.map(|s| s.size));
    out.show("advise", f.advise(0, 10, Advice::Sequential).await);
    out.show("advise-dont-need", f.advise(0, 0, Advice::DontNeed).await);
    out.show("sync", f.sync().await);
    out.show("sync-data", f.sync_data().await);
    out.show("sync-dir", dir.sync().await);
    out.show("sync-read-only", ro.sync().await);

    // Times.
    let t = |seconds: i64, nanoseconds: u32| {
        NewTimestamp::Timestamp(wasip3::clocks::system_clock::Instant {
            seconds,
            nanoseconds,
        })
    };
    out.show(
        "set-times",
        f.set_times(t(1_000_000_000, 5), t(1_500_000_000, 7)).await,
    );
    out.show(
        "times-after-set",
        f.stat().await.map(|s| {
            let at = |i: Option<wasip3::clocks::system_clock::Instant>| {
                i.map(|i| (i.seconds, i.nanoseconds))
            };
            (
                at(s.data_access_timestamp),
                at(s.data_modification_timestamp),
            )
        }),
    );
    out.show(
        "set-times-no-change",
        f.set_times(NewTimestamp::NoChange, NewTimestamp::NoChange)
            .await,
    );
    out.show(
        "mtime-kept",
        f.stat()
            .await
            .map(|s| s.data_modification_timestamp.map(|i| i.seconds)),
    );
    out.show(
        "set-times-at",
        dir.set_times_at(
            PF::empty(),
            "big".into(),
            t(1_200_000_000, 0),
            NewTimestamp::NoChange,
        )
        .await,
    );
    out.show(
        "atime-at",
        dir.stat_at(PF::empty(), "big".into())
            .await
            .map(|s| s.data_access_timestamp.map(|i| i.seconds)),
    );
    out.show(
        "set-times-at-missing",
        dir.set_times_at(
            PF::empty(),
            "missing".into(),
            NewTimestamp::Now,
            NewTimestamp::Now,
        )
        .await,
    );

    // Directories.
    out.show("mkdir-sub", dir.create_directory_at("d".into()).await);
    out.show("mkdir-nested", dir.create_directory_at("d/e".into()).await);
    out.show(
        "mkdir-in-missing",
        dir.create_directory_at("x/y".into()).await,
    );
    out.show("list", list(&dir).await);
    out.show("list-file", list(&f).await);
    let d = open(&dir, "d", OF::DIRECTORY, DF::READ | DF::MUTATE_DIRECTORY)
        .await
        .expect("open d");
    out.show("list-sub", list(&d).await);
    out.show("rmdir-nonempty", dir.remove_directory_at("d".into()).await);
    out.show("rmdir-file", dir.remove_directory_at("a.txt".into()).await);
    out.show("unlink-dir", dir.unlink_file_at("d".into()).await);
    out.show(
        "rmdir-missing",
        dir.remove_directory_at("missing".into()).await,
    );
    out.show("rmdir", dir.remove_directory_at("d/e".into()).await);
    out.show("list-sub-after", list(&d).await);

    // Rename.
    out.show(
        "rename",
        dir.rename_at("a.txt".into(), &dir, "b.txt".into()).await,
    );
    out.show("old-name-gone", kind_size(&dir, "a.txt", false).await);
    out.show("new-name", kind_size(&dir, "b.txt", false).await);
    out.show(
        "rename-across-dirs",
        dir.rename_at("b.txt".into(), &d, "moved".into()).await,
    );
    out.show(
        "rename-back",
        d.rename_at("moved".into(), &dir, "b.txt".into()).await,
    );
    out.show(
        "rename-missing",
        dir.rename_at("missing".into(), &dir, "x".into()).await,
    );
    out.show(
        "rename-into-own-subdir",
        dir.rename_at("d".into(), &d, "d".into()).await,
    );
    out.show(
        "rename-file-onto-dir",
        dir.rename_at("b.txt".into(), &dir, "d".into()).await,
    );
    out.show(
        "rename-dir-onto-file",
        dir.rename_at("d".into(), &dir, "b.txt".into()).await,
    );
    out.show(
        "rename-onto-itself",
        dir.rename_at("b.txt".into(), &dir, "b.txt".into()).await,
    );
    out.show(
        "rename-replace",
        dir.rename_at("partial".into(), &dir, "b.txt".into()).await,
    );
    out.show("replaced", kind_size(&dir, "b.txt", false).await);

    // Links.
    out.show(
        "link",
        dir.link_at(PF::empty(), "b.txt".into(), &dir, "hard".into())
            .await,
    );
    out.show(
        "link-existing",
        dir.link_at(PF::empty(), "b.txt".into(), &dir, "hard".into())
            .await,
    );
    out.show(
        "link-dir",
        dir.link_at(PF::empty(), "d".into(), &dir, "dlink".into())
            .await,
    );
    out.show("link-count", f.stat().await.map(|s| s.link_count));
    out.show(
        "link-count-b",
        dir.stat_at(PF::empty(), "b.txt".into())
            .await
            .map(|s| s.link_count),
    );
    out.show(
        "symlink",
        dir.symlink_at("b.txt".into(), "sym".into()).await,
    );
    out.show(
        "symlink-existing",
        dir.symlink_at("b.txt".into(), "sym".into()).await,
    );
    out.show(
        "symlink-dangling",
        dir.symlink_at("nowhere".into(), "dangling".into()).await,
    );
    out.show(
        "symlink-absolute",
        dir.symlink_at("/etc/passwd".into(), "abs".into()).await,
    );
    out.show("readlink", dir.readlink_at("sym".into()).await);
    out.show("readlink-file", dir.readlink_at("b.txt".into()).await);
    out.show("readlink-missing", dir.readlink_at("missing".into()).await);
    out.show("stat-symlink-nofollow", kind_size(&dir, "sym", false).await);
    out.show("stat-symlink-follow", kind_size(&dir, "sym", true).await);
    out.show(
        "stat-dangling-follow",
        kind_size(&dir, "dangling", true).await,
    );
    out.show(
        "open-symlink-nofollow",
        dir.open_at(PF::empty(), "sym".into(), OF::empty(), DF::READ)
            .await
            .map(|_| ()),
    );
    out.show(
        "symlink-loop",
        dir.symlink_at("loop".into(), "loop".into()).await,
    );
    out.show("follow-loop", kind_size(&dir, "loop", true).await);
    out.show(
        "symlink-out",
        dir.symlink_at("../../..".into(), "out".into()).await,
    );
    out.show(
        "follow-out",
        open(&dir, "out/x", OF::empty(), DF::READ).await.map(|_| ()),
    );
    out.show("unlink-symlink", dir.unlink_file_at("sym".into()).await);
    out.show("unlink-missing", dir.unlink_file_at("sym".into()).await);
    out.show("unlink", dir.unlink_file_at("hard".into()).await);

    // Identity.
    let b1 = open(&dir, "b.txt", OF::empty(), DF::READ)
        .await
        .expect("open b.txt");
    let b2 = open(&dir, "b.txt", OF::empty(), DF::READ)
        .await
        .expect("open b.txt again");
    out.show(
        "same-object",
        Ok::<_, ErrorCode>(b1.is_same_object(&b2).await),
    );
    out.show(
        "different-object",
        Ok::<_, ErrorCode>(b1.is_same_object(&dir).await),
    );
    let hash = |h: Result<wasip3::filesystem::types::MetadataHashValue, ErrorCode>| {
        h.map(|h| (h.lower, h.upper)).ok()
    };
    let (h1, h2) = (
        hash(b1.metadata_hash().await),
        hash(b2.metadata_hash().await),
    );
    out.show(
        "metadata-hash-same",
        Ok::<_, ErrorCode>(h1.is_some() && h1 == h2),
    );
    let ha = hash(dir.metadata_hash_at(PF::empty(), "b.txt".into()).await);
    out.show(
        "metadata-hash-at-same",
        Ok::<_, ErrorCode>(ha.is_some() && ha == h1),
    );
    let hd = hash(dir.metadata_hash().await);
    out.show(
        "metadata-hash-differs",
        Ok::<_, ErrorCode>(hd.is_some() && hd != h1),
    );
    out.show(
        "metadata-hash-at-missing",
        dir.metadata_hash_at(PF::empty(), "missing".into())
            .await
            .map(|_| ()),
    );

    // WASI 0.2 (std) and 0.3 on the same files.
    let p2 = |e: std::io::Error| ErrorCode::Other(Some(e.kind().to_string()));
    let m = open(&dir, "mixed", OF::CREATE, rw)
        .await
        .expect("create mixed");
    out.show("p3-write", write(&m, 0, b"from 0.3").await);
    out.show(
        "p2-read",
        std::fs::read_to_string("/conf3/mixed").map_err(p2),
    );
    out.show(
        "p2-write",
        std::fs::write("/conf3/mixed", b"from 0.2!").map_err(p2),
    );
    out.show("p3-read", read(&m, 0, 64).await.map(String::from_utf8));

    out.show("cleanup", clear(&root, "conf3").await);
}

/// Removes `path` under `d` and all in it.
async fn clear(d: &Descriptor, path: &str) -> Result<(), ErrorCode> {
    let sub = d
        .open_at(
            PF::empty(),
            path.to_string(),
            OF::DIRECTORY,
            DF::READ | DF::MUTATE_DIRECTORY,
        )
        .await?;
    for (name, kind) in list(&sub).await? {
        if matches!(kind, DescriptorType::Directory) {
            Box::pin(clear(&sub, &name)).await?;
        } else {
            sub.unlink_file_at(name).await?;
        }
    }
    drop(sub);
    d.remove_directory_at(path.to_string()).await
}

//! Exercises the wasi:filesystem surface through Rust std and, where std
//! cannot reach, the `wasi` crate, printing one line per behaviour. The
//! output is compared across hosts (vfs-host, the composed adapter,
//! wasmtime's own host filesystem on tmpfs): it must be identical, so it
//! prints only what every host must agree on (no inode numbers, no clock
//! values, no directory sizes).
//!
//! Runs against the preopen `/`, in a fresh directory `/conf`. When the
//! host also offers the same directory read-only as the preopen `/ro`
//! (wasmtime's `FsPerms::ReadOnly`, Larder's `--preopen /ro=/:ro`), every
//! mutating call is tried through it as well.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, SystemTime};
use wasi::filesystem::types::{
    Descriptor, DescriptorFlags as DF, OpenFlags as OF, PathFlags as PF,
};

fn show<T: Debug>(name: &str, r: std::io::Result<T>) {
    match r {
        Ok(v) => println!("{name}: ok {v:?}"),
        Err(e) => println!("{name}: err {:?}", e.kind()),
    }
}

fn show_w<T: Debug>(name: &str, r: Result<T, wasi::filesystem::types::ErrorCode>) {
    match r {
        Ok(v) => println!("{name}: ok {v:?}"),
        Err(e) => println!("{name}: err {e:?}"),
    }
}

fn kind(p: &str) -> std::io::Result<&'static str> {
    let m = fs::symlink_metadata(p)?;
    Ok(if m.is_symlink() {
        "symlink"
    } else if m.is_dir() {
        "dir"
    } else {
        "file"
    })
}

fn names(p: &str) -> std::io::Result<Vec<String>> {
    let mut v: Vec<String> = fs::read_dir(p)?
        .map(|e| e.map(|e| e.file_name().into_string().unwrap()))
        .collect::<Result<_, _>>()?;
    v.sort();
    Ok(v)
}

fn preopen(name: &str) -> Option<Descriptor> {
    wasi::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, n)| n == name)
        .map(|(d, _)| d)
}

fn root() -> Descriptor {
    preopen("/").expect("a preopen named /")
}

fn main() {
    let _ = fs::remove_dir_all("/conf");
    fs::create_dir("/conf").expect("fresh /conf");

    // Files: create, write, read, size, open errors.
    show("write", fs::write("/conf/a.txt", b"hello world"));
    show("read", fs::read_to_string("/conf/a.txt"));
    show("size", fs::metadata("/conf/a.txt").map(|m| m.len()));
    show("open-missing", File::open("/conf/missing"));
    show(
        "create-new-existing",
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open("/conf/a.txt")
            .map(|_| ()),
    );
    show(
        "create-in-missing-dir",
        File::create("/conf/no/such").map(|_| ()),
    );
    show(
        "trailing-slash-on-file",
        fs::metadata("/conf/a.txt/").map(|_| ()),
    );
    show(
        "open-dir-for-write",
        OpenOptions::new().write(true).open("/conf").map(|_| ()),
    );

    // Offsets, holes, set-size, append, truncate.
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/conf/a.txt")
        .unwrap();
    show("seek-past-end", f.seek(SeekFrom::Start(100_000)));
    show("write-after-hole", f.write_all(b"tail"));
    show("size-after-hole", f.metadata().map(|m| m.len()));
    let mut buf = vec![0u8; 16];
    f.seek(SeekFrom::Start(50_000)).unwrap();
    show(
        "hole-reads-zeros",
        f.read_exact(&mut buf).map(|_| buf.iter().all(|&b| b == 0)),
    );
    show("set-len-shrink", f.set_len(5));
    show("after-shrink", fs::read_to_string("/conf/a.txt"));
    show(
        "set-len-grow",
        f.set_len(8).and_then(|_| fs::read("/conf/a.txt")),
    );
    drop(f);
    {
        let mut a = OpenOptions::new().append(true).open("/conf/a.txt").unwrap();
        show("append-1", a.write_all(b"+1"));
        show("append-2", a.write_all(b"+2"));
    }
    show("after-append", fs::read("/conf/a.txt"));
    show(
        "truncate-on-open",
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open("/conf/a.txt")
            .map(|_| ()),
    );
    show(
        "after-truncate",
        fs::metadata("/conf/a.txt").map(|m| m.len()),
    );
    let big: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i * 7 % 251) as u8).collect();
    show("big-write", fs::write("/conf/big", &big));
    show("big-read-matches", fs::read("/conf/big").map(|b| b == big));

    // Directories.
    show("mkdir", fs::create_dir("/conf/d"));
    show("mkdir-existing", fs::create_dir("/conf/d"));
    show("mkdir-all", fs::create_dir_all("/conf/d/e/f"));
    show("readdir", names("/conf"));
    show("rmdir-nonempty", fs::remove_dir("/conf/d"));
    show("unlink-dir", fs::remove_file("/conf/d"));
    show("rmdir-file", fs::remove_dir("/conf/a.txt"));
    show("rmdir-empty", fs::remove_dir("/conf/d/e/f"));
    show("readdir-after", names("/conf/d/e"));

    // Rename.
    show("rename", fs::rename("/conf/a.txt", "/conf/b.txt"));
    show("old-gone", fs::metadata("/conf/a.txt").map(|_| ()));
    fs::write("/conf/c.txt", b"c").unwrap();
    show("rename-replace", fs::rename("/conf/c.txt", "/conf/b.txt"));
    show("replaced-content", fs::read_to_string("/conf/b.txt"));
    show(
        "rename-into-own-subdir",
        fs::rename("/conf/d", "/conf/d/e/d"),
    );
    show("rename-file-onto-dir", fs::rename("/conf/b.txt", "/conf/d"));
    show("rename-dir-onto-file", fs::rename("/conf/d", "/conf/b.txt"));
    show(
        "rename-onto-itself",
        fs::rename("/conf/b.txt", "/conf/b.txt"),
    );
    show("rename-dir", fs::rename("/conf/d", "/conf/d2"));
    show("readdir-renamed", names("/conf/d2"));

    // Links.
    show("hard-link", fs::hard_link("/conf/b.txt", "/conf/hard.txt"));
    show(
        "hard-link-existing",
        fs::hard_link("/conf/b.txt", "/conf/hard.txt"),
    );
    show(
        "hard-link-shares",
        fs::write("/conf/hard.txt", b"shared").and_then(|_| fs::read_to_string("/conf/b.txt")),
    );
    let r = root();
    show_w("symlink", r.symlink_at("b.txt", "conf/sym"));
    show_w("symlink-existing", r.symlink_at("b.txt", "conf/sym"));
    show_w("dangling-symlink", r.symlink_at("nowhere", "conf/dangling"));
    show(
        "readlink",
        fs::read_link("/conf/sym").map(|p| p.display().to_string()),
    );
    show("readlink-file", fs::read_link("/conf/b.txt").map(|_| ()));
    show("follow-symlink", fs::read_to_string("/conf/sym"));
    show("kind-of-symlink", kind("/conf/sym"));
    show("follow-dangling", fs::read("/conf/dangling"));
    show("unlink-symlink", fs::remove_file("/conf/sym"));
    show("target-survives", fs::read_to_string("/conf/b.txt"));
    // WASI 0.2 `symlink-at`: a target starting with `/` is not-permitted,
    // and nothing is made.
    show_w("symlink-absolute", r.symlink_at("/conf/b.txt", "conf/abs"));
    show("symlink-absolute-made", kind("/conf/abs"));
    show_w("loop", r.symlink_at("loop", "conf/loop"));
    show("follow-loop", fs::metadata("/conf/loop").map(|_| ()));
    show_w(
        "link-count",
        r.stat_at(PF::empty(), "conf/b.txt").map(|s| s.link_count),
    );

    // Containment.
    show_w("dotdot-at-root", r.stat_at(PF::empty(), "..").map(|_| ()));
    show_w("absolute-path", r.stat_at(PF::empty(), "/conf").map(|_| ()));
    show_w(
        "dotdot-inside",
        r.stat_at(PF::empty(), "conf/d2/../b.txt").map(|s| s.size),
    );
    let conf = r
        .open_at(PF::empty(), "conf", OF::DIRECTORY, DF::READ)
        .unwrap();
    show_w(
        "dotdot-above-subdir-fd",
        conf.stat_at(PF::empty(), "../conf").map(|_| ()),
    );

    // Descriptor-level operations.
    let b1 = r
        .open_at(PF::SYMLINK_FOLLOW, "conf/b.txt", OF::empty(), DF::READ)
        .unwrap();
    let b2 = r
        .open_at(
            PF::SYMLINK_FOLLOW,
            "conf/hard.txt",
            OF::empty(),
            DF::READ | DF::WRITE,
        )
        .unwrap();
    show_w(
        "same-object-hardlink",
        Ok::<_, wasi::filesystem::types::ErrorCode>(b1.is_same_object(&b2)),
    );
    show_w(
        "same-object-other",
        Ok::<_, wasi::filesystem::types::ErrorCode>(b1.is_same_object(&conf)),
    );
    let h1 = b1.metadata_hash().unwrap();
    show_w(
        "hash-equal-for-links",
        b2.metadata_hash()
            .map(|h| (h.lower, h.upper) == (h1.lower, h1.upper)),
    );
    show_w(
        "hash-at-matches",
        r.metadata_hash_at(PF::empty(), "conf/b.txt")
            .map(|h| (h.lower, h.upper) == (h1.lower, h1.upper)),
    );
    show_w("write-via-fd", b2.write(b"SHARED", 0));
    show_w("read-via-fd", b1.read(6, 0));
    show_w("write-readonly-fd", b1.write(b"x", 0));
    show_w("get-type", b1.get_type());
    show_w(
        "get-flags-rw",
        b2.get_flags()
            .map(|f| (f.contains(DF::READ), f.contains(DF::WRITE))),
    );
    show_w(
        "advise",
        b1.advise(0, 10, wasi::filesystem::types::Advice::Sequential),
    );
    show_w("sync", b2.sync());
    show_w("sync-data", b2.sync_data());
    show_w(
        "open-nofollow-symlink",
        r.open_at(PF::empty(), "conf/dangling", OF::empty(), DF::READ)
            .map(|_| ()),
    );
    show_w(
        "open-directory-flag-on-file",
        r.open_at(PF::empty(), "conf/b.txt", OF::DIRECTORY, DF::READ)
            .map(|_| ()),
    );
    show_w(
        "stat-nofollow-type",
        r.stat_at(PF::empty(), "conf/dangling").map(|s| s.type_),
    );

    // Timestamps.
    let when = SystemTime::UNIX_EPOCH + Duration::new(1_500_000_000, 123_456_789);
    let f = OpenOptions::new().write(true).open("/conf/b.txt").unwrap();
    show(
        "set-times",
        f.set_times(fs::FileTimes::new().set_modified(when).set_accessed(when)),
    );
    show(
        "mtime-exact",
        fs::metadata("/conf/b.txt")
            .and_then(|m| m.modified())
            .map(|t| t == when),
    );
    drop(f);

    // Streams, polling and the rest of the descriptor surface, through the
    // `wasi` crate.
    let w = r
        .open_at(
            PF::empty(),
            "conf/s.bin",
            OF::CREATE | OF::EXCLUSIVE,
            DF::READ | DF::WRITE,
        )
        .unwrap();
    show_w(
        "create-exclusive-again",
        r.open_at(
            PF::empty(),
            "conf/s.bin",
            OF::CREATE | OF::EXCLUSIVE,
            DF::WRITE,
        )
        .map(|_| ()),
    );
    let out = w.write_via_stream(2).unwrap();
    show_w(
        "stream-check-write-positive",
        Ok::<_, wasi::filesystem::types::ErrorCode>(
            out.check_write().map(|n| n > 0).unwrap_or(false),
        ),
    );
    show_w(
        "stream-write",
        Ok::<_, wasi::filesystem::types::ErrorCode>(out.blocking_write_and_flush(b"abc").is_ok()),
    );
    show_w(
        "stream-write-zeroes",
        Ok::<_, wasi::filesystem::types::ErrorCode>(
            out.write_zeroes(3).is_ok() && out.flush().is_ok(),
        ),
    );
    out.subscribe().block();
    drop(out);
    let app = w.append_via_stream().unwrap();
    show_w(
        "stream-append",
        Ok::<_, wasi::filesystem::types::ErrorCode>(app.blocking_write_and_flush(b"END").is_ok()),
    );
    drop(app);
    show_w("stream-contents", w.read(64, 0));
    // Streams on a directory: its type is checked, not only its flags.
    show_w("read-stream-on-dir", root().read_via_stream(0).map(|_| ()));
    show_w(
        "write-stream-on-dir",
        root().write_via_stream(0).map(|_| ()),
    );
    show_w(
        "append-stream-on-dir",
        root().append_via_stream().map(|_| ()),
    );
    let input = w.read_via_stream(1).unwrap();
    // Non-blocking reads may legally return less; compare what a reader
    // that keeps asking gets.
    show_w(
        "stream-skip",
        Ok::<_, wasi::filesystem::types::ErrorCode>(input.blocking_skip(2).ok()),
    );
    let timer = wasi::clocks::monotonic_clock::subscribe_duration(60_000_000_000);
    let ready = input.subscribe();
    show_w(
        "poll-file-and-timer",
        Ok::<_, wasi::filesystem::types::ErrorCode>(wasi::io::poll::poll(&[&timer, &ready])),
    );
    let now = wasi::clocks::monotonic_clock::subscribe_duration(0);
    show_w(
        "poll-file-and-elapsed-timer",
        Ok::<_, wasi::filesystem::types::ErrorCode>(wasi::io::poll::poll(&[&now, &ready])),
    );
    let soon = wasi::clocks::monotonic_clock::subscribe_duration(1_000_000);
    show_w(
        "poll-timer-only",
        Ok::<_, wasi::filesystem::types::ErrorCode>(wasi::io::poll::poll(&[&timer, &soon])),
    );
    drop((now, soon));
    let mut rest = Vec::new();
    let closed = loop {
        match input.blocking_read(100) {
            Ok(b) => rest.extend(b),
            Err(e) => break matches!(e, wasi::io::streams::StreamError::Closed),
        }
    };
    show_w(
        "stream-read-rest",
        Ok::<_, wasi::filesystem::types::ErrorCode>(rest),
    );
    show_w(
        "stream-eof-closed",
        Ok::<_, wasi::filesystem::types::ErrorCode>(closed),
    );
    drop((ready, input));
    show_w(
        "write-stream-on-read-only-fd",
        b1.write_via_stream(0).map(|_| ()),
    );
    show_w(
        "read-stream-on-write-only-fd",
        r.open_at(PF::empty(), "conf/s.bin", OF::empty(), DF::WRITE)
            .unwrap()
            .read_via_stream(0)
            .map(|_| ()),
    );
    show_w(
        "set-times-at",
        r.set_times_at(
            PF::empty(),
            "conf/s.bin",
            wasi::filesystem::types::NewTimestamp::NoChange,
            wasi::filesystem::types::NewTimestamp::Timestamp(wasi::clocks::wall_clock::Datetime {
                seconds: 1_000_000_000,
                nanoseconds: 5,
            }),
        ),
    );
    show_w(
        "mtime-at",
        r.stat_at(PF::empty(), "conf/s.bin").map(|s| {
            s.data_modification_timestamp
                .map(|t| (t.seconds, t.nanoseconds))
        }),
    );
    show_w(
        "set-times-bad-nanos",
        w.set_times(
            wasi::filesystem::types::NewTimestamp::NoChange,
            wasi::filesystem::types::NewTimestamp::Timestamp(wasi::clocks::wall_clock::Datetime {
                seconds: 1,
                nanoseconds: 2_000_000_000,
            }),
        ),
    );
    show_w("create-directory-at", r.create_directory_at("conf/sub"));
    show_w(
        "readdir-via-fd",
        r.open_at(PF::empty(), "conf", OF::DIRECTORY, DF::READ)
            .and_then(|d| {
                let s = d.read_directory()?;
                let mut v = Vec::new();
                while let Some(e) = s.read_directory_entry()? {
                    v.push((e.name, format!("{:?}", e.type_)));
                }
                v.sort();
                Ok(v)
            }),
    );
    show_w(
        "rename-at-across-fds",
        r.open_at(
            PF::empty(),
            "conf/sub",
            OF::DIRECTORY,
            DF::READ | DF::MUTATE_DIRECTORY,
        )
        .and_then(|sub| conf.rename_at("s.bin", &sub, "t.bin")),
    );
    show_w(
        "link-at",
        r.link_at(PF::empty(), "conf/sub/t.bin", &r, "conf/t-link"),
    );
    show_w("unlink-file-at-dir", r.unlink_file_at("conf/sub"));
    show_w(
        "remove-directory-at-file",
        r.remove_directory_at("conf/t-link"),
    );
    show_w(
        "remove-directory-at-nonempty",
        r.remove_directory_at("conf/sub"),
    );
    show_w("readlink-at-file", r.readlink_at("conf/t-link"));
    show_w("set-size-on-dir", conf.set_size(0));
    show_w("read-dir-fd", conf.read(1, 0));
    show_w(
        "stat-at-follow",
        r.stat_at(PF::SYMLINK_FOLLOW, "conf/dangling")
            .map(|s| s.type_),
    );
    show_w(
        "unlink-file-at",
        r.unlink_file_at("conf/t-link")
            .and_then(|_| r.unlink_file_at("conf/sub/t.bin"))
            .and_then(|_| r.remove_directory_at("conf/sub")),
    );
    drop(w);

    // An unlinked file stays readable through an open descriptor.
    let mut keep = File::open("/conf/big").unwrap();
    show("unlink-open", fs::remove_file("/conf/big"));
    let mut first = [0u8; 8];
    show("read-unlinked", keep.read_exact(&mut first).map(|_| first));
    show("readdir-final", names("/conf"));
    show("cleanup", fs::remove_dir_all("/conf"));
    if let Some(ro) = preopen("/ro") {
        read_only_preopen(&root(), &ro);
    }
}

/// Through a read-only preopen (no `mutate-directory`, files never open
/// for writing), reads work and every mutating call is `not-permitted`;
/// set up and cleaned up through the writable `/`.
fn read_only_preopen(rw: &Descriptor, ro: &Descriptor) {
    use wasi::filesystem::types::{DescriptorStat, ErrorCode, NewTimestamp};
    let _ = fs::remove_dir_all("/conf-ro");
    fs::create_dir_all("/conf-ro/d").unwrap();
    fs::write("/conf-ro/f", b"data").unwrap();
    rw.symlink_at("f", "conf-ro/l").unwrap();
    let when = NewTimestamp::Timestamp(wasi::clocks::wall_clock::Datetime {
        seconds: 1_000_000_000,
        nanoseconds: 0,
    });
    let open = |path: &str, o: OF, d: DF| ro.open_at(PF::empty(), path, o, d);
    let size = |s: DescriptorStat| s.size;

    show_w("ro-preopen-flags", ro.get_flags());
    let f = open("conf-ro/f", OF::empty(), DF::READ).unwrap();
    let d = open("conf-ro/d", OF::DIRECTORY, DF::READ).unwrap();
    show_w("ro-file-flags", f.get_flags());
    show_w("ro-dir-flags", d.get_flags());
    show_w("ro-read", f.read(10, 0));
    show_w("ro-stat-at", ro.stat_at(PF::empty(), "conf-ro/f").map(size));
    show_w("ro-readlink", ro.readlink_at("conf-ro/l"));
    show_w(
        "ro-readdir",
        d.read_directory()
            .and_then(|s| s.read_directory_entry().map(|e| e.is_none())),
    );
    show_w("ro-read-stream", f.read_via_stream(0).map(|_| ()));
    show_w(
        "ro-open-write",
        open("conf-ro/f", OF::empty(), DF::WRITE).map(|_| ()),
    );
    show_w(
        "ro-open-read-write",
        open("conf-ro/f", OF::empty(), DF::READ | DF::WRITE).map(|_| ()),
    );
    show_w(
        "ro-open-create",
        open("conf-ro/new", OF::CREATE, DF::READ).map(|_| ()),
    );
    show_w(
        "ro-open-create-existing",
        open("conf-ro/f", OF::CREATE, DF::READ).map(|_| ()),
    );
    show_w(
        "ro-open-truncate",
        open("conf-ro/f", OF::TRUNCATE, DF::READ).map(|_| ()),
    );
    show_w(
        "ro-open-dir-mutate",
        open("conf-ro/d", OF::DIRECTORY, DF::READ | DF::MUTATE_DIRECTORY).map(|_| ()),
    );
    show_w("ro-write", f.write(b"x", 0));
    show_w("ro-write-stream", f.write_via_stream(0).map(|_| ()));
    show_w("ro-append-stream", f.append_via_stream().map(|_| ()));
    show_w("ro-set-size", f.set_size(0));
    show_w("ro-set-times-file", f.set_times(when, when));
    show_w("ro-set-times-dir", d.set_times(when, when));
    show_w(
        "ro-set-times-at",
        ro.set_times_at(PF::empty(), "conf-ro/f", when, when),
    );
    show_w("ro-create-directory", ro.create_directory_at("conf-ro/e"));
    show_w("ro-create-directory-in-dir", d.create_directory_at("e"));
    show_w("ro-remove-directory", ro.remove_directory_at("conf-ro/d"));
    show_w("ro-unlink", ro.unlink_file_at("conf-ro/f"));
    show_w("ro-unlink-missing", ro.unlink_file_at("conf-ro/missing"));
    show_w("ro-symlink", ro.symlink_at("f", "conf-ro/l2"));
    show_w(
        "ro-rename-within",
        ro.rename_at("conf-ro/f", ro, "conf-ro/g"),
    );
    show_w(
        "ro-rename-to-writable",
        ro.rename_at("conf-ro/f", rw, "conf-ro/g"),
    );
    show_w(
        "ro-rename-from-writable",
        rw.rename_at("conf-ro/f", ro, "conf-ro/g"),
    );
    show_w(
        "ro-link-within",
        ro.link_at(PF::empty(), "conf-ro/f", ro, "conf-ro/h"),
    );
    show_w(
        "ro-link-to-writable",
        ro.link_at(PF::empty(), "conf-ro/f", rw, "conf-ro/h"),
    );
    show_w(
        "ro-link-from-writable",
        rw.link_at(PF::empty(), "conf-ro/f", ro, "conf-ro/h"),
    );
    show_w("ro-sync", f.sync());
    show_w("ro-sync-data", f.sync_data());
    show_w(
        "ro-advise",
        f.advise(0, 1, wasi::filesystem::types::Advice::Normal),
    );
    drop((f, d));
    show_w(
        "ro-unchanged",
        Ok::<_, ErrorCode>((
            names("/conf-ro").map_err(|e| e.kind()),
            fs::read("/conf-ro/f").map_err(|e| e.kind()),
        )),
    );
    show("ro-cleanup", fs::remove_dir_all("/conf-ro"));
}

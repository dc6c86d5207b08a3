//! What mirrors build on: the change sequence moves on every change and
//! never repeats, fsync reaches the sync hook (and returns its error), and
//! closing a descriptor opened for writing is reported.

use fs_core::{
    DescriptorFlags as DF, ErrorCode, Fs, FsConfig, ManualClock, NewTimestamp, OpenFlags as OF,
    PathFlags as PF, SyncHook,
};
use std::sync::{Arc, Mutex};

fn fs() -> (Fs, fs_core::Descriptor) {
    // A clock that never moves: ctime cannot tell changes apart, the
    // change sequence must.
    let fs = Fs::new(
        FsConfig::default(),
        Arc::new(ManualClock::new(fs_core::Timestamp::new(1_000, 0).unwrap())),
    )
    .unwrap();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    (fs, root)
}

#[test]
fn every_change_moves_the_sequence_even_when_ctime_does_not() {
    let (fs, root) = fs();
    let f = root
        .open_at(PF::empty(), "a", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    let mut seen = vec![f.stat().change];
    let mut step = |what: &str, change: u64| {
        assert!(
            change > *seen.last().unwrap(),
            "{what}: change {change} after {seen:?}"
        );
        seen.push(change);
    };
    f.write(b"x", 0).unwrap();
    step("write", f.stat().change);
    f.set_size(10).unwrap();
    step("set-size", f.stat().change);
    f.set_times(NewTimestamp::Now, NewTimestamp::NoChange)
        .unwrap();
    step("set-times", f.stat().change);
    root.link_at(PF::empty(), "a", &root, "b").unwrap();
    step("link", f.stat().change);
    root.rename_at("b", &root, "c").unwrap();
    step("rename", f.stat().change);
    let data = f.stat().data_change;
    root.unlink_file_at("c").unwrap();
    step("unlink", f.stat().change);
    assert_eq!(
        f.stat().data_change,
        data,
        "links and times leave the data version"
    );
    f.write(b"y", 0).unwrap();
    assert_eq!(f.stat().data_change, f.stat().change, "a write moves it");
    let before = root.stat().change;
    root.create_directory_at("d").unwrap();
    assert!(root.stat().change > before, "mkdir moves the parent");
    let seq = fs.change_seq();
    let mut buf = [0; 4];
    f.read(&mut buf, 0).unwrap();
    root.stat_at(PF::empty(), "a").unwrap();
    assert_eq!(fs.change_seq(), seq, "reads and stats change nothing");
}

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    fail: Mutex<Option<ErrorCode>>,
}

impl SyncHook for Recorder {
    fn sync(&self, fs: &Fs, ino: u64, data_only: bool) -> fs_core::Result<()> {
        // The hook may use the filesystem: nothing is locked.
        let root = fs.root(DF::READ).unwrap();
        let n = root.read_directory().unwrap().count();
        self.calls
            .lock()
            .unwrap()
            .push(format!("sync {ino} {data_only} entries={n}"));
        match *self.fail.lock().unwrap() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
    fn closed(&self, _fs: &Fs, ino: u64) {
        self.calls.lock().unwrap().push(format!("closed {ino}"));
    }
}

#[test]
fn fsync_and_close_reach_the_hook() {
    let (fs, root) = fs();
    let hook = Arc::new(Recorder::default());
    fs.set_sync_hook(hook.clone());
    let f = root
        .open_at(PF::empty(), "a", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    let ino = f.stat().ino;
    f.sync().unwrap();
    f.sync_data().unwrap();
    *hook.fail.lock().unwrap() = Some(ErrorCode::Io);
    assert_eq!(
        f.sync(),
        Err(ErrorCode::Io),
        "fsync reports the hook's error"
    );
    let r = root
        .open_at(PF::empty(), "a", OF::empty(), DF::READ)
        .unwrap();
    drop(r);
    // A second writer and a clone (what a stream holds) come and go while
    // `f` stays open: no close is reported until the last writer goes.
    let w = root
        .open_at(PF::empty(), "a", OF::empty(), DF::WRITE)
        .unwrap();
    let stream = f.try_clone().unwrap();
    drop(stream);
    drop(w);
    assert!(
        !hook
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.starts_with("closed")),
        "closed while a writer is still open"
    );
    drop(f);
    assert_eq!(
        *hook.calls.lock().unwrap(),
        [
            format!("sync {ino} false entries=1"),
            format!("sync {ino} true entries=1"),
            format!("sync {ino} false entries=1"),
            format!("closed {ino}"),
        ],
        "one close, the last writer's; a read-only close is not reported"
    );
}

/// Write-through: `changed` after every operation that changes something,
/// none after reads, and with no lock held (the hook walks the whole tree
/// from inside it, which would deadlock otherwise).
#[test]
fn write_through_hears_of_every_change_with_no_lock_held() {
    struct Seen {
        calls: Mutex<Vec<u64>>,
    }
    impl SyncHook for Seen {
        fn sync(&self, _: &Fs, _: u64, _: bool) -> fs_core::Result<()> {
            Ok(())
        }
        fn closed(&self, _: &Fs, _: u64) {}
        fn wants_changes(&self) -> bool {
            true
        }
        fn changed(&self, fs: &Fs) {
            // Every directory and file of the tree, read and stat'ed.
            let root = fs.root(DF::READ).unwrap();
            let mut dirs = vec![root];
            while let Some(d) = dirs.pop() {
                for e in d.read_directory().unwrap() {
                    let e = e.unwrap();
                    let st = d.stat_at(PF::empty(), &e.name).unwrap();
                    if st.kind == fs_core::DescriptorType::Directory {
                        dirs.push(
                            d.open_at(PF::empty(), &e.name, OF::DIRECTORY, DF::READ)
                                .unwrap(),
                        );
                    }
                }
            }
            self.calls.lock().unwrap().push(fs.change_seq());
        }
    }
    let (fs, root) = fs();
    let hook = Arc::new(Seen {
        calls: Mutex::new(Vec::new()),
    });
    fs.set_sync_hook(hook.clone());
    let calls = || hook.calls.lock().unwrap().len();
    let expect = |what: &str, n: usize, seq: u64| {
        assert_eq!(calls(), n, "{what}");
        if n > 0 {
            assert_eq!(
                *hook.calls.lock().unwrap().last().unwrap(),
                seq,
                "{what}: seen after the change"
            );
        }
    };
    let f = root
        .open_at(PF::empty(), "a", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    expect("create", 1, fs.change_seq());
    f.write(b"hello", 0).unwrap();
    expect("write", 2, fs.change_seq());
    let mut buf = [0u8; 5];
    f.read(&mut buf, 0).unwrap();
    root.stat_at(PF::empty(), "a").unwrap();
    root.open_at(PF::empty(), "a", OF::empty(), DF::READ)
        .unwrap();
    expect("reads and a plain open", 2, fs.change_seq());
    f.set_size(2).unwrap();
    expect("truncate", 3, fs.change_seq());
    root.create_directory_at("d").unwrap();
    expect("mkdir", 4, fs.change_seq());
    root.rename_at("a", &root, "d/a").unwrap();
    expect("rename", 5, fs.change_seq());
    root.symlink_at("d/a", "s").unwrap();
    expect("symlink", 6, fs.change_seq());
    root.link_at(PF::empty(), "d/a", &root, "h").unwrap();
    expect("link", 7, fs.change_seq());
    root.set_mode_at(PF::empty(), "h", 0o600, 0, 0).unwrap();
    expect("chmod", 8, fs.change_seq());
    root.set_times_at(PF::empty(), "h", NewTimestamp::Now, NewTimestamp::Now)
        .unwrap();
    expect("set-times", 9, fs.change_seq());
    root.unlink_file_at("h").unwrap();
    expect("unlink", 10, fs.change_seq());
    let mut w = f.append_via_stream().unwrap();
    w.write(b"!").unwrap();
    expect("stream append", 11, fs.change_seq());
    root.unlink_file_at("s").unwrap();
    root.unlink_file_at("d/a").unwrap();
    root.remove_directory_at("d").unwrap();
    expect("rmdir", 14, fs.change_seq());
}

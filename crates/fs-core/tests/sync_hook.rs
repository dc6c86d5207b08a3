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
    drop(f);
    assert_eq!(
        *hook.calls.lock().unwrap(),
        [
            format!("sync {ino} false entries=1"),
            format!("sync {ino} true entries=1"),
            format!("sync {ino} false entries=1"),
            format!("closed {ino}"),
        ],
        "a read-only close is not reported"
    );
}

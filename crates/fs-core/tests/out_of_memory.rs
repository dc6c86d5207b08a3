//! Memory running out under fs-core: an allocator that refuses to go past
//! a cap (armed for this test's thread only, so the harness is unaffected)
//! stands in for a runtime that caps a guest's memory. Creating files,
//! writing and linking must then answer `insufficient-memory`, never
//! abort, and deleting must still work and give the memory back. (Built
//! with `alloc-probe`, the probe wasm builds always have.)

use fs_core::{DescriptorFlags as DF, ErrorCode, Fs, OpenFlags as OF, PathFlags as PF};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Capped;

// Per thread, so tests running side by side do not count each other's
// allocations (fs-core frees on the thread that allocated, here).
thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static CAP: Cell<Option<isize>> = const { Cell::new(None) };
}

fn live() -> isize {
    LIVE.try_with(|l| l.get()).unwrap_or(0)
}

unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let size = layout.size() as isize;
        let cap = CAP.try_with(|c| c.get()).unwrap_or(None);
        if cap.is_some_and(|cap| live() + size > cap) {
            return std::ptr::null_mut();
        }
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let _ = LIVE.try_with(|l| l.set(l.get() + size));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|l| l.set(l.get() - layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

/// Runs `f` with allocations on this thread refused past `extra` bytes
/// more than are live now.
fn capped<T>(extra: usize, f: impl FnOnce() -> T) -> T {
    CAP.with(|c| c.set(Some(live() + extra as isize)));
    let out = f();
    CAP.with(|c| c.set(None));
    out
}

/// Until it fails, each way of growing the tree: how many succeeded, and
/// the error that stopped it.
fn until_full(mut grow: impl FnMut(usize) -> Result<(), ErrorCode>) -> (usize, ErrorCode) {
    let mut n = 0;
    loop {
        match grow(n) {
            Ok(()) => n += 1,
            Err(e) => return (n, e),
        }
    }
}

#[test]
fn running_out_of_memory_is_an_error_and_deleting_gives_it_back() {
    let fs = Fs::in_memory();
    let root = fs
        .root(DF::READ | DF::WRITE | DF::MUTATE_DIRECTORY)
        .unwrap();
    root.create_directory_at("d").unwrap();
    let create = |i: usize| {
        root.open_at(PF::empty(), &format!("d/{i}"), OF::CREATE, DF::READ)
            .map(drop)
    };
    let (counts, errors, after) = capped(8 << 20, || {
        let (files, e1) = until_full(create);
        // Full: every other way of growing stops too (near the edge one
        // or two more may fit, as what failed is given back)...
        let (dirs, e2) = until_full(|i| root.create_directory_at(&format!("dir{i}")));
        let (links, e3) =
            until_full(|i| root.link_at(PF::empty(), "d/0", &root, &format!("link{i}")));
        let (syms, e4) = until_full(|i| root.symlink_at("d/0", &format!("sym{i}")));
        // ...but a file can still be opened and read, a directory listed,
        // and everything removed.
        let read = root
            .open_at(PF::empty(), "d/0", OF::empty(), DF::READ | DF::WRITE)
            .map(|f| f.stat().size);
        let listed = root
            .open_at(PF::empty(), "d", OF::DIRECTORY, DF::READ)
            .and_then(|d| d.read_directory())
            .map(|s| s.count());
        let mut removed = Ok(());
        for i in 0..files {
            removed = removed.and(root.unlink_file_at(&format!("d/{i}")));
        }
        for i in 0..dirs {
            removed = removed.and(root.remove_directory_at(&format!("dir{i}")));
        }
        for i in 0..links {
            removed = removed.and(root.unlink_file_at(&format!("link{i}")));
        }
        for i in 0..syms {
            removed = removed.and(root.unlink_file_at(&format!("sym{i}")));
        }
        (
            (files, dirs + links + syms),
            [e1, e2, e3, e4],
            (read, listed, removed),
        )
    });
    let (files, others) = counts;
    assert!(files > 1000, "{files} files in 8 MiB");
    assert!(
        others < 10,
        "{others} more things after the files filled memory"
    );
    assert_eq!(errors, [ErrorCode::InsufficientMemory; 4]);
    assert_eq!(after, (Ok(0), Ok(files), Ok(())));
    // The same cap again: the memory came back, so as many fit.
    let (again, e) = capped(8 << 20, || until_full(create));
    assert_eq!(e, ErrorCode::InsufficientMemory);
    assert!(
        again + again / 10 >= files,
        "{again} after deleting, {files} before"
    );
}

#[test]
fn a_write_past_the_memory_left_is_an_error_and_keeps_what_was_there() {
    let fs = Fs::in_memory();
    let root = fs
        .root(DF::READ | DF::WRITE | DF::MUTATE_DIRECTORY)
        .unwrap();
    let f = root
        .open_at(PF::empty(), "f", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    f.write(b"kept", 0).unwrap();
    let chunk = vec![7u8; 1 << 20];
    let (written, error) = capped(16 << 20, || {
        let mut at = 4u64;
        loop {
            match f.write(&chunk, at) {
                Ok(n) => at += n as u64,
                Err(e) => return (at, e),
            }
        }
    });
    assert!(written > 8 << 20, "{written} bytes in 16 MiB");
    assert_eq!(error, ErrorCode::InsufficientMemory);
    let mut head = [0; 4];
    f.read(&mut head, 0).unwrap();
    assert_eq!(&head, b"kept");
    assert_eq!(f.stat().size, written);
    f.set_size(4).unwrap();
    let more = capped(16 << 20, || f.write(&chunk, 4));
    assert_eq!(more, Ok(chunk.len()), "truncating gave the memory back");
}

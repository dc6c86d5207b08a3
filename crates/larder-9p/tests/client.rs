//! The 9P client against the real server over loopback TCP, without wasm:
//! every call answers as fs-core answers locally, the close-to-open cache
//! serves repeated reads without a round trip and never outlives an open,
//! a lost server is `io` until it is back, and a silent one is `io` after
//! the timeout rather than a hang.

use fs_core::{
    DescriptorFlags as DF, DescriptorOps, DescriptorType, DirEntries, ErrorCode, Fs, NewTimestamp,
    OpenFlags as OF, PathFlags as PF, Timestamp,
};
use larder_9p::client::{Client, Connect, Descriptor, Gone, Transport};
use larder_9p::server::{Config, Server};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A server on loopback in a runtime of its own, for as long as it lives.
struct Running {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn serve(fs: Fs, at: Option<SocketAddr>) -> Running {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let at = at.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
    let listener = rt.block_on(tokio::net::TcpListener::bind(at)).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(Server::new(fs, Config::default()).serve(listener));
    Running { addr, _rt: rt }
}

/// std's blocking TCP, with the reply timeout as its read timeout; counts
/// the requests' bytes it sends.
struct StdTcp {
    sock: TcpStream,
    sent: Rc<Cell<usize>>,
}

impl Transport for StdTcp {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Gone> {
        self.sent.set(self.sent.get() + bytes.len());
        self.sock.write_all(bytes).map_err(|_| Gone)
    }
    fn read_into(&mut self, buf: &mut Vec<u8>, max: usize) -> Result<(), Gone> {
        let mut tmp = vec![0; max.min(1 << 20)];
        match self.sock.read(&mut tmp) {
            Ok(0) | Err(_) => Err(Gone),
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                Ok(())
            }
        }
    }
}

struct Target {
    addr: String,
    timeout: Duration,
    sent: Rc<Cell<usize>>,
}

impl Connect for Target {
    fn connect(&self) -> Result<Box<dyn Transport>, String> {
        let sock = TcpStream::connect(&self.addr).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(self.timeout)).unwrap();
        sock.set_nodelay(true).unwrap();
        Ok(Box::new(StdTcp {
            sock,
            sent: self.sent.clone(),
        }))
    }
    fn addr(&self) -> &str {
        &self.addr
    }
    fn secret(&self) -> &str {
        ""
    }
}

/// A client of `addr`, and a count of the bytes it has sent.
fn client(addr: SocketAddr, timeout: Duration) -> (Client, Rc<Cell<usize>>) {
    let sent = Rc::new(Cell::new(0));
    let target = Target {
        addr: addr.to_string(),
        timeout,
        sent: sent.clone(),
    };
    (Client::new(Box::new(target)), sent)
}

/// What a call answered, comparable across the two implementations.
type Answer = Result<String, ErrorCode>;

fn answer<T: std::fmt::Debug>(r: Result<T, ErrorCode>) -> Answer {
    r.map(|v| format!("{v:?}"))
}

/// One script of calls: run against fs-core locally and through the client
/// (fs-core behind the server), each call's answer must be the same.
fn script<D: DescriptorOps>(root: D) -> Vec<(&'static str, Answer)> {
    let mut out: Vec<(&str, Answer)> = Vec::new();
    let rw = DF::READ | DF::WRITE;
    let open = |path, o, f| root.open_at(PF::empty(), path, o, f);
    out.push(("mkdir", answer(root.create_directory_at("d"))));
    out.push(("mkdir again", answer(root.create_directory_at("d"))));
    out.push((
        "open missing",
        answer(open("nope", OF::empty(), DF::READ).map(|_| ())),
    ));
    let f = open("d/f", OF::CREATE | OF::EXCLUSIVE, rw).unwrap();
    out.push((
        "create exclusive again",
        answer(open("d/f", OF::CREATE | OF::EXCLUSIVE, rw).map(|_| ())),
    ));
    let big: Vec<u8> = (0..9u32 << 20).map(|i| (i % 241) as u8).collect();
    out.push(("write 9 MiB", answer(f.write(&big, 0))));
    out.push(("append", answer(f.append(b"tail"))));
    let mut back = Vec::new();
    out.push((
        "read across blocks",
        answer(f.read_append(&mut back, 600_000, 262_000)),
    ));
    out.push((
        "read bytes",
        Ok(format!("{}", back == big[262_000..862_000])),
    ));
    let mut end = Vec::new();
    out.push((
        "read past end",
        answer(f.read_append(&mut end, 10, 20 << 20)),
    ));
    out.push(("set-size", answer(f.set_size(100))));
    out.push(("size", answer(f.stat().map(|s| s.size))));
    let ro = open("d/f", OF::empty(), DF::READ).unwrap();
    out.push(("write read-only", answer(ro.write(b"x", 0))));
    let d = open("d", OF::DIRECTORY, DF::READ).unwrap();
    let mut buf = Vec::new();
    out.push(("read a directory", answer(d.read_append(&mut buf, 1, 0))));
    out.push(("same object", Ok(format!("{}", f.is_same_object(&ro)))));
    out.push(("symlink", answer(root.symlink_at("d/f", "ln"))));
    out.push(("readlink", answer(root.readlink_at("ln"))));
    out.push((
        "stat through link",
        answer(
            root.stat_at(PF::SYMLINK_FOLLOW, "ln")
                .map(|s| (s.kind, s.size)),
        ),
    ));
    out.push((
        "escape",
        answer(root.stat_at(PF::empty(), "../x").map(|_| ())),
    ));
    out.push((
        "link",
        answer(root.link_at(PF::empty(), "d/f", &root, "hard")),
    ));
    out.push((
        "nlink",
        answer(root.stat_at(PF::empty(), "hard").map(|s| s.nlink)),
    ));
    out.push(("rename", answer(root.rename_at("hard", &d, "moved"))));
    out.push(("rmdir non-empty", answer(root.remove_directory_at("d"))));
    out.push(("unlink a dir", answer(root.unlink_file_at("d"))));
    let t = NewTimestamp::Timestamp(Timestamp {
        seconds: 1_234_567_890,
        nanoseconds: 5,
    });
    out.push((
        "set-times",
        answer(root.set_times_at(PF::empty(), "d/f", t, t)),
    ));
    out.push((
        "mtime",
        answer(root.stat_at(PF::empty(), "d/f").map(|s| s.mtime)),
    ));
    out.push(("listing", list(&d)));
    out.push(("unlink", answer(d.unlink_file_at("moved"))));
    out.push(("listing after", list(&d)));
    out
}

fn list<D: DescriptorOps>(d: &D) -> Answer {
    let mut s = d.read_directory()?;
    let mut names = Vec::new();
    while let Some(e) = s.next_entry()? {
        names.push(format!("{} {:?}", e.name, e.kind));
    }
    names.sort();
    Ok(format!("{names:?}"))
}

#[test]
fn every_call_answers_as_fs_core_does_locally() {
    let local = Fs::in_memory();
    let ours = script(local.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap());
    let server = serve(Fs::in_memory(), None);
    let (c, _) = client(server.addr, Duration::from_secs(30));
    let theirs = script(c.root());
    for ((what, a), (_, b)) in ours.iter().zip(&theirs) {
        assert_eq!(a, b, "{what}: fs-core answered {a:?}, the client {b:?}");
    }
    assert_eq!(ours.len(), theirs.len());
}

/// Reads through an open file come from the cache (no request); an update
/// from another client is seen at the next open, never later.
#[test]
fn cached_reads_need_no_round_trip_and_the_next_open_sees_changes() {
    let server = serve(Fs::in_memory(), None);
    let (a, a_sent) = client(server.addr, Duration::from_secs(30));
    let (b, _) = client(server.addr, Duration::from_secs(30));
    let (ra, rb) = (a.root(), b.root());
    let w = rb
        .open_at(PF::empty(), "f", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    w.write(b"version one", 0).unwrap();

    let f = ra.open_at(PF::empty(), "f", OF::empty(), DF::READ).unwrap();
    let read = |d: &Descriptor| {
        let mut out = Vec::new();
        d.read_append(&mut out, 100, 0).unwrap();
        out
    };
    let before = a_sent.get();
    assert_eq!(read(&f), b"version one");
    assert_eq!(read(&f), b"version one");
    assert_eq!(a_sent.get(), before, "cached reads sent requests");

    w.write(b"VERSION TWO", 0).unwrap();
    let again = ra.open_at(PF::empty(), "f", OF::empty(), DF::READ).unwrap();
    assert_eq!(read(&again), b"VERSION TWO");
    // The old descriptor's reads come from the same, now refreshed, cache.
    assert_eq!(read(&f), b"VERSION TWO");
    // A client's own write replaces what it had cached.
    let own = ra
        .open_at(PF::empty(), "f", OF::empty(), DF::READ | DF::WRITE)
        .unwrap();
    own.write(b"version 3", 0).unwrap();
    assert_eq!(read(&f), b"version 3WO");
}

/// A lost server is `io`; once it is back, the next call from the root
/// connects again, and descriptors from before stay `io`.
#[test]
fn a_lost_server_is_io_until_it_is_back() {
    let first = serve(Fs::in_memory(), None);
    let addr = first.addr;
    let (c, _) = client(addr, Duration::from_secs(30));
    let root = c.root();
    let f = root
        .open_at(PF::empty(), "f", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    f.write(b"x", 0).unwrap();
    drop(first);

    assert_eq!(root.create_directory_at("d"), Err(ErrorCode::Io));
    assert_eq!(f.write(b"y", 0), Err(ErrorCode::Io));

    let second = serve(Fs::in_memory(), Some(addr));
    // The second server's files: "f" was the first one's.
    assert_eq!(
        root.stat_at(PF::empty(), "f").map(|_| ()),
        Err(ErrorCode::NoEntry)
    );
    root.create_directory_at("d").unwrap();
    assert_eq!(
        root.stat_at(PF::empty(), "d").unwrap().kind,
        DescriptorType::Directory
    );
    assert_eq!(f.write(b"y", 0), Err(ErrorCode::Io));
    drop(second);
}

/// A server that accepts but never answers costs the timeout, then `io`.
#[test]
fn a_silent_server_is_io_after_the_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let held = std::thread::spawn(move || silent.accept().map(|(s, _)| s));
    let (c, _) = client(addr, Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(c.root().stat().map(|_| ()), Err(ErrorCode::Io));
    let took = started.elapsed();
    // The wait was the timeout (not a refused connection), and no longer.
    assert!(took >= Duration::from_millis(300), "took {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    drop(held.join());
}

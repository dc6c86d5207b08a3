//! The server against hostile and careless clients: malformed frames close
//! only their own connection, limits hold, and well-behaved clients on
//! other connections never notice.

use larder_9p::server::{Config, Server};
use larder_9p::wire::{self, SetAttr, Walked, R, T};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const EOPNOTSUPP: u32 = 95;
const EILSEQ: u32 = 84;
const EMFILE: u32 = 24;
const EACCES: u32 = 13;

/// A server on loopback in a runtime of its own, for as long as it lives.
struct Running {
    addr: SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn start(config: Config) -> Running {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(fs_core::Fs::in_memory(), config);
    rt.spawn(server.serve(listener));
    Running { addr, _rt: rt }
}

/// A blocking client speaking one request at a time.
struct Client {
    sock: TcpStream,
    tag: u16,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Client { sock, tag: 0 }
    }

    /// Version and attach (fid 0); ready for work.
    fn session(addr: SocketAddr) -> Client {
        let mut c = Client::connect(addr);
        assert!(matches!(
            c.call(T::Version {
                msize: 65536,
                version: wire::VERSION.into()
            }),
            R::Version { msize: 65536, .. }
        ));
        c.attach(0, "");
        c
    }

    fn attach(&mut self, fid: u32, aname: &str) -> R {
        self.call(T::Attach {
            fid,
            afid: wire::NOFID,
            uname: String::new(),
            aname: aname.into(),
            n_uname: 0,
        })
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).unwrap();
    }

    fn reply(&mut self) -> Option<(u16, R)> {
        let mut head = [0u8; 4];
        self.sock.read_exact(&mut head).ok()?;
        let size = u32::from_le_bytes(head) as usize;
        let mut frame = head.to_vec();
        frame.resize(size, 0);
        self.sock.read_exact(&mut frame[4..]).ok()?;
        Some(wire::decode_r(&frame).expect("the server's replies decode"))
    }

    fn call(&mut self, t: T) -> R {
        self.tag = self.tag.wrapping_add(1);
        let mut frame = Vec::new();
        t.encode(self.tag, &mut frame);
        self.send_raw(&frame);
        let (tag, r) = self.reply().expect("a reply");
        assert_eq!(tag, self.tag);
        r
    }

    /// Whether the server closed this connection (reads end, not time out).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.sock.read(&mut b), Ok(0)) || self.sock.read(&mut b).is_err()
    }

    /// Creates `name` under the root (fid 0) through fid `fid`, writes
    /// `data`, clunks.
    fn put(&mut self, fid: u32, name: &str, data: &[u8]) {
        assert!(matches!(
            self.call(T::Walk {
                fid: 0,
                newfid: fid,
                names: Walked(vec![]),
            }),
            R::Walk { .. }
        ));
        let r = self.call(T::Lcreate {
            fid,
            name: name.into(),
            flags: wire::oflags::RDWR,
            mode: 0o640,
            gid: 0,
        });
        assert!(matches!(r, R::Lcreate { .. }), "{r:?}");
        let r = self.call(T::Write {
            fid,
            offset: 0,
            data: wire::Data(data.to_vec()),
        });
        assert_eq!(
            r,
            R::Write {
                count: data.len() as u32
            }
        );
        assert_eq!(self.call(T::Clunk { fid }), R::Clunk {});
    }

    fn get(&mut self, fid: u32, name: &str) -> Vec<u8> {
        let r = self.call(T::Walk {
            fid: 0,
            newfid: fid,
            names: Walked(vec![name.into()]),
        });
        assert!(
            matches!(r, R::Walk { ref qids } if qids.0.len() == 1),
            "{r:?}"
        );
        assert!(matches!(
            self.call(T::Lopen { fid, flags: 0 }),
            R::Lopen { .. }
        ));
        let R::Read { data } = self.call(T::Read {
            fid,
            offset: 0,
            count: 1 << 16,
        }) else {
            panic!("read {name}")
        };
        assert_eq!(self.call(T::Clunk { fid }), R::Clunk {});
        data.0
    }
}

fn frame(kind: u8, tag: u16, body: &[u8]) -> Vec<u8> {
    let mut f = ((wire::HEADER + body.len()) as u32).to_le_bytes().to_vec();
    f.push(kind);
    f.extend_from_slice(&tag.to_le_bytes());
    f.extend_from_slice(body);
    f
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let s = start(Config::default());
    let mut good = Client::session(s.addr);
    good.put(1, "kept", b"still here");

    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("size below the header", 3u32.to_le_bytes().to_vec()),
        ("size above msize", (1u32 << 31).to_le_bytes().to_vec()),
        (
            "truncated body",
            // Twalk claiming two names, carrying one.
            frame(110, 1, &[0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 0, b'a']),
        ),
        (
            "bytes after the last field",
            frame(120, 1, &[0, 0, 0, 0, 9, 9]),
        ),
        (
            "too many walk names",
            frame(110, 1, &[0, 0, 0, 0, 1, 0, 0, 0, 17, 0]),
        ),
        (
            "garbage",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ),
    ];
    for (what, bytes) in hostile {
        let mut bad = Client::session(s.addr);
        bad.send_raw(&bytes);
        assert!(bad.closed(), "{what}: the connection stays open");
        // The others go on as if nothing happened.
        assert_eq!(good.get(2, "kept"), b"still here", "after {what}");
        good.put(
            3,
            &format!("after-{}", what.replace(' ', "-")),
            what.as_bytes(),
        );
    }

    // A frame cut off mid-way, then silence: only that connection waits.
    let mut stalled = Client::session(s.addr);
    stalled.send_raw(&frame(120, 1, &[0, 0, 0, 0])[..6]);
    assert_eq!(good.get(2, "kept"), b"still here");
    drop(stalled);
    assert_eq!(good.get(2, "after-garbage"), b"garbage");
}

#[test]
fn answerable_oddities_get_errors_and_the_connection_stays() {
    let s = start(Config::default());
    let mut c = Client::session(s.addr);
    // A 9P2000.u message this server does not speak.
    c.send_raw(&frame(124, 7, &[0, 0, 0, 0]));
    assert_eq!(c.reply(), Some((7, R::Lerror { ecode: EOPNOTSUPP })));
    // A name that is not UTF-8.
    c.send_raw(&frame(
        110,
        8,
        &[0, 0, 0, 0, 5, 0, 0, 0, 1, 0, 2, 0, 0xff, 0xfe],
    ));
    assert_eq!(c.reply(), Some((8, R::Lerror { ecode: EILSEQ })));
    // Unknown fids.
    assert!(matches!(
        c.call(T::Clunk { fid: 99 }),
        R::Lerror { ecode: 9 }
    ));
    c.put(1, "fine", b"ok");
    assert_eq!(c.get(2, "fine"), b"ok");
}

#[test]
fn per_connection_limits_hold() {
    let s = start(Config {
        max_fids: 16,
        max_msize: 65536,
        ..Config::default()
    });
    let mut c = Client::connect(s.addr);
    // msize is capped at the server's.
    assert_eq!(
        c.call(T::Version {
            msize: 1 << 30,
            version: wire::VERSION.into()
        }),
        R::Version {
            msize: 65536,
            version: wire::VERSION.into()
        }
    );
    c.attach(0, "");
    for fid in 1..16 {
        assert!(matches!(
            c.call(T::Walk {
                fid: 0,
                newfid: fid,
                names: Walked(vec![])
            }),
            R::Walk { .. }
        ));
    }
    assert_eq!(
        c.call(T::Walk {
            fid: 0,
            newfid: 16,
            names: Walked(vec![])
        }),
        R::Lerror { ecode: EMFILE }
    );
    // Another connection has its own allowance.
    let mut other = Client::session(s.addr);
    other.put(1, "x", b"y");
    // Reads are cut to what fits the negotiated msize.
    other.put(2, "big", &vec![7u8; 60000]);
    other.call(T::Walk {
        fid: 0,
        newfid: 4,
        names: Walked(vec!["big".into()]),
    });
    other.call(T::Lopen {
        fid: 4,
        flags: wire::oflags::RDWR,
    });
    let r = other.call(T::Write {
        fid: 4,
        offset: 60000,
        data: wire::Data(vec![8u8; 60000]),
    });
    assert_eq!(r, R::Write { count: 60000 });
    let r = c.call(T::Walk {
        fid: 0,
        newfid: 16,
        names: Walked(vec![]),
    });
    assert!(matches!(r, R::Lerror { .. }), "still at the limit: {r:?}");
    assert_eq!(c.call(T::Clunk { fid: 15 }), R::Clunk {});
    assert!(matches!(
        c.call(T::Walk {
            fid: 0,
            newfid: 15,
            names: Walked(vec!["big".into()])
        }),
        R::Walk { .. }
    ));
    assert!(matches!(
        c.call(T::Lopen { fid: 15, flags: 0 }),
        R::Lopen { .. }
    ));
    let R::Read { data } = c.call(T::Read {
        fid: 15,
        offset: 0,
        count: 1 << 20,
    }) else {
        panic!()
    };
    assert_eq!(data.0.len(), 65536 - wire::IO_HEADER as usize);
    // A frame over the negotiated msize is malformed: closed.
    let mut f = Vec::new();
    T::Write {
        fid: 15,
        offset: 0,
        data: wire::Data(vec![0; 70000]),
    }
    .encode(1, &mut f);
    c.send_raw(&f);
    assert!(c.closed());
    assert_eq!(other.get(3, "x"), b"y");
}

#[test]
fn a_secret_guards_attach() {
    let s = start(Config {
        secret: Some("open sesame".into()),
        ..Config::default()
    });
    let mut c = Client::connect(s.addr);
    c.call(T::Version {
        msize: 65536,
        version: wire::VERSION.into(),
    });
    assert_eq!(c.attach(0, ""), R::Lerror { ecode: EACCES });
    assert_eq!(c.attach(0, "open sesam"), R::Lerror { ecode: EACCES });
    assert_eq!(c.attach(0, "open sesame!"), R::Lerror { ecode: EACCES });
    assert!(matches!(c.attach(0, "open sesame"), R::Attach { .. }));
}

#[test]
fn setattr_and_readdir_behave_as_linux_clients_expect() {
    let s = start(Config::default());
    let mut c = Client::session(s.addr);
    c.put(1, "f", b"hello world");
    // truncate(2) through a walked, unopened fid.
    c.call(T::Walk {
        fid: 0,
        newfid: 2,
        names: Walked(vec!["f".into()]),
    });
    let r = c.call(T::Setattr {
        fid: 2,
        attr: SetAttr {
            valid: wire::setattr::SIZE | wire::setattr::MODE,
            size: 5,
            mode: 0o600,
            ..Default::default()
        },
    });
    assert_eq!(r, R::Setattr {});
    let R::Getattr { attr } = c.call(T::Getattr {
        fid: 2,
        mask: wire::GETATTR_BASIC,
    }) else {
        panic!()
    };
    assert_eq!((attr.size, attr.mode), (5, 0o100600));
    assert_eq!(c.get(3, "f"), b"hello");
    // `..` at the attach point stays there.
    let r = c.call(T::Walk {
        fid: 0,
        newfid: 4,
        names: Walked(vec!["..".into(), "f".into()]),
    });
    assert!(
        matches!(r, R::Walk { ref qids } if qids.0.len() == 2),
        "{r:?}"
    );
    // Readdir: `.`, `..`, then the entries, resumable at each offset.
    for i in 0..50 {
        c.put(10, &format!("n{i:02}"), b"");
    }
    c.call(T::Walk {
        fid: 0,
        newfid: 5,
        names: Walked(vec![]),
    });
    c.call(T::Lopen { fid: 5, flags: 0 });
    let mut names = Vec::new();
    let mut offset = 0;
    loop {
        let R::Readdir { data } = c.call(T::Readdir {
            fid: 5,
            offset,
            count: 200,
        }) else {
            panic!()
        };
        let entries = wire::DirEntry::parse_all(&data.0).unwrap();
        if entries.is_empty() {
            break;
        }
        offset = entries.last().unwrap().offset;
        names.extend(entries.into_iter().map(|e| e.name));
    }
    let mut want = vec![".".to_string(), "..".into(), "f".into()];
    want.extend((0..50).map(|i| format!("n{i:02}")));
    names[2..].sort();
    want[2..].sort();
    assert_eq!(names, want);
}

/// A file the extension opened is that file to standard messages too:
/// chmod, truncate and stat act on it (not on the directory it was opened
/// from), and nothing walks below it.
#[test]
fn extension_opened_files_are_themselves_to_standard_messages() {
    let s = start(Config::default());
    let mut c = Client::session(s.addr);
    c.call(T::MkdirAt {
        dfid: 0,
        path: "d".into(),
    });
    let r = c.call(T::OpenAt {
        dfid: 0,
        newfid: 1,
        path_flags: 0,
        path: "d/f".into(),
        open_flags: 1, // create
        flags: 3,      // read | write
    });
    assert!(matches!(r, R::OpenAt { .. }), "{r:?}");
    c.call(T::Write {
        fid: 1,
        offset: 0,
        data: wire::Data(b"0123456789".to_vec()),
    });
    let r = c.call(T::Setattr {
        fid: 1,
        attr: SetAttr {
            valid: wire::setattr::MODE | wire::setattr::SIZE,
            mode: 0o600,
            size: 4,
            ..Default::default()
        },
    });
    assert_eq!(r, R::Setattr {});
    let mode_of = |c: &mut Client, path: &str| {
        let R::StatAt { attr } = c.call(T::StatAt {
            dfid: 0,
            path_flags: 0,
            path: path.into(),
        }) else {
            panic!()
        };
        (attr.mode, attr.size)
    };
    assert_eq!(mode_of(&mut c, "d/f"), (0o100600, 4));
    assert_eq!(
        mode_of(&mut c, "d").0,
        0o040755,
        "the directory kept its mode"
    );
    assert_eq!(
        c.call(T::Walk {
            fid: 1,
            newfid: 2,
            names: Walked(vec!["x".into()])
        }),
        R::Lerror { ecode: 20 }
    );
}

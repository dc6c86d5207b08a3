//! The codec: canonical round trips for every message shape, and the
//! decoder's contract on arbitrary bytes (the fuzz target's, here with
//! proptest, plus the fuzz corpus's regressions).

use larder_9p::wire::{self, Data, NewTime, SetAttr, Walked, R, T};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._ é-]{0,40}"
}

fn request() -> impl Strategy<Value = T> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u32>(),
            prop::collection::vec(name(), 0..=16)
        )
            .prop_map(|(fid, newfid, n)| T::Walk {
                fid,
                newfid,
                names: Walked(n)
            }),
        (
            any::<u32>(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(fid, offset, d)| T::Write {
                fid,
                offset,
                data: Data(d)
            }),
        (
            any::<u32>(),
            name(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>()
        )
            .prop_map(|(fid, name, flags, mode, gid)| T::Lcreate {
                fid,
                name,
                flags,
                mode,
                gid
            }),
        (any::<u32>(), any::<[u64; 5]>(), any::<[u32; 4]>()).prop_map(|(fid, w, n)| T::Setattr {
            fid,
            attr: SetAttr {
                valid: n[0],
                mode: n[1],
                uid: n[2],
                gid: n[3],
                size: w[0],
                atime_sec: w[1],
                atime_nsec: w[2],
                mtime_sec: w[3],
                mtime_nsec: w[4],
            },
        }),
        (any::<u32>(), any::<u32>(), any::<[u8; 3]>(), name()).prop_map(
            |(dfid, newfid, f, path)| {
                T::OpenAt {
                    dfid,
                    newfid,
                    path_flags: f[0],
                    path,
                    open_flags: f[1],
                    flags: f[2],
                }
            }
        ),
        (any::<u32>(), any::<u8>(), name(), any::<(u8, u64, u32)>()).prop_map(
            |(dfid, path_flags, path, (how, sec, nsec))| T::SetTimesAt {
                dfid,
                path_flags,
                path,
                atime: NewTime { how, sec, nsec },
                mtime: NewTime::default(),
            }
        ),
        (any::<u32>(), any::<u32>()).prop_map(|(fid, d)| T::Fsync {
            fid,
            datasync: wire::OptU32(d)
        }),
        (any::<u32>(), name()).prop_map(|(msize, version)| T::Version { msize, version }),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(t in request(), tag in any::<u16>()) {
        let mut frame = Vec::new();
        t.encode(tag, &mut frame);
        prop_assert_eq!(wire::decode_t(&frame), Ok((tag, t)));
        wire::check_decoder(&frame);
    }

    #[test]
    fn replies_round_trip(qids in prop::collection::vec(any::<(u8, u32, u64)>(), 0..=16), tag in any::<u16>(), data in prop::collection::vec(any::<u8>(), 0..200)) {
        let qids: Vec<wire::Qid> = qids.into_iter().map(|(kind, version, path)| wire::Qid { kind, version, path }).collect();
        for r in [R::Walk { qids: wire::Walked(qids.clone()) }, R::Read { data: Data(data.clone()) }, R::Clunk {}, R::Lerror { ecode: 2 }] {
            let mut frame = Vec::new();
            r.encode(tag, &mut frame);
            prop_assert_eq!(wire::decode_r(&frame), Ok((tag, r)));
        }
    }

    /// Arbitrary bytes behind a well-formed header of a known type: every
    /// decoding path runs on garbage.
    #[test]
    fn garbage_bodies_never_panic(kind in prop::sample::select(vec![8u8, 12, 14, 16, 18, 20, 22, 24, 26, 30, 32, 40, 50, 52, 54, 70, 72, 74, 76, 100, 102, 104, 108, 110, 116, 118, 120, 122, 200, 202, 210, 212, 218, 224, 7, 25, 41, 101, 111, 117, 201]), body in prop::collection::vec(any::<u8>(), 0..120)) {
        let mut frame = ((wire::HEADER + body.len()) as u32).to_le_bytes().to_vec();
        frame.push(kind);
        frame.extend_from_slice(&[1, 0]);
        frame.extend_from_slice(&body);
        wire::check_decoder(&frame);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        wire::check_decoder(&bytes);
    }
}

/// An older client's `Tfsync` (no `datasync`) is accepted as a full sync.
#[test]
fn short_fsync_is_accepted() {
    let frame = [11, 0, 0, 0, 50, 3, 0, 9, 0, 0, 0];
    assert_eq!(
        wire::decode_t(&frame),
        Ok((
            3,
            T::Fsync {
                fid: 9,
                datasync: wire::OptU32(0)
            }
        ))
    );
}

/// Every input the fuzzer kept (crates/larder-9p/fuzz/regressions).
#[test]
fn fuzz_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/decode");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        wire::check_decoder(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "no regressions in {}", dir.display());
}

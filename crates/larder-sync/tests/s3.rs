//! The mirror on a real S3-compatible server (moto, on loopback): every
//! kind of change round-trips, large files go up in parts, other S3
//! clients read what Larder wrote (with s3fs metadata) and Larder restores
//! what they wrote, another writer is never overwritten, and a server that
//! stops answering delays syncs without losing anything.
#![cfg(feature = "s3")]

mod common;

use common::counting::Counting;
use common::ignoring::Ignoring;
use common::model::*;
use common::moto::Moto;
use fs_core::{DescriptorFlags as DF, Fs, OpenFlags as OF, PathFlags as PF};
use larder_sync::s3::{S3Config, S3Store};
use larder_sync::{Faulty, Mirror, MirrorHook, ObjectStore, Retry, SyncMode};
use proptest::test_runner::{Config, TestRunner};
use std::sync::Arc;
use std::time::Duration;

fn store(m: &Moto, prefix: &str, timeout: Option<Duration>) -> Arc<dyn ObjectStore> {
    Arc::new(s3(m, prefix, timeout))
}

fn s3(m: &Moto, prefix: &str, timeout: Option<Duration>) -> S3Store {
    S3Store::open(&S3Config {
        bucket: m.bucket.clone(),
        prefix: prefix.to_string(),
        endpoint: Some(m.endpoint.clone()),
        region: Some("us-east-1".into()),
        path_style: true,
        attempt_timeout: timeout,
    })
    .unwrap()
}

/// The outage the in-memory and local-directory stores go through (in
/// mirror.rs), on S3: nothing queued is lost.
#[test]
fn faults_on_s3_delay_never_lose() {
    let m = Moto::start();
    common::faults::faults_delay_never_lose_in(Faulty::new(s3(&m, "", None)));
}

fn write(fs: &Fs, path: &str, data: &[u8]) {
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), path, OF::CREATE | OF::TRUNCATE, DF::WRITE)
        .unwrap();
    let mut n = 0;
    while n < data.len() {
        n += f.write(&data[n..], n as u64).unwrap();
    }
}

#[test]
fn every_kind_of_change_round_trips_through_s3() {
    let m = Moto::start();
    let s = store(&m, "", None);
    let mut runner = TestRunner::new(Config {
        cases: 12,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&proptest::collection::vec(op(), 0..30), |ops| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let prefix = format!("case{n}/");
            let fs = Fs::in_memory();
            let mirror = Mirror::new(s.clone(), &prefix).with_retry(fast_retry());
            for op in &ops {
                apply(&fs, &mirror, op);
            }
            mirror.sync(&fs).unwrap();
            assert_eq!(tree(&restored(s.clone(), &prefix)), tree(&fs));
            Ok(())
        })
        .unwrap();
}

#[test]
fn other_clients_read_and_write_the_same_tree() {
    let m = Moto::start();
    let s = store(&m, "app/", None);
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    root.create_directory_at("etc").unwrap();
    write(&fs, "etc/app.toml", b"name = 1\n");
    root.set_mode_at(PF::empty(), "etc/app.toml", 0o600, 1000, 1000)
        .unwrap();
    root.symlink_at("etc/app.toml", "current").unwrap();
    // Above the multipart threshold: it goes up in parts.
    let big: Vec<u8> = (0..40u32 << 20).map(|i| (i % 251) as u8).collect();
    write(&fs, "big.bin", &big);
    Mirror::new(s.clone(), "app/").sync(&fs).unwrap();

    let seen = m.boto3(
        "h = S3.head_object(Bucket=B, Key='app/etc/app.toml')\n\
         print(S3.get_object(Bucket=B, Key='app/etc/app.toml')['Body'].read().decode(), end='')\n\
         print(h['Metadata']['mode'], h['Metadata']['uid'])\n\
         print(S3.get_object(Bucket=B, Key='app/current')['Body'].read().decode())\n\
         print(S3.head_object(Bucket=B, Key='app/current')['Metadata']['mode'])\n\
         print(S3.head_object(Bucket=B, Key='app/etc/')['Metadata']['mode'])\n\
         print(S3.head_object(Bucket=B, Key='app/big.bin')['ContentLength'])\n\
         S3.put_object(Bucket=B, Key='app/inbox/from-boto.txt', Body=b'hello')\n",
    );
    assert_eq!(
        seen,
        format!(
            "name = 1\n{} 1000\netc/app.toml\n{}\n{}\n{}\n",
            0o100600,
            0o120777,
            0o040755,
            40 << 20
        )
    );
    // A restore reports its progress over every object, ending complete.
    let calls = std::sync::Mutex::new(Vec::new());
    let back = Fs::in_memory();
    Mirror::restore_reporting(s.clone(), "app/", &back, &|done, total| {
        calls.lock().unwrap().push((done, total))
    })
    .unwrap();
    let calls = calls.into_inner().unwrap();
    // Every object but Larder's own (the index, the version object).
    let n = s
        .list("app/")
        .unwrap()
        .iter()
        .filter(|o| !o.key.starts_with("app/.larder/"))
        .count() as u64;
    assert_eq!(calls.last(), Some(&(n, n)), "{calls:?}");
    assert!(calls
        .windows(2)
        .all(|w| w[0].0 <= w[1].0 && w[0].0 <= w[0].1));
    assert_eq!(
        tree(&back)
            .into_iter()
            .filter(|(k, _)| !k.starts_with("inbox"))
            .collect::<std::collections::BTreeMap<_, _>>(),
        tree(&fs)
    );
    let t = tree(&back);
    assert!(matches!(&t["inbox/from-boto.txt"], Entry::File(d, 0o644, _) if d == b"hello"));
}

/// Two hosts on one prefix change the same file, by every write the
/// mirror makes: a small put, a 20 MiB multipart upload (whose
/// CompleteMultipartUpload moto accepts with any If-Match), and a rename
/// onto it (a CopyObject). The second to sync finds the first's version and
/// keeps its own beside it, on moto as it is and behind a wrapper that
/// drops every condition.
#[test]
fn another_writer_on_s3_is_kept_beside_ours() {
    let m = Moto::start();
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    for ignoring in [false, true] {
        for (case, theirs) in [
            ("small", &b"from host two"[..]),
            ("20 MiB", &big[..]),
            ("rename", &b"renamed over it"[..]),
        ] {
            let prefix = format!("{case}-{ignoring}/").replace(' ', "");
            let mut s = store(&m, &prefix, None);
            if ignoring {
                s = Arc::new(Ignoring(s));
            }
            let (fs1, fs2) = (Fs::in_memory(), Fs::in_memory());
            write(&fs1, "shared.txt", b"base");
            write(&fs1, "other.txt", theirs);
            let m1 = Mirror::new(s.clone(), &prefix);
            m1.sync(&fs1).unwrap();
            let m2 = Mirror::restore(s.clone(), &prefix, &fs2).unwrap();
            write(&fs1, "shared.txt", b"from host one");
            m1.sync(&fs1).unwrap();
            if case == "rename" {
                let root = fs2.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
                root.rename_at("other.txt", &root, "shared.txt").unwrap();
            } else {
                write(&fs2, "shared.txt", theirs);
            }
            let r = m2.sync(&fs2).unwrap();
            let what = format!("{case}, conditions dropped: {ignoring}");
            assert_eq!(r.conflicts.len(), 1, "{what}: {r:?}");
            let t = tree(&restored(s, &prefix));
            assert!(
                matches!(&t["shared.txt"], Entry::File(d, _, _) if d == b"from host one"),
                "{what}: host one's version was replaced"
            );
            let kept: Vec<_> = t
                .iter()
                .filter(|(k, _)| k.starts_with("shared.txt.larder-conflict-"))
                .collect();
            assert!(
                matches!(kept[..], [(_, Entry::File(d, _, _))] if d == theirs),
                "{what}: host two's version is not kept beside it: {:?}",
                t.keys().collect::<Vec<_>>()
            );
        }
    }
}

/// The store's probe of conditional writes agrees with another client's:
/// boto3 tries each one (a condition that must fail) on the same server.
#[test]
fn the_conditions_probe_agrees_with_boto3() {
    let m = Moto::start();
    let larder = S3Store::open(&S3Config {
        bucket: m.bucket.clone(),
        prefix: "p/".into(),
        endpoint: Some(m.endpoint.clone()),
        region: Some("us-east-1".into()),
        path_style: true,
        attempt_timeout: None,
    })
    .unwrap()
    .conditions();
    let boto = m.boto3(
        r#"
import botocore
S3.put_object(Bucket=B, Key="k", Body=b"x")
S3.put_object(Bucket=B, Key="src", Body=b"s")
def mp(**kw):
    u = S3.create_multipart_upload(Bucket=B, Key="k")["UploadId"]
    e = S3.upload_part(Bucket=B, Key="k", UploadId=u, PartNumber=1, Body=b"z")["ETag"]
    S3.complete_multipart_upload(Bucket=B, Key="k", UploadId=u,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e}]}, **kw)
src = {"Bucket": B, "Key": "src"}
for f in [
    lambda: S3.put_object(Bucket=B, Key="k", Body=b"y", IfNoneMatch="*"),
    lambda: S3.put_object(Bucket=B, Key="k", Body=b"y", IfMatch='"no"'),
    lambda: mp(IfNoneMatch="*"),
    lambda: mp(IfMatch='"no"'),
    lambda: S3.copy_object(Bucket=B, Key="k", CopySource=src, IfNoneMatch="*"),
    lambda: S3.copy_object(Bucket=B, Key="k", CopySource=src, IfMatch='"no"'),
]:
    try:
        f()
        print("ignored")
    except botocore.exceptions.ClientError as e:
        print("honoured" if e.response["ResponseMetadata"]["HTTPStatusCode"] == 412 else "refused")
"#,
    );
    let boto: Vec<bool> = boto.lines().map(|l| l == "honoured").collect();
    let ours = vec![
        larder.put_if_none_match,
        larder.put_if_match,
        larder.complete_if_none_match,
        larder.complete_if_match,
        larder.copy_if_none_match,
        larder.copy_if_match,
    ];
    assert_eq!(ours, boto, "{larder:?}");
    let left = m.boto3("print(S3.list_objects_v2(Bucket=B, Prefix='p/').get('KeyCount', 0))");
    assert_eq!(left.trim(), "0", "the probe's objects are deleted");
}

/// The server stops answering (SIGSTOP) in the middle of a run: fsync
/// fails after retries, the filesystem carries on, nothing queued is
/// dropped, and once the server answers again the next sync sends it all.
#[test]
fn a_stopped_server_delays_never_loses() {
    let m = Moto::start();
    let s = store(&m, "", Some(Duration::from_millis(700)));
    let fs = Fs::in_memory();
    let mirror = Arc::new(Mirror::new(s.clone(), "").with_retry(Retry {
        attempts: 3,
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
    }));
    fs.set_sync_hook(Arc::new(MirrorHook::new(mirror.clone(), SyncMode::OnFsync)));
    write(&fs, "before", b"synced while the server was up");
    mirror.sync(&fs).unwrap();

    let pid = m.pid().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    write(&fs, "during", b"written while the server was stopped");
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "during", OF::empty(), DF::WRITE)
        .unwrap();
    let fsync = f.sync();
    let status = mirror.status();
    assert!(std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(
        fsync,
        Err(fs_core::ErrorCode::Io),
        "fsync reports what is not durable"
    );
    assert!(!status.clean && status.last_error.is_some(), "{status:?}");

    write(&fs, "after", b"written once it was back");
    mirror.sync(&fs).unwrap();
    assert_eq!(tree(&restored(s, "")), tree(&fs));
}

/// Rewriting a large object from its own unchanged pieces (UploadPartCopy)
/// plus the changed one gives exactly the file.
#[test]
fn a_small_change_to_a_large_s3_object_round_trips() {
    let m = Moto::start();
    let s = store(&m, "", None);
    let fs = Fs::in_memory();
    let big: Vec<u8> = (0..40u32 << 20).map(|i| (i % 241) as u8).collect();
    write(&fs, "big.bin", &big);
    let mirror = Mirror::new(s.clone(), "");
    mirror.sync(&fs).unwrap();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "big.bin", OF::empty(), DF::WRITE)
        .unwrap();
    f.write(&[1; 4096], 25 << 20).unwrap();
    let r = mirror.sync(&fs).unwrap();
    assert!(r.bytes_uploaded <= 8 << 20, "{r:?}");
    assert_eq!(tree(&restored(s, "")), tree(&fs));
}

/// A 200 MiB object another client uploaded is restored without
/// downloading it: reads fetch the 1 MiB chunks they reach, a 4 KiB
/// overwrite syncs as one 8 MiB piece (the rest copied server-side), and
/// the other client then downloads exactly the file Larder sees.
#[test]
fn lazy_restore_of_a_200_mib_object_reads_only_what_is_touched() {
    const MIB: u64 = 1 << 20;
    let m = Moto::start();
    let size = 200 * MIB;
    let mut want: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(0x9e37_79b9) >> 13) as u8)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let up = dir.path().join("up.bin");
    std::fs::write(&up, &want).unwrap();
    m.boto3(&format!(
        "S3.upload_file('{}', B, 'lazy/big.bin')\n",
        up.display()
    ));

    let s = Counting::new(store(&m, "lazy/", None));
    let fs = Fs::in_memory();
    let mirror = Mirror::restore(s.clone(), "lazy/", &fs).unwrap();
    assert_eq!(s.fetched(), 0, "the restore downloaded contents");
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "big.bin", OF::empty(), DF::READ | DF::WRITE)
        .unwrap();
    assert_eq!(f.stat().size, size);
    for at in [0, 123 * MIB + 17, size - 4096] {
        let mut buf = vec![0; 4096];
        let mut n = 0;
        while n < buf.len() {
            n += f.read(&mut buf[n..], at + n as u64).unwrap();
        }
        assert!(buf == want[at as usize..][..4096], "bytes at {at}");
    }
    assert_eq!(s.fetched(), 3 * MIB, "three reads, three chunks");

    f.write(&[0x5a; 4096], 100 * MIB).unwrap();
    want[(100 * MIB) as usize..][..4096].fill(0x5a);
    let r = mirror.sync(&fs).unwrap();
    assert_eq!(r.bytes_uploaded, 8 * MIB, "{r:?}");
    assert!(s.fetched() <= 11 * MIB, "fetched {} bytes", s.fetched());

    let down = dir.path().join("down.bin");
    m.boto3(&format!(
        "S3.download_file(B, 'lazy/big.bin', '{}')\n",
        down.display()
    ));
    assert!(
        std::fs::read(&down).unwrap() == want,
        "the object differs from the file"
    );
    // The untouched bytes now come from the object the sync wrote.
    let mut buf = vec![0; 64];
    f.read(&mut buf, 50 * MIB).unwrap();
    assert!(buf == want[(50 * MIB) as usize..][..64]);
}

/// A 100 MiB sparse file goes to S3 from the file itself, a part at a
/// time (the mirror never hands the store a whole body), and another
/// client reads exactly the file: data where it was written, zeros in the
/// holes. Changing one run then sends one part.
#[test]
fn a_large_sparse_file_goes_up_in_parts_from_the_file() {
    let m = Moto::start();
    let s = store(&m, "", None);
    let watched = Counting::new(s.clone());
    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    let f = root
        .open_at(PF::empty(), "sparse", OF::CREATE, DF::READ | DF::WRITE)
        .unwrap();
    f.write(b"first", 0).unwrap();
    f.write(b"middle", 50 << 20).unwrap();
    f.write(b"last", (100 << 20) - 4).unwrap();
    let mirror = Mirror::new(watched.clone(), "");
    mirror.sync(&fs).unwrap();
    assert!(
        watched.largest_put() <= 16 << 20,
        "a body of {} bytes was built",
        watched.largest_put()
    );
    let check = |first: &str| {
        let got = m.boto3(
            "b = S3.get_object(Bucket=B, Key='sparse')['Body'].read()\n\
             nz = [i for i in range(0, len(b), 4096) if any(b[i:i+4096])]\n\
             print(len(b), nz, b[0:5], b[50<<20:(50<<20)+6], b[-4:])",
        );
        assert_eq!(
            got.trim(),
            format!("104857600 [0, 52428800, 104853504] {first} b'middle' b'last'")
        );
    };
    check("b'first'");
    f.write(b"FIRST", 0).unwrap();
    let r = mirror.sync(&fs).unwrap();
    assert!(r.bytes_uploaded <= 8 << 20, "{r:?}");
    check("b'FIRST'");
}

/// A restore from S3 with the index: a listing (a request per 1,000
/// keys) and the index, counted by the store, instead of a HEAD per
/// object; every mode, time and symlink target as synced. A change made
/// after the index to an object's metadata only (a chmod: the same bytes,
/// so the same ETag) is noticed by its listed time and asked about.
#[test]
fn an_index_restores_from_s3_in_a_few_requests() {
    let m = Moto::start();
    let s = Arc::new(s3(&m, "ix/", None));
    let fs = Fs::in_memory();
    let mirror = Mirror::new(s.clone(), "ix/");
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY).unwrap();
    root.create_directory_at("d").unwrap();
    const N: usize = 1001;
    for i in 0..N {
        write(&fs, &format!("d/f{i}"), i.to_string().as_bytes());
    }
    root.set_mode_at(PF::empty(), "d/f7", 0o600, 10, 20)
        .unwrap();
    root.symlink_at("d/f7", "link").unwrap();
    mirror.sync(&fs).unwrap();
    // The index, written a second after the objects (so it vouches for
    // them all: S3 lists whole seconds), by the session's last sync.
    std::thread::sleep(Duration::from_millis(1100));
    write(&fs, "last", b"the session's last write");
    mirror.settle(&fs).unwrap();
    let want = tree(&fs);

    let fresh = Arc::new(s3(&m, "ix/", None));
    let before = fresh.requests();
    let back = Fs::in_memory();
    Mirror::restore(fresh.clone(), "ix/", &back).unwrap();
    let used = fresh.requests() - before;
    // Two listing pages, the index, and a HEAD for `last` (written in the
    // index's second), or not even that.
    assert!(used <= N.div_ceil(1000) as u64 + 2, "{used} requests");
    assert_eq!(tree(&back), want);

    // The views of a store (`larder ls`, `export`) list through the same
    // index: every object with the metadata a HEAD gives, targets known.
    let before = fresh.requests();
    let (viewed, targets) = Mirror::new(fresh.clone(), "ix/")
        .objects(&|_, _| {})
        .unwrap();
    assert!(fresh.requests() - before <= N.div_ceil(1000) as u64 + 2);
    let headed: Vec<_> = s
        .list("ix/")
        .unwrap()
        .into_iter()
        .filter(|o| !o.key.starts_with("ix/.larder/"))
        .map(|o| (o.key, larder_sync::meta::decode(&o.meta)))
        .collect();
    let viewed: Vec<_> = viewed
        .into_iter()
        .map(|o| (o.key, larder_sync::meta::decode(&o.meta)))
        .collect();
    assert_eq!(viewed, headed);
    assert_eq!(targets["ix/link"], "d/f7");

    // A chmod after the index: the object is rewritten with the same
    // bytes (the same ETag) and only its listed time tells.
    std::thread::sleep(Duration::from_millis(1100));
    root.set_mode_at(PF::empty(), "d/f7", 0o640, 10, 20)
        .unwrap();
    mirror.sync(&fs).unwrap();
    let back = restored(s.clone(), "ix/");
    assert_eq!(tree(&back)["d/f7"], tree(&fs)["d/f7"]);
    assert_eq!(tree(&back), tree(&fs));
}

//! The local-directory store never reaches outside its root: random
//! sequences of store operations, with symlink objects pointing out of
//! the store (absolute and relative), `..`-like and absolute-looking keys
//! and a non-UTF-8 name planted by another tool, agree with a model of
//! the tree, and after every step nothing beside the store has changed.

use larder_sync::meta::{self, S_IFDIR, S_IFLNK, S_IFREG};
use larder_sync::{Cond, ErrorKind, LocalDir, ObjectStore};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
enum Node {
    File(Vec<u8>),
    Link(Vec<u8>),
    Dir,
}

#[derive(Clone, Debug)]
enum Op {
    PutFile(String, Vec<u8>),
    PutLink(String, usize),
    PutDir(String),
    Get(String, bool),
    Head(String, bool),
    Delete(String, bool),
    Copy(String, String),
    List,
}

/// Names a hostile store user would try, joined into keys.
fn key() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["a", "b", "esc", "secret", "..", ".", ""]);
    prop_oneof![
        // Trailing slashes trimmed: a `/` key is a directory's, and the ops
        // below add it where they mean one.
        6 => prop::collection::vec(name, 1..4)
            .prop_map(|v| v.join("/").trim_end_matches('/').to_string()),
        1 => prop::sample::select(vec![
            "/etc/passwd", "/a", "../outside/secret", "a/../../outside/secret",
            "esc/secret", "esc/sub/deep", "a/esc/secret",
        ]).prop_map(String::from),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (key(), prop::collection::vec(any::<u8>(), 0..16)).prop_map(|(k, b)| Op::PutFile(k, b)),
        3 => (key(), 0..TARGETS).prop_map(|(k, t)| Op::PutLink(k, t)),
        2 => key().prop_map(Op::PutDir),
        2 => (key(), any::<bool>()).prop_map(|(k, d)| Op::Get(k, d)),
        1 => (key(), any::<bool>()).prop_map(|(k, d)| Op::Head(k, d)),
        2 => (key(), any::<bool>()).prop_map(|(k, d)| Op::Delete(k, d)),
        1 => (key(), key()).prop_map(|(a, b)| Op::Copy(a, b)),
        1 => Just(Op::List),
    ]
}

const TARGETS: usize = 6;

/// Symlink targets pointing out of the store, at it, and inside it.
fn target(n: usize, outside: &Path) -> Vec<u8> {
    let abs = outside.as_os_str().as_bytes().to_vec();
    [
        abs,
        b"../outside".to_vec(),
        b"/".to_vec(),
        b".".to_vec(),
        b"a".to_vec(),
        b"../../..".to_vec(),
    ][n]
        .clone()
}

fn valid(key: &str) -> bool {
    let rel = key.strip_suffix('/').unwrap_or(key);
    !rel.is_empty()
        && !rel.starts_with('/')
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

#[derive(Default)]
struct Model(BTreeMap<String, Node>);

enum Walk {
    /// Every directory above exists.
    Ok,
    /// Some above are missing (a put makes them).
    Missing,
    /// A file or symlink stands above.
    Blocked,
}

impl Model {
    fn above(&self, path: &str) -> Walk {
        let mut p = String::new();
        let mut missing = false;
        let names: Vec<&str> = path.split('/').collect();
        for n in &names[..names.len() - 1] {
            if !p.is_empty() {
                p.push('/');
            }
            p.push_str(n);
            match self.0.get(&p) {
                Some(Node::Dir) => {}
                Some(_) => return Walk::Blocked,
                None => missing = true,
            }
        }
        if missing {
            Walk::Missing
        } else {
            Walk::Ok
        }
    }

    fn make_parents(&mut self, path: &str) {
        let names: Vec<&str> = path.split('/').collect();
        for i in 1..names.len() {
            self.0.entry(names[..i].join("/")).or_insert(Node::Dir);
        }
    }

    fn has_children(&self, path: &str) -> bool {
        let pre = format!("{path}/");
        self.0.keys().any(|k| k.starts_with(&pre))
    }

    /// What the store must hold at `path` for a key (`dir`: a `/` key).
    fn at(&self, path: &str, dir: bool) -> Option<&Node> {
        if !matches!(self.above(path), Walk::Ok) {
            return None;
        }
        self.0.get(path).filter(|n| (**n == Node::Dir) == dir)
    }

    /// A put of a file or symlink object; whether it succeeds.
    fn put(&mut self, path: &str, node: Node) -> bool {
        if matches!(self.above(path), Walk::Blocked) {
            return false;
        }
        if self.0.get(path) == Some(&Node::Dir) && self.has_children(path) {
            return false;
        }
        self.make_parents(path);
        self.0.insert(path.to_string(), node);
        true
    }
}

fn file_meta() -> larder_sync::Metadata {
    meta::encode(S_IFREG | 0o644, 0, 0, 1_700_000_000, 5)
}

/// Everything under `dir` (paths, kinds, contents, modes, mtimes), not
/// following symlinks.
fn snapshot(dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let what = if m.is_dir() {
            snapshot(&p, out);
            "dir".to_string()
        } else if m.file_type().is_symlink() {
            format!("-> {:?}", std::fs::read_link(&p).unwrap())
        } else {
            format!("{:?}", std::fs::read(&p).unwrap())
        };
        out.push((
            p.display().to_string(),
            format!("{what} {:o} {}.{}", m.mode(), m.mtime(), m.mtime_nsec()),
        ));
    }
}

/// A temporary directory holding `store/` and, beside it, `outside/` with
/// a secret, a subdirectory and a link; and the snapshot of what is not
/// the store.
fn sandbox() -> (tempfile::TempDir, LocalDir, Vec<(String, String)>) {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(outside.join("sub")).unwrap();
    std::fs::write(outside.join("secret"), "host secret").unwrap();
    std::fs::write(outside.join("sub/deep"), "deeper").unwrap();
    std::os::unix::fs::symlink("secret", outside.join("link")).unwrap();
    std::fs::write(tmp.path().join("beside"), "a file beside the store").unwrap();
    let store = LocalDir::open(tmp.path().join("store")).unwrap();
    // A name another tool left that cannot be a key.
    std::fs::write(
        tmp.path()
            .join("store")
            .join(std::ffi::OsStr::from_bytes(b"bad\xffname")),
        "x",
    )
    .unwrap();
    let before = outside_snapshot(tmp.path());
    (tmp, store, before)
}

fn outside_snapshot(tmp: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in ["outside", "beside"] {
        let p = tmp.join(name);
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            snapshot(&p, &mut out);
        } else {
            out.push((name.into(), format!("{:?}", std::fs::read(&p).unwrap())));
        }
    }
    let mut names: Vec<String> = std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    out.push(("names".into(), names.join(" ")));
    out
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let (tmp, store, before) = sandbox();
    let outside = tmp.path().join("outside");
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::PutFile(k, body) => {
                let r = store.put(k, body, &file_meta(), &Cond::None);
                let want = valid(k) && !k.ends_with('/') && model.put(k, Node::File(body.clone()));
                prop_assert_eq!(r.is_ok(), want, "{:?}: {:?}", op, r);
            }
            Op::PutLink(k, t) => {
                let t = target(*t, &outside);
                let m = meta::encode(S_IFLNK | 0o777, 0, 0, 0, 0);
                let r = store.put(k, &t, &m, &Cond::None);
                let want = valid(k) && !k.ends_with('/') && model.put(k, Node::Link(t));
                prop_assert_eq!(r.is_ok(), want, "{:?}: {:?}", op, r);
            }
            Op::PutDir(k) => {
                let key = format!("{k}/");
                let r = store.put(
                    &key,
                    b"",
                    &meta::encode(S_IFDIR | 0o755, 0, 0, 0, 0),
                    &Cond::None,
                );
                let want = valid(k)
                    && !matches!(model.above(k), Walk::Blocked)
                    && matches!(model.0.get(k.as_str()), None | Some(Node::Dir));
                if want {
                    model.make_parents(k);
                    model.0.insert(k.clone(), Node::Dir);
                }
                prop_assert_eq!(r.is_ok(), want, "{:?}: {:?}", op, r);
            }
            Op::Get(k, dir) => {
                let key = if *dir { format!("{k}/") } else { k.clone() };
                let r = store.get(&key, None, &Cond::None);
                if !valid(k) {
                    prop_assert!(r.is_err(), "{:?}: {:?}", op, r);
                    continue;
                }
                match model.at(k, *dir) {
                    Some(Node::File(b) | Node::Link(b)) => {
                        prop_assert_eq!(r.as_ref().ok(), Some(b))
                    }
                    Some(Node::Dir) => prop_assert_eq!(r.as_deref().ok(), Some(&b""[..])),
                    None => prop_assert_eq!(r.map_err(|e| e.kind), Err(ErrorKind::NotFound)),
                }
            }
            Op::Head(k, dir) => {
                let key = if *dir { format!("{k}/") } else { k.clone() };
                let r = store.head(&key);
                if !valid(k) {
                    prop_assert!(r.is_err(), "{:?}: {:?}", op, r);
                    continue;
                }
                let size = r.unwrap().map(|i| i.size);
                let want = model.at(k, *dir).map(|n| match n {
                    Node::File(b) | Node::Link(b) => b.len() as u64,
                    Node::Dir => 0,
                });
                prop_assert_eq!(size, want, "{:?}", op);
            }
            Op::Delete(k, dir) => {
                let key = if *dir { format!("{k}/") } else { k.clone() };
                let r = store.delete(&key);
                if !valid(k) {
                    prop_assert!(r.is_err(), "{:?}: {:?}", op, r);
                    continue;
                }
                let reachable = matches!(model.above(k), Walk::Ok);
                match (reachable.then(|| model.0.get(k.as_str())).flatten(), dir) {
                    (Some(Node::Dir), false) => prop_assert!(r.is_err(), "{:?}", op),
                    (Some(Node::Dir), true) => {
                        prop_assert!(r.is_ok(), "{:?}: {:?}", op, r);
                        if !model.has_children(k) {
                            model.0.remove(k.as_str());
                        }
                    }
                    (Some(_), false) => {
                        prop_assert!(r.is_ok(), "{:?}: {:?}", op, r);
                        model.0.remove(k.as_str());
                    }
                    _ => prop_assert!(r.is_ok(), "{:?}: {:?}", op, r),
                }
            }
            Op::Copy(from, to) => {
                let r = store.copy(from, to, &file_meta(), &Cond::None);
                let body = match valid(from).then(|| model.at(from, false)).flatten() {
                    Some(Node::File(b) | Node::Link(b)) => Some(b.clone()),
                    _ => None,
                };
                let want = match body {
                    Some(b) => valid(to) && model.put(to, Node::File(b)),
                    None => false,
                };
                prop_assert_eq!(r.is_ok(), want, "{:?}: {:?}", op, r);
            }
            Op::List => {}
        }
        // After every step: the store lists exactly the model, and nothing
        // outside it changed.
        let listed: Vec<(String, u64)> = store
            .list("")
            .unwrap()
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect();
        let want: Vec<(String, u64)> = {
            let mut v: Vec<(String, u64)> = model
                .0
                .iter()
                .map(|(p, n)| match n {
                    Node::Dir => (format!("{p}/"), 0),
                    Node::File(b) | Node::Link(b) => (p.clone(), b.len() as u64),
                })
                .collect();
            v.sort();
            v
        };
        prop_assert_eq!(listed, want, "after {:?}", op);
        prop_assert_eq!(&outside_snapshot(tmp.path()), &before, "after {:?}", op);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn never_reaches_outside_the_root(ops in prop::collection::vec(op(), 1..40)) {
        run(&ops)?;
    }
}

/// The attack from the safety review, step by step: a symlink object
/// pointing at a host directory, then keys through it.
#[test]
fn a_symlink_object_is_never_traversed() {
    let (tmp, store, before) = sandbox();
    let outside = tmp.path().join("outside");
    let link = meta::encode(S_IFLNK | 0o777, 0, 0, 0, 0);
    store
        .put("esc", outside.as_os_str().as_bytes(), &link, &Cond::None)
        .unwrap();
    // The link itself is an object, kept as a real symlink.
    assert_eq!(
        std::fs::read_link(tmp.path().join("store/esc")).unwrap(),
        outside
    );
    let e = store
        .put("esc/PWNED", b"x", &file_meta(), &Cond::None)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains("not a directory"), "{e}");
    assert_eq!(
        store.get("esc/secret", None, &Cond::None).unwrap_err().kind,
        ErrorKind::NotFound
    );
    assert_eq!(store.head("esc/secret").unwrap(), None);
    assert_eq!(store.head("esc/sub/").unwrap(), None);
    store.delete("esc/secret").unwrap();
    store.delete("esc/sub/deep").unwrap();
    assert!(store.put("esc/", b"", &file_meta(), &Cond::None).is_err());
    assert!(store
        .copy("esc/secret", "stolen", &file_meta(), &Cond::None)
        .is_err());
    let keys: Vec<String> = store.list("").unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(keys, ["esc"]);
    assert_eq!(outside_snapshot(tmp.path()), before);
}

/// A read-only command must not create a store that is not there.
#[test]
fn open_existing_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    let e = LocalDir::open_existing(&missing).err().unwrap();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(!missing.exists());
}

/// A store error names the object it was about as a field of its own, so
/// callers report it without parsing messages; the message is the cause.
#[test]
fn errors_carry_their_key() {
    let tmp = tempfile::tempdir().unwrap();
    let local = LocalDir::open(tmp.path().join("store")).unwrap();
    let mem = larder_sync::MemStore::default();
    let stores: [(&str, &dyn ObjectStore); 2] = [("local", &local), ("memory", &mem)];
    for (name, store) in stores {
        let e = store.get("no/such", None, &Cond::None).unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotFound, "{name}: {e}");
        assert_eq!(e.key.as_deref(), Some("no/such"), "{name}: {e}");
        assert!(e.to_string().starts_with("no/such: "), "{name}: {e}");
        assert!(!e.message.contains("no/such"), "{name}: {e}");
    }
    local.put("k", b"1", &file_meta(), &Cond::None).unwrap();
    let e = local
        .put("k", b"2", &file_meta(), &Cond::IfNoneMatch)
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert_eq!(e.key.as_deref(), Some("k"));
    assert_eq!(e.to_string(), "k: changed by another writer");
}

//! A hostile guest for the safety tests: it imports the object store a
//! host lends composed apps (`larder:vfs/store`, which `larder run
//! --store` gives any component that asks) and tries to reach the host's
//! files through it: a symlink object pointing at a host directory, then
//! keys through that link, and keys that climb out; then the same and
//! misordered pieces through a piecewise `upload`.
//!
//! Usage: `hostile HOST_DIR`. One line per call on stdout:
//! `NAME: ok [what came back]` or `NAME: error KIND`.

wit_bindgen::generate!({ path: "../../../wit", world: "store-host" });

use larder::vfs::store::{self, Condition, Error};

fn show<T: std::fmt::Debug>(name: &str, r: Result<T, Error>) {
    match r {
        Ok(v) => println!("{name}: ok {v:?}"),
        Err(Error::NotFound(_)) => println!("{name}: error not-found"),
        Err(Error::Conflict(_)) => println!("{name}: error conflict"),
        Err(Error::Transient(_)) => println!("{name}: error transient"),
        Err(Error::Permanent(_)) => println!("{name}: error permanent"),
    }
}

fn main() {
    let host_dir = std::env::args().nth(1).expect("usage: hostile HOST_DIR");
    let file = vec![("mode".to_string(), "33188".to_string())];
    let link = vec![("mode".to_string(), "41471".to_string())];
    show(
        "put link",
        store::put("esc", host_dir.as_bytes(), &link, &Condition::None),
    );
    show(
        "put through link",
        store::put("esc/PWNED", b"pwned", &file, &Condition::None),
    );
    show(
        "mkdir through link",
        store::put("esc/sub/", b"", &file, &Condition::None),
    );
    show(
        "get through link",
        store::get("esc/secret", None, &Condition::None)
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
    );
    show(
        "head through link",
        store::head("esc/secret").map(|i| i.is_some()),
    );
    show(
        "copy through link",
        store::copy("esc/secret", "stolen", &file, &Condition::None),
    );
    show("delete through link", store::delete("esc/secret"));
    show(
        "put climbing out",
        store::put("../PWNED", b"pwned", &file, &Condition::None),
    );
    show(
        "put absolute",
        store::put("/tmp/PWNED", b"pwned", &file, &Condition::None),
    );
    let upload = |key: &str, size: u64, writes: &[(u64, &[u8])]| {
        let up = store::Upload::new(key, size);
        for (at, bytes) in writes {
            up.write(*at, bytes)?;
        }
        up.finish(&file, &Condition::None)
    };
    show(
        "upload through link",
        upload("esc/PWNED", 5, &[(0, b"pwned")]),
    );
    show(
        "upload climbing out",
        upload("../PWNED", 5, &[(0, b"pwned")]),
    );
    show(
        "upload out of order",
        upload("order", 20, &[(10, b"late"), (0, b"early")]),
    );
    show("upload past its size", upload("past", 4, &[(0, b"12345")]));
    show("upload keeping what is not there", {
        let up = store::Upload::new("nothing", 4);
        up.keep(0, 4)
            .and_then(|()| up.finish(&file, &Condition::None))
    });
    let twice = store::Upload::new("twice", 3);
    show(
        "upload once",
        twice
            .write(0, b"one")
            .and_then(|()| twice.finish(&file, &Condition::None))
            .map(drop),
    );
    show(
        "upload twice",
        twice.finish(&file, &Condition::None).map(drop),
    );
    {
        let dropped = store::Upload::new("dropped", 3);
        show("upload dropped unfinished", dropped.write(0, b"abc"));
    }
    show("head dropped", store::head("dropped").map(|i| i.is_some()));
    show(
        "list",
        store::list("").map(|l| l.into_iter().map(|o| o.key).collect::<Vec<_>>()),
    );
}

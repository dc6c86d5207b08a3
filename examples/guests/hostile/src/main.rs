//! A hostile guest for the safety tests: it imports the object store a
//! host lends composed apps (`larder:vfs/store`, which `larder run
//! --store` gives any component that asks) and tries to reach the host's
//! files through it: a symlink object pointing at a host directory, then
//! keys through that link, and keys that climb out.
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
    show(
        "list",
        store::list("").map(|l| l.into_iter().map(|o| o.key).collect::<Vec<_>>()),
    );
}

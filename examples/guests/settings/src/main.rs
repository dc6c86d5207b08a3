//! An app that reads its configuration from a bundled directory and keeps
//! state in another: the example `larder compose --mount` is built for.
//!
//! Expects `/etc/app` (read-only: settings.conf, a `current` symlink,
//! nested files) and `/var/lib/app/count`. Prints one line per step, errors
//! included, so tests can check what the app saw.

use std::fs;
use std::io::ErrorKind;
use std::time::UNIX_EPOCH;

fn show<T: std::fmt::Debug>(name: &str, r: std::io::Result<T>) {
    match r {
        Ok(v) => println!("{name}: ok {v:?}"),
        Err(e) => println!("{name}: err {:?}", e.kind()),
    }
}

/// Every entry under `dir`, sorted, with kind, size, mtime and link target.
fn list(dir: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = format!("{dir}/{}", e.file_name().to_string_lossy());
        let m = fs::symlink_metadata(&path)?;
        let mtime = m.modified()?.duration_since(UNIX_EPOCH).unwrap().as_secs();
        if m.is_symlink() {
            out.push(format!(
                "{path} symlink -> {}",
                fs::read_link(&path)?.display()
            ));
        } else if m.is_dir() {
            out.push(format!("{path} dir mtime={mtime}"));
            list(&path, out)?;
        } else {
            out.push(format!("{path} file size={} mtime={mtime}", m.len()));
        }
    }
    Ok(())
}

fn main() {
    // stdio passes through the adapter to the host unchanged.
    let mut input = String::new();
    show(
        "stdin",
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut input)
            .map(|n| (n, input.lines().count())),
    );
    eprintln!("settings: stderr works");

    let mut tree = Vec::new();
    match list("/etc/app", &mut tree) {
        Ok(()) => tree.iter().for_each(|l| println!("tree: {l}")),
        Err(e) => println!("tree: err {:?}", e.kind()),
    }
    let settings = fs::read_to_string("/etc/app/settings.conf");
    if let Ok(text) = &settings {
        for line in text.lines().filter_map(|l| l.split_once('=')) {
            println!("setting: {} = {}", line.0.trim(), line.1.trim());
        }
    } else {
        show("settings", settings);
    }
    show("via-symlink", fs::read_to_string("/etc/app/current"));

    // The config mount is read-only.
    show("write-config", fs::write("/etc/app/settings.conf", "x"));
    show("create-in-config", fs::write("/etc/app/new", "x"));
    show("remove-config", fs::remove_file("/etc/app/settings.conf"));

    // Nothing leads out of the bundled tree.
    show(
        "dotdot-escape",
        fs::read_to_string("/etc/app/../../../../../etc/hostname"),
    );
    show("symlink-escape", fs::read_to_string("/etc/app/escape"));
    show("absolute-symlink", fs::read_to_string("/etc/app/abs"));

    // State: the bundled count is copied on first write.
    let count: u64 = fs::read_to_string("/var/lib/app/count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    show(
        "count-write",
        fs::write("/var/lib/app/count", format!("{}\n", count + 1)),
    );
    show(
        "count",
        fs::read_to_string("/var/lib/app/count").map(|s| s.trim().to_string()),
    );
    show(
        "log-append",
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open("/var/lib/app/log")
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"ran\n")),
    );

    // Relative paths resolve against a `.` preopen when there is one; a
    // preopen named `/cfg` serves paths under /cfg.
    show(
        "relative",
        fs::read_to_string("etc/app/settings.conf").map(|s| s.len()),
    );
    show(
        "cfg-preopen",
        fs::read_to_string("/cfg/settings.conf").map(|s| s.len()),
    );

    // A large bundled file, if any, is read in full on demand.
    match fs::read("/data/big") {
        Ok(b) => println!(
            "big: {} bytes, sum {}",
            b.len(),
            b.iter().map(|&x| x as u64).sum::<u64>()
        ),
        Err(e) if e.kind() == ErrorKind::NotFound => println!("big: none"),
        Err(e) => println!("big: err {:?}", e.kind()),
    }
}

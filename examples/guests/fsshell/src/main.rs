//! A line-driven file shell, for tests that drive an app step by step and
//! watch each call's outcome (a store going away between two of them, say).
//!
//! One command per line on stdin, one reply line on stdout:
//! `write PATH TEXT` (create or truncate, write, close: no fsync),
//! `append PATH TEXT`, `sync PATH` (open and fsync), `cat PATH`,
//! `ls DIR`, `rm PATH`, `mkdir PATH`, `clear DIR` (remove it and all
//! in it), `hold PATH N` (open PATH up to N
//! times at once, then close them all: `opened K` or `opened K, then
//! error: ...`), `fill DIR N` (create N empty files in DIR: `created K`
//! or `created K, then error: ...`), `grow PATH MIB` (append MIB MiB to
//! PATH a MiB at a time: `wrote K MiB` or `wrote K MiB, then error:
//! ...`), `size PATH N` (create or open, and set its length to N
//! bytes), `put PATH OFFSET TEXT` (write TEXT at OFFSET of an existing
//! file), `env KEY` (its value, or `unset`), `args` (the arguments after
//! the program's name, space-separated). Replies are `ok`, the text, or
//! `error: ...`; the shell keeps going after an error. EOF or `exit` ends
//! it by returning from `main`; `quit CODE` by `std::process::exit(CODE)`.

use std::io::{BufRead, Write};

fn run(line: &str) -> std::io::Result<String> {
    let mut words = line.splitn(3, ' ');
    let cmd = words.next().unwrap_or("");
    let path = words.next().unwrap_or("");
    let text = words.next().unwrap_or("");
    match cmd {
        "write" => std::fs::write(path, text).map(|_| "ok".into()),
        "append" => std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)?
            .write_all(text.as_bytes())
            .map(|_| "ok".into()),
        "sync" => std::fs::File::open(path)?.sync_all().map(|_| "ok".into()),
        "cat" => std::fs::read_to_string(path),
        "ls" => {
            let mut names: Vec<String> = std::fs::read_dir(path)?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<_, _>>()?;
            names.sort();
            Ok(names.join(" "))
        }
        "rm" => std::fs::remove_file(path).map(|_| "ok".into()),
        "mkdir" => std::fs::create_dir_all(path).map(|_| "ok".into()),
        "clear" => std::fs::remove_dir_all(path).map(|_| "ok".into()),
        "hold" => {
            let n: usize = text.parse().unwrap_or(0);
            let mut held = Vec::new();
            for _ in 0..n {
                match std::fs::File::open(path) {
                    Ok(f) => held.push(f),
                    Err(e) => return Ok(format!("opened {}, then error: {e}", held.len())),
                }
            }
            Ok(format!("opened {}", held.len()))
        }
        "fill" => {
            let n: usize = text.parse().unwrap_or(0);
            for i in 0..n {
                if let Err(e) = std::fs::File::create(format!("{path}/{i}")) {
                    return Ok(format!("created {i}, then error: {e}"));
                }
            }
            Ok(format!("created {n}"))
        }
        "grow" => {
            let n: usize = text.parse().unwrap_or(0);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(path)?;
            let mib = vec![0x5a; 1 << 20];
            for i in 0..n {
                if let Err(e) = f.write_all(&mib) {
                    return Ok(format!("wrote {i} MiB, then error: {e}"));
                }
            }
            Ok(format!("wrote {n} MiB"))
        }
        "size" => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)?;
            let n = text.parse().map_err(std::io::Error::other)?;
            f.set_len(n).map(|_| "ok".into())
        }
        "put" => {
            let (offset, text) = text.split_once(' ').unwrap_or((text, ""));
            let offset = offset.parse().map_err(std::io::Error::other)?;
            let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
            std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset))?;
            f.write_all(text.as_bytes()).map(|_| "ok".into())
        }
        "env" => Ok(std::env::var(path).unwrap_or_else(|_| "unset".into())),
        "args" => Ok(std::env::args().skip(1).collect::<Vec<_>>().join(" ")),
        _ => Ok(format!("error: unknown command {cmd:?}")),
    }
}

fn main() {
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("read stdin");
        if line == "exit" {
            break;
        }
        if let Some(code) = line.strip_prefix("quit ") {
            std::process::exit(code.parse().expect("quit CODE"));
        }
        let reply = run(&line).unwrap_or_else(|e| format!("error: {e}"));
        writeln!(out, "{reply}")
            .and_then(|_| out.flush())
            .expect("write stdout");
    }
}

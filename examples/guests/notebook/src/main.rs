//! A notebook whose state is files: the browser example (one run per page
//! action) and the tests of persistence across reloads.
//!
//! `visit` counts a visit in `/visits` and lists the notes; `add TEXT`
//! writes the next `/notes/NNNN.txt`; `list` lists them as `note NAME TEXT`;
//! `fill PATH BYTE SIZE` writes SIZE copies of BYTE to PATH and fsyncs it
//! (the torn-write test's big file); `check PATH` says whether PATH is one
//! byte repeated (`uniform BYTE SIZE`) or `torn`.

use std::io::Write;
use std::process::exit;

fn notes() -> std::io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    match std::fs::read_dir("/notes") {
        Ok(dir) => {
            for e in dir {
                let name = e?.file_name().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(format!("/notes/{name}"))?;
                out.push((name, text));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort();
    Ok(out)
}

fn list() -> std::io::Result<()> {
    for (name, text) in notes()? {
        println!("note {name} {text}");
    }
    Ok(())
}

fn run(args: &[String]) -> std::io::Result<()> {
    match args {
        [cmd] if cmd == "visit" => {
            let visits = match std::fs::read_to_string("/visits") {
                Ok(s) => s.trim().parse::<u64>().unwrap_or(0),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err(e),
            } + 1;
            std::fs::write("/visits", format!("{visits}\n"))?;
            println!("visits {visits}");
            list()
        }
        [cmd] if cmd == "list" => list(),
        [cmd, text] if cmd == "add" => {
            std::fs::create_dir_all("/notes")?;
            let next = notes()?
                .last()
                .and_then(|(n, _)| n.trim_end_matches(".txt").parse::<u32>().ok())
                .unwrap_or(0)
                + 1;
            let name = format!("{next:04}.txt");
            std::fs::write(format!("/notes/{name}"), text)?;
            println!("added {name}");
            Ok(())
        }
        [cmd, path, byte, size] if cmd == "fill" => {
            let (Ok(byte), Ok(size)) = (byte.parse::<u8>(), size.parse::<usize>()) else {
                eprintln!("notebook: fill PATH BYTE SIZE takes a byte (0-255) and a size");
                exit(2);
            };
            let mut f = std::fs::File::create(path)?;
            f.write_all(&vec![byte; size])?;
            f.sync_all()?;
            println!("filled {path}");
            Ok(())
        }
        [cmd, path] if cmd == "check" => {
            let data = std::fs::read(path)?;
            match data.first() {
                Some(&b) if data.iter().any(|&x| x != b) => println!("torn {}", data.len()),
                Some(&b) => println!("uniform {b} {}", data.len()),
                None => println!("empty"),
            }
            Ok(())
        }
        _ => {
            eprintln!("usage: notebook visit | list | add TEXT | fill PATH BYTE SIZE | check PATH");
            exit(2);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("notebook: {e}");
        exit(1);
    }
}

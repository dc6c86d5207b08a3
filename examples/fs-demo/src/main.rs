//! `just demo`: a tour of fs-core on a fresh machine.
//!
//! Each run builds a filesystem, mounts `config/` read-only at /etc/app,
//! restores /var/lib/demo from the snapshot image left by the previous run,
//! does some work, and saves the snapshot again: run it twice and the
//! counter goes up.

use fs_core::host::import_dir;
use fs_core::{
    image, Descriptor, DescriptorFlags as DF, DescriptorType, ErrorCode, Fs, FsConfig,
    OpenFlags as OF, PathFlags as PF,
};
use std::path::PathBuf;
use std::process::ExitCode;

const RW: DF = DF::READ.union(DF::WRITE);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fs-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config_dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| here.join("config"));
    let state_dir = here.join("../../target/fs-demo");
    std::fs::create_dir_all(&state_dir)?;
    let state_file = state_dir.canonicalize()?.join("state.img");

    let fs = Fs::in_memory();
    let root = fs.root(DF::READ | DF::MUTATE_DIRECTORY)?;
    for d in ["etc", "etc/app", "var", "var/lib", "var/lib/demo"] {
        root.create_directory_at(d)?;
    }

    // 1. A host directory bundled read-only.
    let etc_app = root.open_at(PF::empty(), "etc/app", OF::DIRECTORY, DF::READ)?;
    let stats = import_dir(&etc_app, &config_dir)?;
    etc_app.set_read_only_recursive();
    println!(
        "mounted {} read-only at /etc/app: {} files, {} dirs, {} symlinks, {} bytes",
        config_dir.display(),
        stats.files,
        stats.dirs,
        stats.symlinks,
        stats.bytes
    );
    println!(
        "/etc/app/current-theme says: {}",
        read(&root, "etc/app/current-theme")?
            .lines()
            .next()
            .unwrap_or("")
    );

    // 2. State restored from the last run's snapshot.
    let state = root.open_at(PF::empty(), "var/lib/demo", OF::DIRECTORY, DF::READ)?;
    match std::fs::read(&state_file) {
        Ok(bytes) => {
            image::decode_into(&state, &bytes, false)?;
            println!(
                "restored /var/lib/demo from {} ({} bytes)",
                state_file.display(),
                bytes.len()
            );
        }
        Err(_) => println!("no snapshot yet: starting /var/lib/demo empty"),
    }
    let runs: u64 = read(&root, "var/lib/demo/runs")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
        + 1;
    write(
        &root,
        "var/lib/demo/runs",
        format!("{runs}\n").as_bytes(),
        OF::TRUNCATE,
    )?;
    let log = root.open_at(PF::empty(), "var/lib/demo/log", OF::CREATE, DF::WRITE)?;
    log.append(format!("run {runs}: {}\n", read(&root, "etc/app/motd.txt")?.trim()).as_bytes())?;
    if runs == 1 {
        root.link_at(
            PF::empty(),
            "var/lib/demo/log",
            &root,
            "var/lib/demo/log.hardlink",
        )?;
        root.symlink_any_at("/etc/app/app.toml", "var/lib/demo/config")?;
        let sparse = root.open_at(PF::empty(), "var/lib/demo/sparse", OF::CREATE, RW)?;
        sparse.write(b"the end", (1 << 30) - 7)?;
    }
    println!("this is run {runs} (run `just demo` again and it goes up)");

    // 3. What a program sees: like `ls -lR`.
    println!();
    list(&root, "var/lib/demo")?;
    list(&root, "etc/app")?;

    // 4. What it cannot do.
    let refused = |what: &str, e: ErrorCode| println!("  {what:<48} -> {e}");
    println!("\nrefused, as Linux or wasmtime would:");
    refused(
        "write to /etc/app/app.toml (read-only mount)",
        write(&root, "etc/app/app.toml", b"x", OF::empty()).unwrap_err(),
    );
    refused(
        "open ../../outside (leaves the root)",
        root.stat_at(PF::empty(), "var/../../outside").unwrap_err(),
    );
    refused(
        "rmdir /var (not empty)",
        root.remove_directory_at("var").unwrap_err(),
    );
    refused(
        "rename /var into /var/lib (own subtree)",
        root.rename_at("var", &root, "var/lib/x").unwrap_err(),
    );
    let tiny = Fs::new(
        FsConfig {
            max_bytes: 1 << 20,
            ..FsConfig::default()
        },
        std::sync::Arc::new(fs_core::SystemClock),
    )?;
    let troot = tiny.root(DF::READ | DF::MUTATE_DIRECTORY)?;
    let f = troot.open_at(PF::empty(), "big", OF::CREATE, RW)?;
    let wrote = f.write(&vec![1u8; 2 << 20], 0)?;
    refused(
        &format!("write 2 MiB on a 1 MiB quota (wrote {} KiB)", wrote >> 10),
        f.write(b"more", wrote as u64).unwrap_err(),
    );

    // 5. Save the snapshot for the next run.
    let bytes = image::encode(&state)?;
    std::fs::write(&state_file, &bytes)?;
    println!(
        "\nsaved /var/lib/demo to {} ({} bytes; the 1 GiB sparse file costs {} KiB)",
        state_file.display(),
        bytes.len(),
        root.stat_at(PF::empty(), "var/lib/demo/sparse")?.allocated >> 10
    );
    Ok(())
}

fn read(root: &Descriptor, path: &str) -> Result<String, ErrorCode> {
    let f = root.open_at(PF::SYMLINK_FOLLOW, path, OF::empty(), DF::READ)?;
    let mut buf = vec![0; f.stat().size as usize];
    let n = f.read(&mut buf, 0)?;
    buf.truncate(n);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn write(root: &Descriptor, path: &str, data: &[u8], extra: OF) -> Result<(), ErrorCode> {
    let f = root.open_at(PF::SYMLINK_FOLLOW, path, OF::CREATE | extra, DF::WRITE)?;
    f.write(data, 0)?;
    Ok(())
}

fn list(root: &Descriptor, dir: &str) -> Result<(), ErrorCode> {
    let d = root.open_at(PF::empty(), dir, OF::DIRECTORY, DF::READ)?;
    for e in d.read_directory()? {
        let e = e?;
        let p = format!("{dir}/{}", e.name);
        let s = root.stat_at(PF::empty(), &p)?;
        let t = match s.kind {
            DescriptorType::Directory => 'd',
            DescriptorType::SymbolicLink => 'l',
            DescriptorType::RegularFile => '-',
        };
        let target = if s.kind == DescriptorType::SymbolicLink {
            format!(" -> {}", root.readlink_at(&p)?)
        } else {
            String::new()
        };
        println!(
            "  {t}{:04o} {:>2} ino={:<3} {:>11} /{p}{target}",
            s.mode, s.nlink, s.ino, s.size
        );
        if s.kind == DescriptorType::Directory {
            list(root, &p)?;
        }
    }
    Ok(())
}

//! A progress bar for copying mounted host directories in (bundling with
//! `larder compose`, mounting with `larder run`). indicatif draws it only
//! when stderr is a terminal, so logs and pipes stay clean.

use indicatif::{ProgressBar, ProgressStyle};
use larder_volume::{BuildError, Mount, Volume, VolumeBuilder};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Bytes of regular-file content under `dir` (symlinks not followed).
fn content_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => pending.push(e.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

/// Adds a bar over the objects a store restore lists (a request each on
/// S3); returns it so the caller can clear it once the filesystem is built.
/// It ticks by itself, so a listing whose size is not known yet still
/// shows that something is under way.
pub fn attach_restore(builder: VolumeBuilder) -> (VolumeBuilder, ProgressBar) {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}, {elapsed}").expect("a valid template"),
    );
    bar.set_message("listing the store");
    let b = bar.clone();
    let builder = builder.on_restore_progress(move |done, total| {
        // The first calls come before the listing knows its length: the
        // spinner until then, the count once there is one.
        if total > 0 {
            if b.length() != Some(total) {
                b.set_length(total);
                b.set_style(
                    ProgressStyle::with_template(
                        "{spinner} {msg} [{bar:30}] {pos}/{len} objects, {elapsed}",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
                b.set_message("restoring from the store");
            }
            b.set_position(done);
        }
        b.enable_steady_tick(Duration::from_millis(200));
    });
    (builder, bar)
}

/// A spinner for a wait whose length is unknown (the last sync at exit);
/// `f`'s result once done. Drawn only on a terminal.
pub fn waiting<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}, {elapsed}").expect("a valid template"),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    let r = f();
    bar.finish_and_clear();
    r
}

/// A bar over `total` things (`unit`: "objects"), showing `what`. Drawn
/// only on a terminal.
pub fn items(total: u64, what: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{{spinner}} {{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit}, {{elapsed}}");
    bar.set_style(
        ProgressStyle::with_template(&template)
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A bar over `total` bytes, showing `what` until told otherwise. Drawn
/// only on a terminal.
pub fn bytes(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {elapsed}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Adds a bar over all of `mounts` to `builder`; returns it so the caller
/// can clear it once the filesystem is built.
pub fn attach(
    builder: VolumeBuilder,
    mounts: &[Mount],
    verb: &'static str,
) -> (VolumeBuilder, ProgressBar) {
    let total = mounts.iter().map(|m| content_bytes(&m.host)).sum();
    // Nothing to copy: nothing to show.
    let bar = match total {
        0 => ProgressBar::hidden(),
        _ => ProgressBar::new(total),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(verb.to_string());
    let b = bar.clone();
    let builder = builder.on_progress(move |m, n| {
        b.set_message(format!("{verb} {}", m.guest));
        b.inc(n);
    });
    (builder, bar)
}

/// Builds the filesystem with `mounts` copied in, showing progress bars for
/// the store's restore and the copy (`larder run`, `larder serve`).
pub fn build(builder: VolumeBuilder, mounts: Vec<Mount>) -> Result<Arc<Volume>, BuildError> {
    let (builder, restoring) = attach_restore(builder);
    let (mut builder, bar) = attach(builder, &mounts, "mounting");
    for m in mounts {
        builder = builder.mount(m);
    }
    let built = builder.build();
    restoring.finish_and_clear();
    bar.finish_and_clear();
    built
}

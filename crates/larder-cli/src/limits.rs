//! `--max-bytes` / `--max-inodes`: the filesystem's quota, for `larder
//! run` and `larder serve`. Without them, tmpfs's defaults on this host's
//! memory (larder_volume::default_config).

use larder_volume::VolumeBuilder;

#[derive(clap::Args)]
pub struct LimitArgs {
    /// Most bytes of file data the filesystem may hold, e.g. 512M or 4G
    /// (K, M, G, T: powers of 1024); past it, writes fail with
    /// insufficient-space (ENOSPC). Default: half of this machine's memory
    /// (or of the cgroup's limit), as tmpfs.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_bytes: Option<u64>,
    /// Most files, directories and symlinks at once (ENOSPC past it).
    /// Default: one per 8 KiB of memory, as tmpfs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    max_inodes: Option<u64>,
}

impl LimitArgs {
    pub fn apply(&self, builder: VolumeBuilder) -> VolumeBuilder {
        let mut config = larder_volume::default_config();
        if let Some(b) = self.max_bytes {
            config.max_bytes = b;
        }
        if let Some(n) = self.max_inodes {
            config.max_inodes = n;
        }
        builder.config(config)
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| {
            format!("`{s}` is not a size ({e}); give bytes, or a number with K, M, G or T")
        })
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_are_binary_and_bad_ones_are_named() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10M"), Ok(10 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        let e = parse_size("lots").unwrap_err();
        assert!(e.contains("`lots` is not a size"), "{e}");
        assert!(parse_size("99999E").is_err());
    }
}

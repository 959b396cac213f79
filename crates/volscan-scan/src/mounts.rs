//! Reading `/proc/self/mountinfo` to find mount points below a directory.

use std::path::{Path, PathBuf};

/// The first mount point strictly below `root`, if any. `root` is
/// canonicalised first, so a symlinked root is compared by its real path.
pub(crate) fn mount_below(root: &Path) -> std::io::Result<Option<PathBuf>> {
    let root = root.canonicalize()?;
    let table = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(first_mount_below(&table, &root))
}

/// The first mount point of `table` strictly below `root`, compared by path components.
fn first_mount_below(table: &str, root: &Path) -> Option<PathBuf> {
    mount_points(table).find(|mount| mount != root && mount.starts_with(root))
}

/// The mount points (fifth field) of a mountinfo table, with the kernel's
/// octal escapes (`\040` for a space) decoded.
fn mount_points(table: &str) -> impl Iterator<Item = PathBuf> + '_ {
    table
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
}

/// Decodes the kernel's octal escapes (`\040` for a space) in a mountinfo field.
pub(crate) fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(digits)) => {
                let value = digits.iter().fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /var/lib/docker/volumes/with\\040space/_data rw - tmpfs tmpfs rw
31 22 0:26 / /srv rw - tmpfs tmpfs rw
";

    #[test]
    fn mount_points_are_decoded() {
        let points: Vec<PathBuf> = mount_points(TABLE).collect();
        assert_eq!(
            points,
            [
                PathBuf::from("/"),
                PathBuf::from("/var/lib/docker/volumes/with space/_data"),
                PathBuf::from("/srv")
            ]
        );
    }

    #[test]
    fn only_mounts_strictly_below_count() {
        let below = |root: &str| first_mount_below(TABLE, Path::new(root));
        assert_eq!(below("/"), Some(PathBuf::from("/var/lib/docker/volumes/with space/_data")));
        assert_eq!(below("/srv"), None);
        assert_eq!(
            below("/var/lib/docker"),
            Some(PathBuf::from("/var/lib/docker/volumes/with space/_data"))
        );
        assert_eq!(below("/sr"), None, "compared by component, not by prefix");
    }
}

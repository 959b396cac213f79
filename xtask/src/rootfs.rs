//! A minimal tar writer for the container image's root filesystem: directories
//! and regular files with exactly the owner, mode and extended attributes
//! given here, whatever the files on disk say.
//!
//! That is what lets `cargo xtask image` put a file capability on the binary
//! and give `/data` to the image's user without `setcap`, root or GNU tar's
//! `--xattrs`: an extended attribute travels as a PAX `SCHILY.xattr.*` record,
//! which Docker applies when `ADD` unpacks the archive. It writes ustar
//! headers with PAX records only where needed; it does not read archives,
//! write links, or handle names over 99 bytes (the image has none).

use std::io::{self, Write};

/// Every header and data block is this long.
const BLOCK: usize = 512;

/// One file or directory of the archive.
#[derive(Debug)]
pub struct Entry {
    /// The path inside the image, relative (`usr/local/bin/volscan-server`).
    pub path: String,
    /// The contents of a regular file; `None` for a directory.
    pub contents: Option<Vec<u8>>,
    /// Permission bits (`0o755`).
    pub mode: u32,
    /// Owner and group ids.
    pub owner: (u32, u32),
    /// Extended attributes (`security.capability`), name and raw value.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Entry {
    /// A directory owned by `owner`.
    pub fn dir(path: &str, mode: u32, owner: (u32, u32)) -> Entry {
        Entry { path: path.to_owned(), contents: None, mode, owner, xattrs: Vec::new() }
    }

    /// A regular file owned by root.
    pub fn file(path: &str, mode: u32, contents: Vec<u8>) -> Entry {
        Entry {
            path: path.to_owned(),
            contents: Some(contents),
            mode,
            owner: (0, 0),
            xattrs: Vec::new(),
        }
    }
}

/// Writes `entries` in order as a tar archive, every entry dated `mtime`
/// (seconds since the epoch), and the two zero blocks that end it.
pub fn write_archive(out: &mut impl Write, entries: &[Entry], mtime: u64) -> io::Result<()> {
    for entry in entries {
        let is_dir = entry.contents.is_none();
        let name = if is_dir {
            format!("{}/", entry.path.trim_end_matches('/'))
        } else {
            entry.path.clone()
        };
        if name.len() > 99 || name.starts_with('/') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: only relative names up to 99 bytes are supported"),
            ));
        }
        if !entry.xattrs.is_empty() {
            let records: Vec<u8> = entry
                .xattrs
                .iter()
                .flat_map(|(key, value)| pax_record(&format!("SCHILY.xattr.{key}"), value))
                .collect();
            let pax_name = format!("PaxHeaders/{}", &name[name.len().saturating_sub(88)..]);
            out.write_all(&header(&pax_name, b'x', 0o644, (0, 0), records.len() as u64, mtime))?;
            write_padded(out, &records)?;
        }
        let data = entry.contents.as_deref().unwrap_or_default();
        let kind = if is_dir { b'5' } else { b'0' };
        out.write_all(&header(&name, kind, entry.mode, entry.owner, data.len() as u64, mtime))?;
        write_padded(out, data)?;
    }
    out.write_all(&[0; 2 * BLOCK])
}

/// A ustar header block.
fn header(
    name: &str,
    kind: u8,
    mode: u32,
    owner: (u32, u32),
    size: u64,
    mtime: u64,
) -> [u8; BLOCK] {
    let mut block = [0_u8; BLOCK];
    let mut put = |at: usize, bytes: &[u8]| block[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, name.as_bytes());
    put(100, format!("{mode:07o}\0").as_bytes());
    put(108, format!("{:07o}\0", owner.0).as_bytes());
    put(116, format!("{:07o}\0", owner.1).as_bytes());
    put(124, format!("{size:011o}\0").as_bytes());
    put(136, format!("{mtime:011o}\0").as_bytes());
    // The checksum is computed with its own field counted as spaces.
    put(148, b"        ");
    put(156, &[kind]);
    put(257, b"ustar\x0000");
    put(329, b"0000000\0");
    put(337, b"0000000\0");
    let checksum: u32 = block.iter().map(|byte| u32::from(*byte)).sum();
    block[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    block
}

/// `data`, then zeros up to the next block boundary.
fn write_padded(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    out.write_all(data)?;
    let rest = data.len() % BLOCK;
    if rest != 0 {
        out.write_all(&vec![0; BLOCK - rest])?;
    }
    Ok(())
}

/// One PAX record, `"<length> <key>=<value>\n"`, where the length counts the
/// whole record, its own digits included.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let without_length = 1 + key.len() + 1 + value.len() + 1;
    let mut length = without_length + 1;
    while length != without_length + length.to_string().len() {
        length = without_length + length.to_string().len();
    }
    let mut record = format!("{length} {key}=").into_bytes();
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        for size in [0, 1, 80, 86, 87, 88, 89, 990, 995, 996, 997, 1000] {
            let record = pax_record("k", &vec![b'v'; size]);
            let (length, _) =
                std::str::from_utf8(&record[..record.iter().position(|b| *b == b' ').unwrap()])
                    .map(|digits| (digits.parse::<usize>().unwrap(), ()))
                    .unwrap();
            assert_eq!(length, record.len(), "value of {size} bytes");
        }
    }

    #[test]
    fn gnu_tar_reads_owners_modes_contents_and_xattrs() {
        let dir = std::env::temp_dir().join(format!("xtask-rootfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let archive = dir.join("rootfs.tar");
        let mut binary = Entry::file("usr/local/bin/tool", 0o755, vec![b'x'; 1000]);
        binary.xattrs.push(("security.capability".to_owned(), vec![0, 0, 0, 2, 4, 0, 0, 0]));
        let entries = [
            Entry::dir("data", 0o700, (10001, 10001)),
            Entry::dir("usr/local/bin", 0o755, (0, 0)),
            binary,
            Entry::file("etc/passwd", 0o644, b"root:x:0:0::/:/x\n".to_vec()),
        ];
        let mut bytes = Vec::new();
        write_archive(&mut bytes, &entries, 1_700_000_000).unwrap();
        assert_eq!(bytes.len() % BLOCK, 0);
        std::fs::write(&archive, &bytes).unwrap();

        let output = std::process::Command::new("tar")
            .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-tvvf"])
            .arg(&archive)
            .env("TZ", "UTC")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        // One space between columns; a `*` after the mode marks extended attributes.
        let listing: Vec<String> = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        let listing = listing.join("\n");
        for expected in [
            "drwx------ 10001/10001 0 2023-11-14 22:13 data/",
            "drwxr-xr-x 0/0 0 2023-11-14 22:13 usr/local/bin/",
            "-rwxr-xr-x* 0/0 1000 2023-11-14 22:13 usr/local/bin/tool\nx: 8 security.capability",
            "-rw-r--r-- 0/0 17 2023-11-14 22:13 etc/passwd",
        ] {
            assert!(listing.contains(expected), "{expected:?} missing from:\n{listing}");
        }
        let extract = dir.join("out");
        std::fs::create_dir_all(&extract).unwrap();
        let status = std::process::Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&extract)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(std::fs::read(extract.join("usr/local/bin/tool")).unwrap(), vec![b'x'; 1000]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Directories inside a volume: the usage of each directory at depth 1 and 2
//! below a scan's root (`DirUsage`), how a directory name becomes text
//! (`escape_component`), and how a scan's list is trimmed to the largest
//! (`keep_largest`).
//!
//! Paths are relative to the scan root, components joined by `/`: `a` at
//! depth 1, `a/b` at depth 2. A name is kept whatever bytes it holds; the
//! escaping is injective, so two different directories never share a path.

/// The path of the row that sums the directories `keep_largest` dropped, one
/// per depth. A real directory of that name is escaped (`\x28other)`), so
/// it never collides with this row.
pub const OTHER: &str = "(other)";

/// How many directories of each depth a scan keeps (plus one `OTHER` row).
pub const DIR_LIMIT: usize = 100;

/// The disk usage of one directory below a scan's root, its whole subtree
/// included, by the same rules as the scan's totals.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DirUsage {
    /// Relative to the scan root, each component escaped by
    /// `escape_component` and joined by `/`; `OTHER` for the summary row.
    pub path: String,
    /// 1 for a directory directly in the root, 2 for one inside those.
    pub depth: u8,
    /// Allocated bytes of the subtree (as `du -sB1 -x` of the directory,
    /// except that a hard-linked inode counts only where the scan counted it).
    pub size_bytes: u64,
    /// Distinct non-directory inodes of the subtree, when the method knows.
    pub file_count: Option<u64>,
}

/// One directory name as text, injectively: different names never give the
/// same text, and the text says which bytes the name holds.
///
/// - Valid UTF-8 stays as it is, except:
/// - `\` becomes `\\`;
/// - a control character (newline, tab, DEL, the C1 controls…) becomes `\xNN`
///   for each byte of its UTF-8 encoding;
/// - every byte of invalid UTF-8 becomes `\xNN` (two uppercase hex digits);
/// - the name `(other)` exactly becomes `\x28other)`, so that a real
///   directory never takes the place of the `OTHER` summary row.
///
/// Reading the text back (`\\` is `\`, `\xNN` is the byte `NN`, anything
/// else is its UTF-8) gives the name again, which is why the escaping is
/// injective.
pub fn escape_component(name: &[u8]) -> String {
    if name == OTHER.as_bytes() {
        return format!("\\x{:02X}{}", b'(', &OTHER[1..]);
    }
    let mut text = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                text.push_str("\\\\");
            } else if c.is_control() {
                let mut utf8 = [0; 4];
                for byte in c.encode_utf8(&mut utf8).bytes() {
                    push_byte(&mut text, byte);
                }
            } else {
                text.push(c);
            }
        }
        for &byte in chunk.invalid() {
            push_byte(&mut text, byte);
        }
    }
    text
}

/// Appends `\xNN`.
fn push_byte(text: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    text.push_str("\\x");
    text.push(char::from(HEX[usize::from(byte >> 4)]));
    text.push(char::from(HEX[usize::from(byte & 0xF)]));
}

/// Keeps, for each depth, the `limit` largest directories by `size_bytes`
/// (ties broken by path), and sums the others into one `OTHER` row of that
/// depth (its `file_count` is `None` if any summed one is). There is no
/// `OTHER` row for a depth where nothing was dropped. The result is sorted by
/// depth, then by size, largest first (the `OTHER` row included), then by path.
pub fn keep_largest(mut dirs: Vec<DirUsage>, limit: usize) -> Vec<DirUsage> {
    let order = |a: &DirUsage, b: &DirUsage| {
        a.depth
            .cmp(&b.depth)
            .then(b.size_bytes.cmp(&a.size_bytes))
            .then_with(|| a.path.cmp(&b.path))
    };
    dirs.sort_by(order);
    let mut kept = Vec::with_capacity(dirs.len().min(2 * (limit + 1)));
    let mut other: Option<DirUsage> = None;
    let mut depth = None;
    let mut in_depth = 0;
    for dir in dirs {
        if depth != Some(dir.depth) {
            depth = Some(dir.depth);
            kept.extend(other.take());
            in_depth = 0;
        }
        if in_depth < limit {
            in_depth += 1;
            kept.push(dir);
            continue;
        }
        let sum = other.get_or_insert_with(|| DirUsage {
            path: OTHER.to_owned(),
            depth: dir.depth,
            size_bytes: 0,
            file_count: Some(0),
        });
        sum.size_bytes = sum.size_bytes.saturating_add(dir.size_bytes);
        sum.file_count = sum.file_count.zip(dir.file_count).map(|(a, b)| a.saturating_add(b));
    }
    kept.extend(other);
    kept.sort_by(order);
    kept
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The inverse of `escape_component`, to prove it injective.
    fn unescape(text: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let Some(tail) = rest.strip_prefix("\\\\") {
                bytes.push(b'\\');
                rest = tail;
            } else if let Some(tail) = rest.strip_prefix("\\x") {
                bytes.push(u8::from_str_radix(&tail[..2], 16).unwrap());
                rest = &tail[2..];
            } else {
                assert_ne!(c, '\\', "a lone backslash in {text:?}");
                bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                rest = &rest[c.len_utf8()..];
            }
        }
        bytes
    }

    #[test]
    fn plain_names_stay_as_they_are() {
        for name in ["data", "..", "...", "..a", "-rf", "with space", "café", "日本語", "(other"]
        {
            assert_eq!(escape_component(name.as_bytes()), name);
        }
    }

    #[test]
    fn odd_bytes_are_escaped() {
        assert_eq!(escape_component(b"a\nb"), "a\\x0Ab");
        assert_eq!(escape_component(b"tab\there"), "tab\\x09here");
        assert_eq!(escape_component(b"caf\xe9"), "caf\\xE9");
        assert_eq!(escape_component(b"\xff\xfe"), "\\xFF\\xFE");
        assert_eq!(escape_component(b"back\\slash"), "back\\\\slash");
        assert_eq!(escape_component(b"\\x41"), "\\\\x41", "a literal \\x41 is not the byte A");
        assert_eq!(escape_component("del\u{7f}c1\u{85}".as_bytes()), "del\\x7Fc1\\xC2\\x85");
        // A truncated multi-byte sequence: each byte escaped, the valid rest kept.
        assert_eq!(escape_component(b"\xe6\x97x"), "\\xE6\\x97x");
    }

    #[test]
    fn a_real_directory_named_other_cannot_pose_as_the_summary_row() {
        assert_eq!(escape_component(b"(other)"), "\\x28other)");
        assert_ne!(escape_component(b"(other)"), OTHER);
        assert_eq!(unescape(&escape_component(b"(other)")), b"(other)");
        assert_eq!(escape_component(b"(other) "), "(other) ");
        assert_eq!(escape_component(b"\\x28other)"), "\\\\x28other)");
    }

    #[test]
    fn a_4_kib_name_is_kept_whole() {
        let name = vec![b'n'; 4096];
        assert_eq!(escape_component(&name).len(), 4096);
        let mut odd = vec![0xffu8; 4096];
        odd[0] = b'\n';
        let text = escape_component(&odd);
        assert_eq!(text.len(), 4096 * 4);
        assert_eq!(unescape(&text), odd);
    }

    #[test]
    fn escaping_is_injective_over_tricky_names() {
        let mut names: Vec<Vec<u8>> = [
            &b"a"[..],
            b"a\n",
            b"a\\x0A",
            b"a\\\\x0A",
            b"a\\",
            b"a\\\\",
            b"\\",
            b"\\\\",
            b"\\x",
            b"\\xZZ",
            b"\xff",
            b"\\xFF",
            b"\\xff",
            b"\xc3\xa9",
            b"\xc3",
            b"\xa9",
            b"(other)",
            b"\\x28other)",
            b"(other",
            b"other)",
            b"..",
            b"...",
            b" ",
            b"\t",
            b"\x7f",
            b"\x1b[31m",
            "\u{202e}txt".as_bytes(),
        ]
        .iter()
        .map(|name| name.to_vec())
        .collect();
        names.extend((0..=255u8).map(|byte| vec![byte]));
        names.extend((0..=255u8).map(|byte| vec![b'\\', byte]));
        let mut texts = HashSet::new();
        for name in &names {
            let text = escape_component(name);
            assert_eq!(unescape(&text), *name, "{text:?} reads back");
            assert!(!text.contains('/') || name.contains(&b'/'), "{text:?}");
            assert!(!text.chars().any(char::is_control), "{text:?} has a control character");
            texts.insert(text);
        }
        let distinct: HashSet<&Vec<u8>> = names.iter().collect();
        assert_eq!(texts.len(), distinct.len(), "two names gave the same text");
    }

    fn dir(path: &str, depth: u8, size_bytes: u64, file_count: Option<u64>) -> DirUsage {
        DirUsage { path: path.to_owned(), depth, size_bytes, file_count }
    }

    #[test]
    fn nothing_dropped_means_no_other_row() {
        let dirs = vec![dir("b", 1, 10, Some(1)), dir("a/x", 2, 5, Some(1)), dir("a", 1, 20, None)];
        assert_eq!(
            keep_largest(dirs, 2),
            vec![dir("a", 1, 20, None), dir("b", 1, 10, Some(1)), dir("a/x", 2, 5, Some(1))]
        );
        assert_eq!(keep_largest(Vec::new(), DIR_LIMIT), Vec::new());
    }

    #[test]
    fn the_rest_of_each_depth_is_summed_into_one_other_row() {
        let dirs = vec![
            dir("a", 1, 100, Some(10)),
            dir("b", 1, 50, Some(5)),
            dir("c", 1, 50, Some(4)),
            dir("d", 1, 30, Some(3)),
            dir("e", 1, 1, Some(1)),
            dir("a/1", 2, 60, Some(6)),
            dir("a/2", 2, 40, None),
            dir("b/1", 2, 45, Some(5)),
        ];
        assert_eq!(
            keep_largest(dirs, 2),
            vec![
                dir("a", 1, 100, Some(10)),
                // Ties by path: b before c, so c is summed.
                dir("(other)", 1, 81, Some(8)),
                dir("b", 1, 50, Some(5)),
                dir("a/1", 2, 60, Some(6)),
                dir("b/1", 2, 45, Some(5)),
                dir("(other)", 2, 40, None),
            ]
        );
    }

    #[test]
    fn a_limit_of_zero_keeps_only_the_sums() {
        let dirs =
            vec![dir("a", 1, 3, Some(1)), dir("b", 1, 4, Some(2)), dir("a/b", 2, 1, Some(1))];
        assert_eq!(
            keep_largest(dirs, 0),
            vec![dir(OTHER, 1, 7, Some(3)), dir(OTHER, 2, 1, Some(1))]
        );
    }
}

//! A small, bounded reader of tar member positions, enough for SigMF archives (`.sigmf`, an
//! uncompressed tar as the `sigmf` Python package's `SigMFFile.archive` writes it, in PAX
//! format). It reads headers only and reports where each regular file's bytes are, so a
//! recording is read in place without unpacking.
//!
//! Understood: ustar headers (name with prefix), PAX extended headers (`path`, `size`), GNU
//! long names (`L`) and base-256 sizes. Every length read from the file is checked against the
//! file's size before use; at most [`MAX_MEMBERS`] headers are read and extended headers are at
//! most [`MAX_EXTENDED`] bytes.

use std::io::{self, Read, Seek, SeekFrom};

/// Most headers read from one archive.
pub(crate) const MAX_MEMBERS: usize = 4096;
/// Largest PAX extended header or GNU long name accepted, bytes.
pub(crate) const MAX_EXTENDED: u64 = 64 * 1024;

const BLOCK: u64 = 512;

/// A regular file inside the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// Its path inside the archive.
    pub(crate) name: String,
    /// Offset of its first byte from the start of the archive.
    pub(crate) offset: u64,
    /// Its length, bytes.
    pub(crate) size: u64,
}

/// Reading a SigMF archive failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Reading the archive failed.
    #[error("i/o error reading the archive")]
    Io(#[from] io::Error),
    /// The archive is compressed (gzip, bzip2, xz or zip); only plain tar is read.
    #[error("the archive is {kind}-compressed; unpack it or archive without compression")]
    Compressed {
        /// "gzip", "bzip2", "xz" or "zip".
        kind: &'static str,
    },
    /// A header's checksum is wrong: not a tar file, or damaged.
    #[error("bad tar header checksum at byte {offset} (not a tar archive?)")]
    BadChecksum {
        /// Offset of the header.
        offset: u64,
    },
    /// A numeric header field is not a number.
    #[error("bad tar {field} field at byte {offset}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Offset of the header.
        offset: u64,
    },
    /// A member extends past the end of the file.
    #[error("tar member at byte {offset} claims {size} bytes, past the end of the archive")]
    Truncated {
        /// Offset of the header.
        offset: u64,
        /// The size claimed.
        size: u64,
    },
    /// An extended header or long name is larger than accepted.
    #[error("tar extended header at byte {offset} is {size} bytes, more than the {max} accepted")]
    ExtendedTooLarge {
        /// Offset of the header.
        offset: u64,
        /// The size claimed.
        size: u64,
        /// Largest accepted.
        max: u64,
    },
    /// More headers than accepted.
    #[error("more than {max} tar headers")]
    TooManyMembers {
        /// Largest number accepted.
        max: usize,
    },
    /// No `.sigmf-meta` member.
    #[error("no .sigmf-meta file in the archive")]
    NoMeta,
    /// No `.sigmf-data` member beside the metadata.
    #[error("no {expected} in the archive")]
    NoData {
        /// The data member expected.
        expected: String,
    },
}

/// Parses an octal (or GNU base-256) number field.
fn number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // Base-256: big-endian, first byte's top bit is the marker.
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| *b != 0 && *b != b' ');
    let mut v: u64 = 0;
    let mut digits = 0;
    for b in text {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
        digits += 1;
    }
    (digits > 0).then_some(v)
}

fn text(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Reads the `path` and `size` records of a PAX extended header ("LEN key=value\n" each).
fn pax(data: &[u8]) -> (Option<String>, Option<u64>) {
    let (mut path, mut size) = (None, None);
    let mut rest = data;
    while !rest.is_empty() {
        let Some(space) = rest.iter().position(|b| *b == b' ') else {
            break;
        };
        let Some(len) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if len <= space || len > rest.len() {
            break;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|b| *b == b'=') {
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            match key {
                b"path" => path = Some(String::from_utf8_lossy(value).into_owned()),
                b"size" => {
                    size = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
                }
                _ => {}
            }
        }
        rest = &rest[len..];
    }
    (path, size)
}

/// Every regular file in the tar `file` of `len` bytes, in archive order.
pub(crate) fn members<F: Read + Seek>(file: &mut F, len: u64) -> Result<Vec<Member>, ArchiveError> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    let mut next_name: Option<String> = None;
    let mut next_size: Option<u64> = None;
    for _ in 0..MAX_MEMBERS {
        if pos.checked_add(BLOCK).is_none_or(|end| end > len) {
            // No end-of-archive blocks: accept what was read (tar readers do).
            return Ok(out);
        }
        let mut h = [0u8; BLOCK as usize];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut h)?;
        if pos == 0 {
            let kind = match h {
                [0x1f, 0x8b, ..] => Some("gzip"),
                [b'B', b'Z', b'h', ..] => Some("bzip2"),
                [0xfd, b'7', b'z', b'X', b'Z', ..] => Some("xz"),
                [b'P', b'K', 3, 4, ..] => Some("zip"),
                _ => None,
            };
            if let Some(kind) = kind {
                return Err(ArchiveError::Compressed { kind });
            }
        }
        if h.iter().all(|b| *b == 0) {
            return Ok(out);
        }
        let stored = number(&h[148..156]).ok_or(ArchiveError::BadField {
            field: "checksum",
            offset: pos,
        })?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        if sum != stored {
            return Err(ArchiveError::BadChecksum { offset: pos });
        }
        let header_size = number(&h[124..136]).ok_or(ArchiveError::BadField {
            field: "size",
            offset: pos,
        })?;
        let typeflag = h[156];
        // Extended headers give the size of the member that follows them.
        let size = if matches!(typeflag, b'x' | b'g' | b'L') {
            header_size
        } else {
            next_size.take().unwrap_or(header_size)
        };
        let data = pos + BLOCK;
        let end = data
            .checked_add(size)
            .filter(|end| *end <= len)
            .ok_or(ArchiveError::Truncated { offset: pos, size })?;
        match typeflag {
            b'x' | b'L' => {
                if size > MAX_EXTENDED {
                    return Err(ArchiveError::ExtendedTooLarge {
                        offset: pos,
                        size,
                        max: MAX_EXTENDED,
                    });
                }
                // Checked above: size <= MAX_EXTENDED fits usize.
                let mut ext = vec![0u8; size as usize];
                file.read_exact(&mut ext)?;
                if typeflag == b'L' {
                    next_name = Some(text(&ext));
                } else {
                    let (path, psize) = pax(&ext);
                    next_name = path.or(next_name);
                    next_size = psize.or(next_size);
                }
            }
            b'0' | 0 | b'7' => {
                let name = next_name.take().unwrap_or_else(|| {
                    let name = text(&h[0..100]);
                    let prefix = text(&h[345..500]);
                    if &h[257..262] == b"ustar" && !prefix.is_empty() {
                        format!("{prefix}/{name}")
                    } else {
                        name
                    }
                });
                out.push(Member {
                    name,
                    offset: data,
                    size,
                });
            }
            _ => {
                // Directories, links, global headers: nothing to read.
                next_name = None;
            }
        }
        // Members are padded to whole blocks; `end <= len` so this cannot overflow.
        pos = end.div_ceil(BLOCK) * BLOCK;
    }
    Err(ArchiveError::TooManyMembers { max: MAX_MEMBERS })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    /// A ustar header for a regular file (or `typeflag`) of `size` bytes.
    fn header(name: &str, size: u64, typeflag: u8) -> [u8; 512] {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        if size < 8u64.pow(11) {
            h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        } else {
            // GNU base-256 for sizes octal cannot hold.
            h[124] = 0x80;
            h[128..136].copy_from_slice(&size.to_be_bytes());
        }
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn archive(parts: &[(&[u8; 512], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (h, body) in parts {
            out.extend_from_slice(*h);
            out.extend_from_slice(body);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn read(bytes: &[u8]) -> Result<Vec<Member>, ArchiveError> {
        members(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    #[test]
    fn finds_members_with_pax_names_and_sizes() {
        let record = |kv: &str| {
            // The length counts itself, the space and the newline.
            let mut n = kv.len() + 2;
            n += n.to_string().len();
            if (n).to_string().len() + kv.len() + 2 != n {
                n += 1;
            }
            format!("{n} {kv}\n")
        };
        let pax_body = format!(
            "{}{}",
            record("path=rec/a-long-name.sigmf-data"),
            record("size=3")
        );
        let pax_body = pax_body.as_bytes();
        let a = archive(&[
            (&header("rec/", 0, b'5'), b""),
            (&header("rec/rec.sigmf-meta", 2, b'0'), b"{}"),
            (&header("PaxHeader", pax_body.len() as u64, b'x'), pax_body),
            (&header("short", 3, b'0'), b"abc"),
        ]);
        let m = read(&a).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "rec/rec.sigmf-meta");
        assert_eq!(&a[m[0].offset as usize..][..2], b"{}");
        assert_eq!(m[1].name, "rec/a-long-name.sigmf-data");
        assert_eq!(
            (m[1].size, &a[m[1].offset as usize..][..3]),
            (3, &b"abc"[..])
        );
    }

    #[test]
    fn hostile_archives_are_errors_not_panics() {
        // A size past the end of the file.
        let mut a = archive(&[(&header("x", 5, b'0'), b"12345")]);
        a.truncate(1024);
        let h = header("x", u64::MAX >> 4, b'0');
        a[..512].copy_from_slice(&h);
        assert!(matches!(read(&a), Err(ArchiveError::Truncated { .. })));
        // A damaged header.
        let mut a = archive(&[(&header("x", 1, b'0'), b"1")]);
        a[0] ^= 1;
        assert!(matches!(
            read(&a),
            Err(ArchiveError::BadChecksum { offset: 0 })
        ));
        // Not a tar at all, or compressed.
        assert!(read(&[0x55; 2048]).is_err());
        let mut gz = vec![0x1f, 0x8b];
        gz.resize(1024, 0);
        assert!(matches!(
            read(&gz),
            Err(ArchiveError::Compressed { kind: "gzip" })
        ));
        // An extended header larger than accepted.
        let big = MAX_EXTENDED + 1;
        let mut a = header("PaxHeader", big, b'x').to_vec();
        a.resize(512 + big as usize + 1024, 0);
        assert!(matches!(
            read(&a),
            Err(ArchiveError::ExtendedTooLarge { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..3000)) {
            let _ = read(&bytes);
        }
    }

    #[test]
    fn numbers_parse_octal_and_base_256() {
        assert_eq!(number(b"00000000017\0"), Some(15));
        assert_eq!(number(b"  17 \0"), Some(15));
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(number(b"9\0"), None);
        assert_eq!(number(b"\0\0\0"), None);
        assert_eq!(number(&[0xff; 12]), None);
    }
}

//! The LZ4 frame format (LZ4F) container, written and parsed here around `lz4_flex::block`.
//!
//! Why not `lz4_flex::frame`: its decoder is a `std::io::Read` adapter that sizes its own
//! block buffers from the block maximum the *sender* picks (up to 4 MiB), allocates them per
//! decoder, and produces however much the frame holds; bounding it would mean reading through
//! it in chunks and counting. Parsing the container ourselves is about a hundred lines and
//! gives the properties the protocol needs directly:
//! - every block is decompressed straight into one output slice of exactly `raw_len` bytes,
//!   and `lz4_flex`'s block decoder refuses to write past the end of the slice it is given,
//!   so the output can never exceed `raw_len` (a bomb stops at `raw_len` with an error);
//! - no allocation per frame: the caller owns the output buffer and reuses it;
//! - linked blocks (the default of the reference C library and of Python's `lz4.frame`) work
//!   by handing the block decoder the up to 64 KiB of output before the block as its external
//!   dictionary; independent blocks, stored (uncompressed) blocks, block checksums, the
//!   content size and the content checksum are all handled and verified.
//!
//! The encoder writes the simplest frame every LZ4F reader understands: version 01,
//! independent 64 KiB blocks, no checksums (the sarlink frame's XXH64 covers the payload), no
//! content size (`raw_len` carries it), incompressible blocks stored uncompressed.

use lz4_flex::block::{self, DecompressError};
use xxhash_rust::xxh32::xxh32;

use crate::Lz4Error;

/// The LZ4 frame magic number, as it appears on the wire (little-endian 0x184D2204).
const MAGIC: [u8; 4] = 0x184D_2204_u32.to_le_bytes();
/// How far back an LZ4 match may reach, so how much earlier output a linked block may use.
const WINDOW: usize = 64 * 1024;
/// High bit of a block size word: the block is stored uncompressed.
const STORED_BIT: u32 = 0x8000_0000;

const FLG_VERSION_SHIFT: u32 = 6;
const FLG_BLOCK_INDEPENDENT: u8 = 0x20;
const FLG_BLOCK_CHECKSUM: u8 = 0x10;
const FLG_CONTENT_SIZE: u8 = 0x08;
const FLG_CONTENT_CHECKSUM: u8 = 0x04;
const FLG_RESERVED: u8 = 0x02;
const FLG_DICT_ID: u8 = 0x01;
const BD_RESERVED: u8 = 0x8F;

/// Block size of the frames we write (BD id 4); the smallest maximum, so any reader can
/// decode them with a 64 KiB window.
const ENCODE_BLOCK: usize = 64 * 1024;
/// FLG of the frames we write: version 01, independent blocks, nothing optional.
const ENCODE_FLG: u8 = 0x40 | FLG_BLOCK_INDEPENDENT;
/// BD of the frames we write: block maximum id 4 (64 KiB).
const ENCODE_BD: u8 = 4 << 4;
/// Magic, FLG, BD and the header checksum byte.
const ENCODE_HEADER_LEN: usize = 7;
const END_MARK_LEN: usize = 4;
const BLOCK_SIZE_LEN: usize = 4;

/// Why decompression failed, before the decoder attaches `raw_len` to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    /// The LZ4 frame itself is invalid.
    Lz4(Lz4Error),
    /// The data would not fit in `raw_len` bytes.
    Exceeded,
    /// The data is (or declares itself) `actual` bytes long instead of `raw_len`.
    Mismatch { actual: u64 },
}

impl From<Lz4Error> for Fail {
    fn from(err: Lz4Error) -> Fail {
        Fail::Lz4(err)
    }
}

/// The header checksum byte of an LZ4 frame descriptor (FLG up to, excluding, HC).
fn header_checksum(descriptor: &[u8]) -> u8 {
    // The second byte of the descriptor's XXH32: the shift leaves 24 bits, the cast keeps 8.
    (xxh32(descriptor, 0) >> 8) as u8
}

/// A cursor over the compressed payload; running off its end is `Lz4Error::Truncated`.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Lz4Error> {
        let end = self.pos.checked_add(n).ok_or(Lz4Error::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(Lz4Error::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Lz4Error> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, Lz4Error> {
        Ok(self.array::<1>()?[0])
    }

    fn u32_le(&mut self) -> Result<u32, Lz4Error> {
        self.array().map(u32::from_le_bytes)
    }

    fn u64_le(&mut self) -> Result<u64, Lz4Error> {
        self.array().map(u64::from_le_bytes)
    }
}

/// Decompresses the LZ4 frame `input` into `out`, which must come out exactly full.
///
/// `out.len()` is the frame's `raw_len`, already checked against the message limit; nothing
/// is ever written beyond it and nothing is allocated.
pub(crate) fn decompress_into(input: &[u8], out: &mut [u8]) -> Result<(), Fail> {
    let mut r = Reader { buf: input, pos: 0 };
    let magic = r.array::<4>()?;
    if magic != MAGIC {
        return Err(Lz4Error::BadMagic {
            magic: u32::from_le_bytes(magic),
        }
        .into());
    }
    let descriptor_start = r.pos;
    let flg = r.u8()?;
    let bd = r.u8()?;
    let version = flg >> FLG_VERSION_SHIFT;
    if version != 1 {
        return Err(Lz4Error::UnsupportedVersion { version }.into());
    }
    if flg & FLG_RESERVED != 0 || bd & BD_RESERVED != 0 {
        return Err(Lz4Error::ReservedBits { flg, bd }.into());
    }
    if flg & FLG_DICT_ID != 0 {
        return Err(Lz4Error::DictionaryUnsupported.into());
    }
    let block_max: usize = match (bd >> 4) & 0x07 {
        4 => 64 * 1024,
        5 => 256 * 1024,
        6 => 1024 * 1024,
        7 => 4 * 1024 * 1024,
        id => return Err(Lz4Error::BadBlockSizeId { id }.into()),
    };
    let content_size = if flg & FLG_CONTENT_SIZE != 0 {
        Some(r.u64_le()?)
    } else {
        None
    };
    let descriptor = &input[descriptor_start..r.pos];
    let expected = r.u8()?;
    let actual = header_checksum(descriptor);
    if expected != actual {
        return Err(Lz4Error::HeaderChecksum { expected, actual }.into());
    }
    if let Some(actual) = content_size {
        // usize -> u64 is lossless on every supported target.
        if actual != out.len() as u64 {
            return Err(Fail::Mismatch { actual });
        }
    }
    let linked = flg & FLG_BLOCK_INDEPENDENT == 0;

    // Invariant: pos <= out.len() (every write below stays inside `out`).
    let mut pos = 0_usize;
    loop {
        let word = r.u32_le()?;
        if word == 0 {
            break;
        }
        // The size has 31 bits; u32 -> usize is lossless on every supported target.
        let size = (word & !STORED_BIT) as usize;
        if size > block_max {
            return Err(Lz4Error::BlockTooLarge {
                size,
                max: block_max,
            }
            .into());
        }
        let data = r.take(size)?;
        if flg & FLG_BLOCK_CHECKSUM != 0 {
            let expected = r.u32_le()?;
            let actual = xxh32(data, 0);
            if expected != actual {
                return Err(Lz4Error::BlockChecksum { expected, actual }.into());
            }
        }
        let remaining = out.len() - pos;
        if word & STORED_BIT != 0 {
            if size > remaining {
                return Err(Fail::Exceeded);
            }
            out[pos..pos + size].copy_from_slice(data);
            pos += size;
            continue;
        }
        // A block may produce at most `block_max` bytes, and the frame at most `raw_len`.
        let limit = remaining.min(block_max);
        let (before, after) = out.split_at_mut(pos);
        let dst = &mut after[..limit];
        let result = if linked && pos > 0 {
            block::decompress_into_with_dict(data, dst, &before[pos.saturating_sub(WINDOW)..])
        } else {
            block::decompress_into(data, dst)
        };
        match result {
            Ok(written) => pos += written,
            Err(DecompressError::OutputTooSmall { expected, .. }) => {
                return Err(if limit == remaining {
                    Fail::Exceeded
                } else {
                    Lz4Error::BlockTooLarge {
                        size: expected,
                        max: block_max,
                    }
                    .into()
                });
            }
            Err(_) => return Err(Lz4Error::CorruptBlock.into()),
        }
    }
    if flg & FLG_CONTENT_CHECKSUM != 0 {
        let expected = r.u32_le()?;
        let actual = xxh32(&out[..pos], 0);
        if expected != actual {
            return Err(Lz4Error::ContentChecksum { expected, actual }.into());
        }
    }
    let trailing = input.len() - r.pos;
    if trailing != 0 {
        return Err(Lz4Error::TrailingBytes { count: trailing }.into());
    }
    if pos != out.len() {
        // usize -> u64 is lossless on every supported target.
        return Err(Fail::Mismatch { actual: pos as u64 });
    }
    Ok(())
}

/// The most bytes [`compress`] can write for `len` input bytes.
fn compress_bound(len: usize) -> usize {
    let full = len / ENCODE_BLOCK;
    let rest = len % ENCODE_BLOCK;
    let per_full = BLOCK_SIZE_LEN + block::get_maximum_output_size(ENCODE_BLOCK);
    let last = if rest == 0 {
        0
    } else {
        BLOCK_SIZE_LEN + block::get_maximum_output_size(rest)
    };
    ENCODE_HEADER_LEN + full * per_full + last + END_MARK_LEN
}

/// Compresses `input` into an LZ4 frame at the start of `scratch` (grown as needed, never
/// shrunk, so a reused scratch costs nothing) and returns its length, or `None` when the
/// frame would not be smaller than `input`.
pub(crate) fn compress(input: &[u8], scratch: &mut Vec<u8>) -> Option<usize> {
    let bound = compress_bound(input.len());
    if scratch.len() < bound {
        scratch.resize(bound, 0);
    }
    scratch[..4].copy_from_slice(&MAGIC);
    scratch[4] = ENCODE_FLG;
    scratch[5] = ENCODE_BD;
    scratch[6] = header_checksum(&[ENCODE_FLG, ENCODE_BD]);
    let mut pos = ENCODE_HEADER_LEN;
    for chunk in input.chunks(ENCODE_BLOCK) {
        let body = pos + BLOCK_SIZE_LEN;
        // The bound leaves room for the worst case of every block, so this cannot fail; if
        // it ever did, sending the payload uncompressed is still correct.
        let written = block::compress_into(chunk, &mut scratch[body..]).ok()?;
        // Both sizes are at most ENCODE_BLOCK (64 KiB), so the casts are lossless.
        let word = if written < chunk.len() {
            written as u32
        } else {
            scratch[body..body + chunk.len()].copy_from_slice(chunk);
            chunk.len() as u32 | STORED_BIT
        };
        scratch[pos..body].copy_from_slice(&word.to_le_bytes());
        pos = body + (word & !STORED_BIT) as usize;
        if pos >= input.len() {
            return None;
        }
    }
    scratch[pos..pos + END_MARK_LEN].fill(0);
    pos += END_MARK_LEN;
    (pos < input.len()).then_some(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compressible(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| b"sarlink rssi "[i % 13] ^ (i / 1000) as u8)
            .collect()
    }

    /// A small xorshift generator: incompressible bytes without a dependency.
    fn noise(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    fn round_trip(input: &[u8]) -> Option<usize> {
        let mut scratch = Vec::new();
        let len = compress(input, &mut scratch)?;
        let mut out = vec![0; input.len()];
        decompress_into(&scratch[..len], &mut out).unwrap();
        assert_eq!(out, input);
        Some(len)
    }

    #[test]
    fn compressible_data_round_trips_across_block_boundaries() {
        for len in [
            2000,
            ENCODE_BLOCK - 1,
            ENCODE_BLOCK,
            ENCODE_BLOCK + 1,
            3 * ENCODE_BLOCK + 17,
        ] {
            let len_out = round_trip(&compressible(len)).expect("compressible data compresses");
            assert!(len_out < len / 4, "{len} bytes compressed to {len_out}");
        }
    }

    #[test]
    fn incompressible_data_is_not_worth_compressing() {
        assert_eq!(round_trip(&noise(5000, 1)), None);
        assert_eq!(round_trip(&noise(200_000, 2)), None);
    }

    #[test]
    fn mostly_random_data_with_one_compressible_block_uses_stored_blocks() {
        let mut input = noise(ENCODE_BLOCK, 3);
        input.extend(compressible(2 * ENCODE_BLOCK));
        let mut scratch = Vec::new();
        let len = compress(&input, &mut scratch).expect("worth compressing overall");
        let first = u32::from_le_bytes(scratch[7..11].try_into().unwrap());
        assert_eq!(
            first,
            ENCODE_BLOCK as u32 | STORED_BIT,
            "random block is stored"
        );
        let mut out = vec![0; input.len()];
        decompress_into(&scratch[..len], &mut out).unwrap();
        assert_eq!(out, input);
    }

    #[test]
    fn header_checksum_matches_the_lz4_specification_example() {
        // The spec's golden vector (reference C library): FLG 0x68 BD 0x40 with content
        // size 1323 and header checksum 0x69.
        let descriptor = [0x68, 0x40, 0x2b, 0x05, 0, 0, 0, 0, 0, 0];
        assert_eq!(header_checksum(&descriptor), 0x69);
    }

    #[test]
    fn output_never_exceeds_the_given_slice() {
        let input = compressible(100_000);
        let mut scratch = Vec::new();
        let len = compress(&input, &mut scratch).unwrap();
        let mut out = vec![0; 99_999];
        assert_eq!(
            decompress_into(&scratch[..len], &mut out),
            Err(Fail::Exceeded)
        );
        let mut out = vec![0; 100_001];
        assert_eq!(
            decompress_into(&scratch[..len], &mut out),
            Err(Fail::Mismatch { actual: 100_000 })
        );
    }
}

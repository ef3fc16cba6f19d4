//! Tolerant, bounded MessagePack decoding of the messages.
//!
//! Tolerant where the spec says so: keys in any order, unknown keys skipped (whatever they
//! hold), any integer width whose value fits, float 32 or 64 for floats. Strict everywhere
//! else. Bounded: every length is checked against the remaining input before it is used,
//! nothing is allocated by a claimed length, and nesting is limited to [`MAX_DEPTH`].

use rmp::Marker;

use crate::error::{DecodeError, FieldProblem};
use crate::message::{
    Ack, Auth, Bye, Challenge, Cmd, CmdOp, Decision, Hello, Message, Ping, Pong, Reject, Rssi, Rx,
    Status, UnknownMessage, Welcome,
};
use crate::types::{
    AckCode, BeaconFields, ClipFraction, Db, Dbm, FrequencyHz, Mac, NodeName, Nonce, OffsetHz,
    ProtocolVersion, QualityScore, Role, RssiRecord, RssiUnits, SourceId, WireCode,
};

/// The deepest nesting of arrays and maps a payload may have; the message map is level 1,
/// an `rssi` message's records are level 3. Unknown keys may hold values down to this level.
pub const MAX_DEPTH: usize = 32;

/// The fewest bytes an encoded RSSI record can take (a map of the five required keys with
/// the smallest values): preallocation for `samples` is bounded by the remaining input
/// divided by this.
const MIN_RECORD_LEN: usize = 69;

/// Where a value sits, for error messages.
#[derive(Clone, Copy)]
struct Ctx {
    message: &'static str,
    field: &'static str,
}

impl Ctx {
    #[cold]
    fn problem(self, problem: FieldProblem) -> DecodeError {
        DecodeError::InvalidField {
            message: self.message,
            field: self.field,
            problem,
        }
    }

    #[cold]
    fn wrong_type(self, expected: &'static str, found: Marker) -> DecodeError {
        self.problem(FieldProblem::WrongType {
            expected,
            found: kind(found),
        })
    }

    #[cold]
    fn range(self, expected: &'static str) -> DecodeError {
        self.problem(FieldProblem::OutOfRange { expected })
    }

    #[cold]
    fn missing(self) -> DecodeError {
        DecodeError::MissingField {
            message: self.message,
            field: self.field,
        }
    }
}

/// Stores a field's value; a second value for the same key is an error.
#[inline]
fn set<T>(slot: &mut Option<T>, ctx: Ctx, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(ctx.problem(FieldProblem::Duplicate));
    }
    *slot = Some(value);
    Ok(())
}

/// A required field's value.
#[inline]
fn req<T>(slot: Option<T>, ctx: Ctx) -> Result<T, DecodeError> {
    slot.ok_or_else(|| ctx.missing())
}

/// The kind of value a marker starts, in words.
fn kind(m: Marker) -> &'static str {
    match m {
        Marker::FixPos(_)
        | Marker::FixNeg(_)
        | Marker::U8
        | Marker::U16
        | Marker::U32
        | Marker::U64
        | Marker::I8
        | Marker::I16
        | Marker::I32
        | Marker::I64 => "integer",
        Marker::F32 | Marker::F64 => "float",
        Marker::Null => "nil",
        Marker::True | Marker::False => "boolean",
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => "string",
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => "binary",
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => "array",
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => "map",
        Marker::FixExt1
        | Marker::FixExt2
        | Marker::FixExt4
        | Marker::FixExt8
        | Marker::FixExt16
        | Marker::Ext8
        | Marker::Ext16
        | Marker::Ext32 => "extension",
        Marker::Reserved => "reserved byte 0xc1",
    }
}

/// An integer as read: non-negative values as `u64`, negative ones as `i64`.
#[derive(Clone, Copy)]
enum Int {
    Pos(u64),
    Neg(i64),
}

/// A cursor over one payload.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[cold]
    fn truncated(&self, offset: usize, needed: u64) -> DecodeError {
        DecodeError::Truncated {
            offset,
            needed,
            available: self.remaining(),
        }
    }

    /// The next marker and the offset it sits at.
    #[inline]
    fn marker(&mut self) -> Result<(Marker, usize), DecodeError> {
        let at = self.pos;
        match self.buf.get(at) {
            Some(&b) => {
                self.pos = at + 1;
                Ok((Marker::from_u8(b), at))
            }
            None => Err(self.truncated(at, 1)),
        }
    }

    /// `n` bytes of the value starting at `at`, checked against the remaining input.
    #[inline]
    fn take(&mut self, at: usize, n: u64) -> Result<&'a [u8], DecodeError> {
        // `n <= remaining <= usize::MAX`, so the cast below is lossless.
        if n > self.remaining() as u64 {
            return Err(self.truncated(at, n));
        }
        let end = self.pos + n as usize;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    #[inline]
    fn array_of<const N: usize>(&mut self, at: usize) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(at, N as u64)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    #[inline]
    fn be8(&mut self, at: usize) -> Result<u8, DecodeError> {
        Ok(self.array_of::<1>(at)?[0])
    }

    #[inline]
    fn be16(&mut self, at: usize) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array_of(at)?))
    }

    #[inline]
    fn be32(&mut self, at: usize) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array_of(at)?))
    }

    #[inline]
    fn be64(&mut self, at: usize) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array_of(at)?))
    }

    /// Consumes `lit` if the input continues with exactly those bytes.
    #[inline(always)]
    fn literal<const N: usize>(&mut self, lit: &[u8; N]) -> Option<()> {
        let end = self.pos.checked_add(N)?;
        // Fixed-size comparison: compiles to a few loads, no memcmp call.
        let bytes: &[u8; N] = self.buf.get(self.pos..end)?.try_into().ok()?;
        if bytes == lit {
            self.pos = end;
            Some(())
        } else {
            None
        }
    }

    /// A float 32 value (marker and bits), or `None` without consuming anything useful.
    #[inline]
    fn raw_f32(&mut self) -> Option<f32> {
        let bytes = self.buf.get(self.pos..self.pos.checked_add(5)?)?;
        if bytes[0] != 0xca {
            return None;
        }
        self.pos += 5;
        Some(f32::from_bits(u32::from_be_bytes([
            bytes[1], bytes[2], bytes[3], bytes[4],
        ])))
    }

    /// The element count of an array or map header (its `marker` already read), checked
    /// against the remaining input: each element takes at least one byte.
    #[inline]
    fn container_len(
        &mut self,
        at: usize,
        m: Marker,
        level: usize,
        per_element: u64,
    ) -> Result<u32, DecodeError> {
        let len = match m {
            Marker::FixArray(n) | Marker::FixMap(n) => u32::from(n),
            Marker::Array16 | Marker::Map16 => u32::from(self.be16(at)?),
            Marker::Array32 | Marker::Map32 => self.be32(at)?,
            _ => unreachable!("container_len is only called with array and map markers"),
        };
        if level > MAX_DEPTH {
            return Err(DecodeError::TooDeep {
                max: MAX_DEPTH,
                offset: at,
            });
        }
        let needed = u64::from(len) * per_element;
        if needed > self.remaining() as u64 {
            return Err(self.truncated(at, needed));
        }
        Ok(len)
    }

    /// Skips one value of any type; `level` is the nesting level it would have as a container.
    fn skip(&mut self, level: usize) -> Result<(), DecodeError> {
        let (m, at) = self.marker()?;
        let data_len: u64 = match m {
            Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
                0
            }
            Marker::Reserved => return Err(DecodeError::ReservedByte { offset: at }),
            Marker::U8 | Marker::I8 => 1,
            Marker::U16 | Marker::I16 => 2,
            Marker::U32 | Marker::I32 | Marker::F32 => 4,
            Marker::U64 | Marker::I64 | Marker::F64 => 8,
            Marker::FixStr(n) => u64::from(n),
            Marker::Str8 | Marker::Bin8 => u64::from(self.be8(at)?),
            Marker::Str16 | Marker::Bin16 => u64::from(self.be16(at)?),
            Marker::Str32 | Marker::Bin32 => u64::from(self.be32(at)?),
            // An extension's data follows its one-byte type.
            Marker::FixExt1 => 2,
            Marker::FixExt2 => 3,
            Marker::FixExt4 => 5,
            Marker::FixExt8 => 9,
            Marker::FixExt16 => 17,
            Marker::Ext8 => 1 + u64::from(self.be8(at)?),
            Marker::Ext16 => 1 + u64::from(self.be16(at)?),
            Marker::Ext32 => 1 + u64::from(self.be32(at)?),
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                let len = self.container_len(at, m, level, 1)?;
                for _ in 0..len {
                    self.skip(level + 1)?;
                }
                return Ok(());
            }
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                let len = self.container_len(at, m, level, 2)?;
                for _ in 0..len {
                    self.skip(level + 1)?;
                    self.skip(level + 1)?;
                }
                return Ok(());
            }
        };
        self.take(at, data_len)?;
        Ok(())
    }

    /// A map key: must be a string. Its bytes are compared, not checked for UTF-8 (every
    /// key this crate knows is ASCII; unknown keys are skipped whatever they hold).
    #[inline]
    fn key(&mut self) -> Result<&'a [u8], DecodeError> {
        let (m, at) = self.marker()?;
        let len = match m {
            Marker::FixStr(n) => u64::from(n),
            Marker::Str8 => u64::from(self.be8(at)?),
            Marker::Str16 => u64::from(self.be16(at)?),
            Marker::Str32 => u64::from(self.be32(at)?),
            other => {
                return Err(DecodeError::NonStringKey {
                    offset: at,
                    found: kind(other),
                });
            }
        };
        self.take(at, len)
    }

    #[inline]
    fn int(&mut self, ctx: Ctx) -> Result<Int, DecodeError> {
        let (m, at) = self.marker()?;
        Ok(match m {
            Marker::FixPos(v) => Int::Pos(u64::from(v)),
            Marker::FixNeg(v) => Int::Neg(i64::from(v)),
            Marker::U8 => Int::Pos(u64::from(self.be8(at)?)),
            Marker::U16 => Int::Pos(u64::from(self.be16(at)?)),
            Marker::U32 => Int::Pos(u64::from(self.be32(at)?)),
            Marker::U64 => Int::Pos(self.be64(at)?),
            // Signed forms: reinterpret the big-endian bits as two's complement.
            Marker::I8 => signed(i64::from(self.be8(at)? as i8)),
            Marker::I16 => signed(i64::from(self.be16(at)? as i16)),
            Marker::I32 => signed(i64::from(self.be32(at)? as i32)),
            Marker::I64 => signed(self.be64(at)? as i64),
            other => return Err(ctx.wrong_type("integer", other)),
        })
    }

    /// An unsigned integer that must fit `T`; `expected` names the range for errors.
    #[inline]
    fn uint<T: TryFrom<u64>>(
        &mut self,
        ctx: Ctx,
        expected: &'static str,
    ) -> Result<T, DecodeError> {
        match self.int(ctx)? {
            Int::Pos(v) => T::try_from(v).map_err(|_| ctx.range(expected)),
            Int::Neg(_) => Err(ctx.range(expected)),
        }
    }

    #[inline]
    fn u64(&mut self, ctx: Ctx) -> Result<u64, DecodeError> {
        self.uint(ctx, "uint64")
    }

    #[inline]
    fn u32(&mut self, ctx: Ctx) -> Result<u32, DecodeError> {
        self.uint(ctx, "uint32")
    }

    #[inline]
    fn u16(&mut self, ctx: Ctx) -> Result<u16, DecodeError> {
        self.uint(ctx, "0-65535")
    }

    #[inline]
    fn u8(&mut self, ctx: Ctx) -> Result<u8, DecodeError> {
        self.uint(ctx, "uint8")
    }

    #[inline]
    fn i64(&mut self, ctx: Ctx) -> Result<i64, DecodeError> {
        match self.int(ctx)? {
            Int::Pos(v) => i64::try_from(v).map_err(|_| ctx.range("int64")),
            Int::Neg(v) => Ok(v),
        }
    }

    /// A float 32, or a float 64 rounded to the nearest f32 (finite values beyond f32's
    /// range become infinities).
    #[inline]
    fn f32(&mut self, ctx: Ctx) -> Result<f32, DecodeError> {
        let (m, at) = self.marker()?;
        match m {
            Marker::F32 => Ok(f32::from_bits(self.be32(at)?)),
            // Narrowing is the point: the field is an f32.
            Marker::F64 => Ok(f64::from_bits(self.be64(at)?) as f32),
            other => Err(ctx.wrong_type("float", other)),
        }
    }

    #[inline]
    fn bool(&mut self, ctx: Ctx) -> Result<bool, DecodeError> {
        match self.marker()?.0 {
            Marker::True => Ok(true),
            Marker::False => Ok(false),
            other => Err(ctx.wrong_type("boolean", other)),
        }
    }

    #[inline]
    fn str(&mut self, ctx: Ctx) -> Result<&'a str, DecodeError> {
        let (m, at) = self.marker()?;
        let len = match m {
            Marker::FixStr(n) => u64::from(n),
            Marker::Str8 => u64::from(self.be8(at)?),
            Marker::Str16 => u64::from(self.be16(at)?),
            Marker::Str32 => u64::from(self.be32(at)?),
            other => return Err(ctx.wrong_type("string", other)),
        };
        let bytes = self.take(at, len)?;
        std::str::from_utf8(bytes).map_err(|_| ctx.problem(FieldProblem::NotUtf8))
    }

    fn bin(&mut self, ctx: Ctx) -> Result<&'a [u8], DecodeError> {
        let (m, at) = self.marker()?;
        let len = match m {
            Marker::Bin8 => u64::from(self.be8(at)?),
            Marker::Bin16 => u64::from(self.be16(at)?),
            Marker::Bin32 => u64::from(self.be32(at)?),
            other => return Err(ctx.wrong_type("binary", other)),
        };
        self.take(at, len)
    }

    /// An array header at nesting `level`.
    #[inline]
    fn array(&mut self, ctx: Ctx, level: usize) -> Result<u32, DecodeError> {
        let (m, at) = self.marker()?;
        match m {
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                self.container_len(at, m, level, 1)
            }
            other => Err(ctx.wrong_type("array", other)),
        }
    }

    /// A map header at nesting `level`.
    #[inline]
    fn map(&mut self, ctx: Ctx, level: usize) -> Result<u32, DecodeError> {
        let (m, at) = self.marker()?;
        match m {
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                self.container_len(at, m, level, 2)
            }
            other => Err(ctx.wrong_type("map", other)),
        }
    }

    fn bytes16(&mut self, ctx: Ctx) -> Result<[u8; 16], DecodeError> {
        self.bin(ctx)?.try_into().map_err(|_| ctx.range("16 bytes"))
    }

    fn bytes32(&mut self, ctx: Ctx) -> Result<[u8; 32], DecodeError> {
        self.bin(ctx)?.try_into().map_err(|_| ctx.range("32 bytes"))
    }

    fn string(&mut self, ctx: Ctx) -> Result<String, DecodeError> {
        Ok(self.str(ctx)?.to_owned())
    }

    fn node(&mut self, ctx: Ctx) -> Result<NodeName, DecodeError> {
        NodeName::new(self.str(ctx)?).map_err(|_| ctx.range("1-64 bytes"))
    }

    fn version(&mut self, ctx: Ctx) -> Result<ProtocolVersion, DecodeError> {
        if self.array(ctx, 2)? != 2 {
            return Err(ctx.range("[major, minor]"));
        }
        Ok(ProtocolVersion {
            major: self.u16(ctx)?,
            minor: self.u16(ctx)?,
        })
    }

    fn str_list(&mut self, ctx: Ctx) -> Result<Vec<String>, DecodeError> {
        let len = self.array(ctx, 2)?;
        // No preallocation by the claimed length: the list grows with what is really there.
        let mut list = Vec::new();
        for _ in 0..len {
            list.push(self.string(ctx)?);
        }
        Ok(list)
    }

    fn dbm(&mut self, ctx: Ctx) -> Result<Dbm, DecodeError> {
        Dbm::new(self.f32(ctx)?).map_err(|_| ctx.range("finite"))
    }

    /// Visits the `len` entries of a message map. `type` was found by the first pass; here a
    /// second `type` is a duplicate. Keys `field` does not know (it returns `Ok(false)`) are
    /// skipped with their values.
    #[inline]
    fn fields(
        &mut self,
        len: u32,
        mut field: impl FnMut(&mut Self, &'a [u8]) -> Result<bool, DecodeError>,
    ) -> Result<(), DecodeError> {
        let mut seen_type = false;
        for _ in 0..len {
            let key = self.key()?;
            if key == b"type" {
                if seen_type {
                    return Err(TYPE.problem(FieldProblem::Duplicate));
                }
                seen_type = true;
                self.skip(2)?;
            } else if !field(self, key)? {
                self.skip(2)?;
            }
        }
        Ok(())
    }
}

#[inline]
fn signed(v: i64) -> Int {
    match u64::try_from(v) {
        Ok(u) => Int::Pos(u),
        Err(_) => Int::Neg(v),
    }
}

const TYPE: Ctx = Ctx {
    message: "payload",
    field: "type",
};

impl Message {
    /// Decodes one payload (exactly one MessagePack map; nothing may follow it).
    ///
    /// Tolerant where the spec says so: keys in any order, unknown keys ignored whatever
    /// they hold, any integer width whose value fits, float 32 or 64 for floats, and an
    /// unknown `type` returned as [`Message::Unknown`] for the caller to count. Strict
    /// elsewhere, see the errors.
    ///
    /// Hostile input is bounded: lengths are checked against the remaining input before use,
    /// nothing is allocated by a claimed length, nesting stops at [`MAX_DEPTH`].
    ///
    /// # Errors
    ///
    /// - [`DecodeError::MissingField`] for a missing required key (`type` included);
    /// - [`DecodeError::InvalidField`] for a value of the wrong type, out of range (quality
    ///   above 100, non-finite dBm, frequency 0, node name not 1-64 bytes, nonce not 16 bytes,
    ///   MAC not 32, `rssi` without samples, unknown `role`, a 1.1 record key out of range:
    ///   `clip_fraction` outside 0-1, a non-finite `pulse_dbm`, `last_pulse_dbm` or
    ///   `offset_hz`, a count or duration beyond uint32, ...), not UTF-8, or a known key given
    ///   twice;
    /// - [`DecodeError::NotAMap`], [`DecodeError::NonStringKey`],
    ///   [`DecodeError::Truncated`], [`DecodeError::TrailingBytes`],
    ///   [`DecodeError::TooDeep`], [`DecodeError::ReservedByte`] for malformed MessagePack.
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_schema::{DecodeError, Message, MessageKind};
    ///
    /// // {"type": "rx", "seq": 300, "extra": [1, 2]}: the unknown key is ignored.
    /// let payload = b"\x83\xa4type\xa2rx\xa3seq\xcd\x01\x2c\xa5extra\x92\x01\x02";
    /// let msg = Message::decode(payload)?;
    /// assert_eq!(msg.kind(), MessageKind::Rx);
    ///
    /// // {"type": "rx"}: `seq` is required.
    /// let err = Message::decode(b"\x81\xa4type\xa2rx").unwrap_err();
    /// assert_eq!(err.field(), Some("seq"));
    /// # Ok::<(), DecodeError>(())
    /// ```
    pub fn decode(payload: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader {
            buf: payload,
            pos: 0,
        };
        let (m, at) = r
            .marker()
            .map_err(|_| DecodeError::NotAMap { found: "nothing" })?;
        let len = match m {
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => r.container_len(at, m, 1, 2)?,
            other => return Err(DecodeError::NotAMap { found: kind(other) }),
        };
        let body = r.pos;
        let type_name = find_type(&mut r, len)?;
        r.pos = body;
        let msg = match type_name {
            b"rssi" => Message::Rssi(rssi(&mut r, len)?),
            b"rx" => {
                let c = |field| Ctx {
                    message: "rx",
                    field,
                };
                let mut seq = None;
                r.fields(len, |r, key| match key {
                    b"seq" => set(&mut seq, c("seq"), r.u64(c("seq"))?).map(|()| true),
                    _ => Ok(false),
                })?;
                Message::Rx(Rx {
                    seq: req(seq, c("seq"))?,
                })
            }
            b"ping" => {
                let (seq, t_ns) = ping_pong(&mut r, len, "ping")?;
                Message::Ping(Ping { seq, t_ns })
            }
            b"pong" => {
                let (seq, t_ns) = ping_pong(&mut r, len, "pong")?;
                Message::Pong(Pong { seq, t_ns })
            }
            b"status" => Message::Status(status(&mut r, len)?),
            b"decision" => Message::Decision(decision(&mut r, len)?),
            b"cmd" => Message::Cmd(cmd(&mut r, len)?),
            b"ack" => Message::Ack(ack(&mut r, len)?),
            b"hello" => Message::Hello(hello(&mut r, len)?),
            b"challenge" => {
                let c = |field| Ctx {
                    message: "challenge",
                    field,
                };
                let mut nonce = None;
                r.fields(len, |r, key| match key {
                    b"nonce" => set(&mut nonce, c("nonce"), r.bytes16(c("nonce"))?).map(|()| true),
                    _ => Ok(false),
                })?;
                Message::Challenge(Challenge {
                    nonce: Nonce(req(nonce, c("nonce"))?),
                })
            }
            b"auth" => {
                let c = |field| Ctx {
                    message: "auth",
                    field,
                };
                let mut mac = None;
                r.fields(len, |r, key| match key {
                    b"mac" => set(&mut mac, c("mac"), r.bytes32(c("mac"))?).map(|()| true),
                    _ => Ok(false),
                })?;
                Message::Auth(Auth {
                    mac: Mac(req(mac, c("mac"))?),
                })
            }
            b"welcome" => Message::Welcome(welcome(&mut r, len)?),
            b"reject" => {
                let (code, reason) = code_reason(&mut r, len, "reject")?;
                Message::Reject(Reject { code, reason })
            }
            b"bye" => {
                let (code, reason) = code_reason(&mut r, len, "bye")?;
                Message::Bye(Bye { code, reason })
            }
            other => {
                let type_name = std::str::from_utf8(other)
                    .map_err(|_| TYPE.problem(FieldProblem::NotUtf8))?
                    .to_owned();
                r.fields(len, |_, _| Ok(false))?;
                Message::Unknown(UnknownMessage { type_name })
            }
        };
        match r.remaining() {
            0 => Ok(msg),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

/// First pass: the value of `type`, wherever it is in the map (canonical payloads have it
/// first, so this usually reads one entry).
/// The bytes are returned unchecked: known types are ASCII and compared as bytes; an unknown
/// one is checked for UTF-8 when it is kept.
#[inline]
fn find_type<'a>(r: &mut Reader<'a>, len: u32) -> Result<&'a [u8], DecodeError> {
    for _ in 0..len {
        if r.key()? == b"type" {
            let (m, at) = r.marker()?;
            let len = match m {
                Marker::FixStr(n) => u64::from(n),
                Marker::Str8 => u64::from(r.be8(at)?),
                Marker::Str16 => u64::from(r.be16(at)?),
                Marker::Str32 => u64::from(r.be32(at)?),
                other => return Err(TYPE.wrong_type("string", other)),
            };
            return r.take(at, len);
        }
        r.skip(2)?;
    }
    Err(TYPE.missing())
}

/// One record: the canonical layout through a fast path, anything else (and every error)
/// through the general one.
#[inline]
fn record(r: &mut Reader<'_>) -> Result<RssiRecord, DecodeError> {
    let start = r.pos;
    if let Some(rec) = canonical_record(r) {
        return Ok(rec);
    }
    r.pos = start;
    any_record(r)
}

/// A record exactly as this crate encodes it (keys in the spec's order, float 32), or `None`
/// to fall back to [`any_record`], which also reports the errors.
#[inline]
fn canonical_record(r: &mut Reader<'_>) -> Option<RssiRecord> {
    const CTX: Ctx = Ctx {
        message: "rssi.samples",
        field: "",
    };
    let len = match *r.buf.get(r.pos)? {
        0x85 => 5,
        0x86 => 6,
        0x87 => 7,
        _ => return None,
    };
    r.pos += 1;
    r.literal(b"\xactimestamp_ns")?;
    let timestamp_ns = r.i64(CTX).ok()?;
    r.literal(b"\xa8rssi_dbm")?;
    let rssi_dbm = Dbm::new(r.raw_f32()?).ok()?;
    r.literal(b"\xacfrequency_hz")?;
    let frequency_hz = FrequencyHz::new(r.u64(CTX).ok()?).ok()?;
    r.literal(b"\xa9source_id")?;
    let source_id = SourceId::new(r.u8(CTX).ok()?);
    r.literal(b"\xadquality_score")?;
    let quality_score = QualityScore::new(r.u8(CTX).ok()?).ok()?;
    let (mut snr_db, mut noise_dbm) = (None, None);
    let mut rest = len - 5;
    if rest > 0 && r.literal(b"\xa6snr_db").is_some() {
        snr_db = Some(Db::new(r.raw_f32()?).ok()?);
        rest -= 1;
    }
    if rest > 0 {
        r.literal(b"\xa9noise_dbm")?;
        noise_dbm = Some(Dbm::new(r.raw_f32()?).ok()?);
        rest -= 1;
    }
    (rest == 0).then_some(RssiRecord {
        timestamp_ns,
        rssi_dbm,
        frequency_hz,
        source_id,
        quality_score,
        snr_db,
        noise_dbm,
        beacon: BeaconFields::NONE,
    })
}

/// A record with keys in any order, unknown keys, float 64 values.
fn any_record(r: &mut Reader<'_>) -> Result<RssiRecord, DecodeError> {
    let c = |field| Ctx {
        message: "rssi.samples",
        field,
    };
    let len = r.map(
        Ctx {
            message: "rssi",
            field: "samples",
        },
        3,
    )?;
    let (mut ts, mut rssi, mut freq, mut source, mut quality, mut snr, mut noise) =
        (None, None, None, None, None, None, None);
    let mut beacon = BeaconFields::NONE;
    for _ in 0..len {
        let key = r.key()?;
        match key {
            b"timestamp_ns" => set(&mut ts, c("timestamp_ns"), r.i64(c("timestamp_ns"))?)?,
            b"rssi_dbm" => set(&mut rssi, c("rssi_dbm"), r.dbm(c("rssi_dbm"))?)?,
            b"frequency_hz" => {
                let ctx = c("frequency_hz");
                let hz = FrequencyHz::new(r.u64(ctx)?).map_err(|_| ctx.range("> 0"))?;
                set(&mut freq, ctx, hz)?;
            }
            b"source_id" => {
                set(
                    &mut source,
                    c("source_id"),
                    SourceId::new(r.u8(c("source_id"))?),
                )?;
            }
            b"quality_score" => {
                let ctx = c("quality_score");
                let q = QualityScore::new(r.uint(ctx, "0-100")?).map_err(|_| ctx.range("0-100"))?;
                set(&mut quality, ctx, q)?;
            }
            b"snr_db" => {
                let ctx = c("snr_db");
                let snr_db = Db::new(r.f32(ctx)?).map_err(|_| ctx.range("finite"))?;
                set(&mut snr, ctx, snr_db)?;
            }
            b"noise_dbm" => set(&mut noise, c("noise_dbm"), r.dbm(c("noise_dbm"))?)?,
            _ => {
                if !beacon_key(r, key, &mut beacon)? {
                    r.skip(4)?;
                }
            }
        }
    }
    Ok(RssiRecord {
        timestamp_ns: req(ts, c("timestamp_ns"))?,
        rssi_dbm: req(rssi, c("rssi_dbm"))?,
        frequency_hz: req(freq, c("frequency_hz"))?,
        source_id: req(source, c("source_id"))?,
        quality_score: req(quality, c("quality_score"))?,
        snr_db: snr,
        noise_dbm: noise,
        beacon,
    })
}

/// Reads a protocol 1.1 beacon key of a record into `b`; `Ok(false)` when `key` is not one.
fn beacon_key(r: &mut Reader<'_>, key: &[u8], b: &mut BeaconFields) -> Result<bool, DecodeError> {
    let c = |field| Ctx {
        message: "rssi.samples",
        field,
    };
    match key {
        b"detected" => set(&mut b.detected, c("detected"), r.bool(c("detected"))?)?,
        b"pulses" => set(&mut b.pulses, c("pulses"), r.u32(c("pulses"))?)?,
        b"pulse_dbm" => set(&mut b.pulse_dbm, c("pulse_dbm"), r.dbm(c("pulse_dbm"))?)?,
        b"pulse_width_us" => {
            let ctx = c("pulse_width_us");
            set(&mut b.pulse_width_us, ctx, r.u32(ctx)?)?;
        }
        b"pulse_start_ns" => {
            let ctx = c("pulse_start_ns");
            set(&mut b.pulse_start_ns, ctx, r.i64(ctx)?)?;
        }
        b"pulse_interval_ms" => {
            let ctx = c("pulse_interval_ms");
            set(&mut b.pulse_interval_ms, ctx, r.u32(ctx)?)?;
        }
        b"last_pulse_dbm" => {
            let ctx = c("last_pulse_dbm");
            set(&mut b.last_pulse_dbm, ctx, r.dbm(ctx)?)?;
        }
        b"last_pulse_age_ms" => {
            let ctx = c("last_pulse_age_ms");
            set(&mut b.last_pulse_age_ms, ctx, r.u32(ctx)?)?;
        }
        b"burst" => set(&mut b.burst, c("burst"), r.bool(c("burst"))?)?,
        b"offset_hz" => {
            let ctx = c("offset_hz");
            let hz = OffsetHz::new(r.f32(ctx)?).map_err(|_| ctx.range("finite"))?;
            set(&mut b.offset_hz, ctx, hz)?;
        }
        b"clip_fraction" => {
            let ctx = c("clip_fraction");
            let f = ClipFraction::new(r.f32(ctx)?).map_err(|_| ctx.range("0-1"))?;
            set(&mut b.clip_fraction, ctx, f)?;
        }
        b"smoothing" => {
            let ctx = c("smoothing");
            let alpha = r.f32(ctx)?;
            if !(alpha > 0.0 && alpha <= 1.0) {
                return Err(ctx.range("above 0, at most 1"));
            }
            set(&mut b.smoothing, ctx, alpha)?;
        }
        b"stale" => set(&mut b.stale, c("stale"), r.bool(c("stale"))?)?,
        b"lat_e7" => {
            let ctx = c("lat_e7");
            let v = r.i64(ctx)?;
            if !(-900_000_000..=900_000_000).contains(&v) {
                return Err(ctx.range("-900000000 to 900000000"));
            }
            // In range, so it fits an i32.
            set(&mut b.lat_e7, ctx, v as i32)?;
        }
        b"lon_e7" => {
            let ctx = c("lon_e7");
            let v = r.i64(ctx)?;
            if !(-1_800_000_000..=1_800_000_000).contains(&v) {
                return Err(ctx.range("-1800000000 to 1800000000"));
            }
            // In range, so it fits an i32.
            set(&mut b.lon_e7, ctx, v as i32)?;
        }
        b"alt_m" => {
            let ctx = c("alt_m");
            let v = r.f32(ctx)?;
            if !v.is_finite() {
                return Err(ctx.range("finite"));
            }
            set(&mut b.alt_m, ctx, v)?;
        }
        b"heading_deg" => {
            let ctx = c("heading_deg");
            let v = r.f32(ctx)?;
            if !(0.0..360.0).contains(&v) {
                return Err(ctx.range("0 to below 360"));
            }
            set(&mut b.heading_deg, ctx, v)?;
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Room to reserve for `claimed` records when `remaining` bytes are left: never more than
/// the remaining input can hold, whatever the claim.
fn samples_capacity(claimed: u32, remaining: usize) -> usize {
    // u32 -> usize is lossless on the 32- and 64-bit targets Rust supports for this crate.
    (claimed as usize).min(remaining / MIN_RECORD_LEN)
}

fn rssi(r: &mut Reader<'_>, len: u32) -> Result<Rssi, DecodeError> {
    let c = |field| Ctx {
        message: "rssi",
        field,
    };
    let (mut seq, mut samples) = (None, None);
    r.fields(len, |r, key| {
        match key {
            b"seq" => set(&mut seq, c("seq"), r.u64(c("seq"))?)?,
            b"samples" => {
                let ctx = c("samples");
                let n = r.array(ctx, 2)?;
                if n == 0 {
                    return Err(ctx.range("1 or more records"));
                }
                let mut list = Vec::with_capacity(samples_capacity(n, r.remaining()));
                for _ in 0..n {
                    list.push(record(r)?);
                }
                set(&mut samples, ctx, list)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    let seq = req(seq, c("seq"))?;
    let samples = req(samples, c("samples"))?;
    // Not empty: checked above.
    Rssi::new(seq, samples).map_err(|_| c("samples").range("1 or more records"))
}

fn ping_pong(
    r: &mut Reader<'_>,
    len: u32,
    message: &'static str,
) -> Result<(u32, i64), DecodeError> {
    let c = |field| Ctx { message, field };
    let (mut seq, mut t_ns) = (None, None);
    r.fields(len, |r, key| {
        match key {
            b"seq" => set(&mut seq, c("seq"), r.u32(c("seq"))?)?,
            b"t_ns" => set(&mut t_ns, c("t_ns"), r.i64(c("t_ns"))?)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((req(seq, c("seq"))?, req(t_ns, c("t_ns"))?))
}

fn code_reason(
    r: &mut Reader<'_>,
    len: u32,
    message: &'static str,
) -> Result<(WireCode, String), DecodeError> {
    let c = |field| Ctx { message, field };
    let (mut code, mut reason) = (None, None);
    r.fields(len, |r, key| {
        match key {
            b"code" => set(&mut code, c("code"), WireCode::from_wire(r.str(c("code"))?))?,
            b"reason" => set(&mut reason, c("reason"), r.string(c("reason"))?)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok((req(code, c("code"))?, req(reason, c("reason"))?))
}

fn hello(r: &mut Reader<'_>, len: u32) -> Result<Hello, DecodeError> {
    let c = |field| Ctx {
        message: "hello",
        field,
    };
    let mut proto = false;
    let (mut version, mut role, mut node, mut stream) = (None, None, None, None);
    let (mut compression, mut max_message, mut nonce, mut units) = (None, None, None, None);
    r.fields(len, |r, key| {
        match key {
            b"proto" => {
                let ctx = c("proto");
                if r.str(ctx)? != "sarlink" {
                    return Err(ctx.range("\"sarlink\""));
                }
                if proto {
                    return Err(ctx.problem(FieldProblem::Duplicate));
                }
                proto = true;
            }
            b"version" => set(&mut version, c("version"), r.version(c("version"))?)?,
            b"role" => {
                let ctx = c("role");
                let value = Role::from_wire(r.str(ctx)?)
                    .ok_or_else(|| ctx.range("\"drone\", \"ground\" or \"observer\""))?;
                set(&mut role, ctx, value)?;
            }
            b"node" => set(&mut node, c("node"), r.node(c("node"))?)?,
            b"stream" => set(&mut stream, c("stream"), r.u64(c("stream"))?)?,
            b"compression" => {
                set(
                    &mut compression,
                    c("compression"),
                    r.str_list(c("compression"))?,
                )?;
            }
            b"max_message" => set(&mut max_message, c("max_message"), r.u32(c("max_message"))?)?,
            b"nonce" => set(&mut nonce, c("nonce"), Nonce(r.bytes16(c("nonce"))?))?,
            b"rssi_units" => {
                let ctx = c("rssi_units");
                let value = RssiUnits::from_wire(r.str(ctx)?)
                    .ok_or_else(|| ctx.range("\"dbm\" or \"dbfs\""))?;
                set(&mut units, ctx, value)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    if !proto {
        return Err(c("proto").missing());
    }
    Ok(Hello {
        version: req(version, c("version"))?,
        role: req(role, c("role"))?,
        node: req(node, c("node"))?,
        stream: req(stream, c("stream"))?,
        compression: req(compression, c("compression"))?,
        max_message: req(max_message, c("max_message"))?,
        nonce: req(nonce, c("nonce"))?,
        rssi_units: units,
    })
}

fn welcome(r: &mut Reader<'_>, len: u32) -> Result<Welcome, DecodeError> {
    let c = |field| Ctx {
        message: "welcome",
        field,
    };
    let (mut version, mut node, mut compression) = (None, None, None);
    let (mut max_message, mut resume_seq, mut mac, mut units) = (None, None, None, None);
    r.fields(len, |r, key| {
        match key {
            b"version" => set(&mut version, c("version"), r.version(c("version"))?)?,
            b"node" => set(&mut node, c("node"), r.node(c("node"))?)?,
            b"compression" => {
                set(
                    &mut compression,
                    c("compression"),
                    r.str_list(c("compression"))?,
                )?;
            }
            b"max_message" => set(&mut max_message, c("max_message"), r.u32(c("max_message"))?)?,
            b"resume_seq" => set(&mut resume_seq, c("resume_seq"), r.u64(c("resume_seq"))?)?,
            b"mac" => set(&mut mac, c("mac"), Mac(r.bytes32(c("mac"))?))?,
            b"rssi_units" => {
                let ctx = c("rssi_units");
                let value = RssiUnits::from_wire(r.str(ctx)?)
                    .ok_or_else(|| ctx.range("\"dbm\" or \"dbfs\""))?;
                set(&mut units, ctx, value)?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(Welcome {
        version: req(version, c("version"))?,
        node: req(node, c("node"))?,
        compression: req(compression, c("compression"))?,
        max_message: req(max_message, c("max_message"))?,
        resume_seq: req(resume_seq, c("resume_seq"))?,
        mac,
        rssi_units: units,
    })
}

fn cmd(r: &mut Reader<'_>, len: u32) -> Result<Cmd, DecodeError> {
    let c = |field| Ctx {
        message: "cmd",
        field,
    };
    let (mut id, mut op, mut target) = (None, None, None);
    // The op's own keys are read once the op is known (it may come after them): until then
    // only where their values start is kept.
    let (mut frequency_hz, mut gain_db, mut hz, mut on) = (None, None, None, None);
    let buf = r.buf;
    r.fields(len, |r, key| {
        let slot = match key {
            b"id" => return set(&mut id, c("id"), r.u32(c("id"))?).map(|()| true),
            b"op" => return set(&mut op, c("op"), r.str(c("op"))?).map(|()| true),
            b"target" => return set(&mut target, c("target"), r.node(c("target"))?).map(|()| true),
            b"frequency_hz" => (&mut frequency_hz, "frequency_hz"),
            b"gain_db" => (&mut gain_db, "gain_db"),
            b"hz" => (&mut hz, "hz"),
            b"on" => (&mut on, "on"),
            _ => return Ok(false),
        };
        set(slot.0, c(slot.1), r.pos)?;
        r.skip(2)?;
        Ok(true)
    })?;
    let id = req(id, c("id"))?;
    let op_name = req(op, c("op"))?;
    // Reads an op key from where its value starts (inside the payload, already skipped once).
    let at = |slot: Option<usize>, field: &'static str| -> Result<Reader<'_>, DecodeError> {
        let pos = req(slot, c(field))?;
        Ok(Reader { buf, pos })
    };
    let op = match op_name {
        "tune" => {
            let ctx = c("frequency_hz");
            let hz = at(frequency_hz, "frequency_hz")?.u64(ctx)?;
            CmdOp::Tune {
                frequency_hz: FrequencyHz::new(hz).map_err(|_| ctx.range("> 0"))?,
            }
        }
        "gain" => CmdOp::Gain {
            gain_db: at(gain_db, "gain_db")?.f32(c("gain_db"))?,
        },
        "gain_auto" => CmdOp::GainAuto,
        "rate" => CmdOp::Rate {
            hz: at(hz, "hz")?.f32(c("hz"))?,
        },
        "stream" => CmdOp::Stream {
            on: at(on, "on")?.bool(c("on"))?,
        },
        other => CmdOp::Unknown {
            op: other.to_owned(),
        },
    };
    Ok(Cmd { id, target, op })
}

fn ack(r: &mut Reader<'_>, len: u32) -> Result<Ack, DecodeError> {
    let c = |field| Ctx {
        message: "ack",
        field,
    };
    let (mut id, mut ok, mut code, mut reason) = (None, None, None, None);
    r.fields(len, |r, key| {
        match key {
            b"id" => set(&mut id, c("id"), r.u32(c("id"))?)?,
            b"ok" => set(&mut ok, c("ok"), r.bool(c("ok"))?)?,
            b"code" => set(&mut code, c("code"), AckCode::from_wire(r.str(c("code"))?))?,
            b"reason" => set(&mut reason, c("reason"), r.string(c("reason"))?)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(Ack {
        id: req(id, c("id"))?,
        ok: req(ok, c("ok"))?,
        code,
        reason,
    })
}

fn status(r: &mut Reader<'_>, len: u32) -> Result<Status, DecodeError> {
    let c = |field| Ctx {
        message: "status",
        field,
    };
    let (mut t_ns, mut cpu_pct, mut mem_bytes, mut temp_c, mut level) =
        (None, None, None, None, None);
    let (mut disabled, mut dropped, mut queued, mut rate_hz) = (None, None, None, None);
    let (mut source, mut data_age_ms, mut alerts) = (None, None, None);
    r.fields(len, |r, key| {
        match key {
            b"t_ns" => set(&mut t_ns, c("t_ns"), r.i64(c("t_ns"))?)?,
            b"cpu_pct" => set(&mut cpu_pct, c("cpu_pct"), r.f32(c("cpu_pct"))?)?,
            b"mem_bytes" => set(&mut mem_bytes, c("mem_bytes"), r.u64(c("mem_bytes"))?)?,
            b"temp_c" => set(&mut temp_c, c("temp_c"), r.f32(c("temp_c"))?)?,
            b"level" => set(&mut level, c("level"), r.string(c("level"))?)?,
            b"disabled" => set(&mut disabled, c("disabled"), r.str_list(c("disabled"))?)?,
            b"dropped" => set(&mut dropped, c("dropped"), r.u64(c("dropped"))?)?,
            b"queued" => set(&mut queued, c("queued"), r.u32(c("queued"))?)?,
            b"rate_hz" => set(&mut rate_hz, c("rate_hz"), r.f32(c("rate_hz"))?)?,
            b"source" => set(&mut source, c("source"), r.string(c("source"))?)?,
            b"data_age_ms" => set(&mut data_age_ms, c("data_age_ms"), r.u32(c("data_age_ms"))?)?,
            b"alerts" => set(&mut alerts, c("alerts"), r.str_list(c("alerts"))?)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(Status {
        t_ns: req(t_ns, c("t_ns"))?,
        cpu_pct: req(cpu_pct, c("cpu_pct"))?,
        mem_bytes: req(mem_bytes, c("mem_bytes"))?,
        temp_c,
        level: req(level, c("level"))?,
        disabled: req(disabled, c("disabled"))?,
        dropped: req(dropped, c("dropped"))?,
        queued: req(queued, c("queued"))?,
        rate_hz: req(rate_hz, c("rate_hz"))?,
        source,
        data_age_ms,
        alerts: alerts.unwrap_or_default(),
    })
}

fn decision(r: &mut Reader<'_>, len: u32) -> Result<Decision, DecodeError> {
    let c = |field| Ctx {
        message: "decision",
        field,
    };
    let (mut t_ns, mut source_id, mut fallback, mut reason) = (None, None, None, None);
    let (mut score_drone, mut score_ground) = (None, None);
    r.fields(len, |r, key| {
        match key {
            b"t_ns" => set(&mut t_ns, c("t_ns"), r.i64(c("t_ns"))?)?,
            b"source_id" => {
                set(
                    &mut source_id,
                    c("source_id"),
                    SourceId::new(r.u8(c("source_id"))?),
                )?;
            }
            b"fallback" => set(&mut fallback, c("fallback"), r.bool(c("fallback"))?)?,
            b"reason" => set(&mut reason, c("reason"), r.string(c("reason"))?)?,
            b"score_drone" => set(&mut score_drone, c("score_drone"), r.f32(c("score_drone"))?)?,
            b"score_ground" => {
                set(
                    &mut score_ground,
                    c("score_ground"),
                    r.f32(c("score_ground"))?,
                )?;
            }
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(Decision {
        t_ns: req(t_ns, c("t_ns"))?,
        source_id: req(source_id, c("source_id"))?,
        fallback: req(fallback, c("fallback"))?,
        reason: req(reason, c("reason"))?,
        score_drone,
        score_ground,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::Enc;

    #[test]
    fn min_record_len_is_the_smallest_valid_record() {
        let smallest = RssiRecord {
            timestamp_ns: 0,
            rssi_dbm: Dbm::new(0.0).unwrap(),
            frequency_hz: FrequencyHz::new(1).unwrap(),
            source_id: SourceId::DRONE,
            quality_score: QualityScore::new(0).unwrap(),
            snr_db: None,
            noise_dbm: None,
            beacon: BeaconFields::NONE,
        };
        let mut buf = Vec::new();
        Enc(&mut buf).record(&smallest);
        assert_eq!(buf.len(), MIN_RECORD_LEN);
    }

    #[test]
    fn samples_capacity_is_bounded_by_the_input_not_the_claim() {
        assert_eq!(
            samples_capacity(u32::MAX, 16 << 20),
            (16 << 20) / MIN_RECORD_LEN
        );
        assert_eq!(samples_capacity(1000, 1069), 15);
        assert_eq!(samples_capacity(3, 1 << 20), 3);
        assert_eq!(samples_capacity(5, 68), 0);
    }

    #[test]
    fn fast_and_general_record_paths_agree() {
        let record = RssiRecord {
            timestamp_ns: -7,
            rssi_dbm: Dbm::new(-71.5).unwrap(),
            frequency_hz: FrequencyHz::new(u64::MAX).unwrap(),
            source_id: SourceId::new(200),
            quality_score: QualityScore::MAX,
            snr_db: None,
            noise_dbm: Some(Dbm::new(-90.0).unwrap()),
            beacon: BeaconFields::NONE,
        };
        let mut buf = Vec::new();
        Enc(&mut buf).record(&record);
        let mut fast = Reader { buf: &buf, pos: 0 };
        assert_eq!(canonical_record(&mut fast), Some(record));
        assert_eq!(fast.pos, buf.len());
        let mut general = Reader { buf: &buf, pos: 0 };
        assert_eq!(any_record(&mut general), Ok(record));
        assert_eq!(general.pos, buf.len());
        // Not canonical (noise before snr): the fast path declines.
        let mut swapped = Vec::new();
        Enc(&mut swapped).record(&RssiRecord {
            snr_db: None,
            noise_dbm: None,
            ..record
        });
        swapped[0] = 0x87;
        let mut e = Enc(&mut swapped);
        e.str("noise_dbm");
        e.f32(-90.0);
        e.str("snr_db");
        e.f32(3.0);
        assert_eq!(
            canonical_record(&mut Reader {
                buf: &swapped,
                pos: 0
            }),
            None
        );
        let decoded = any_record(&mut Reader {
            buf: &swapped,
            pos: 0,
        })
        .unwrap();
        assert_eq!(decoded.snr_db, Some(Db::new(3.0).unwrap()));
    }
}

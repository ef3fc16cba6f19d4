//! Canonical MessagePack encoding: the spec's key order, the most compact integer forms,
//! float 32 for every float, bin for binary values.

use bytes::BufMut;
use rmp::Marker;

use crate::message::{
    Ack, Auth, Bye, Challenge, Cmd, CmdOp, Decision, Hello, Message, Ping, Pong, Reject, Rssi, Rx,
    Status, UnknownMessage, Welcome,
};
use crate::types::{BeaconFields, ProtocolVersion, RssiRecord};

/// A key encoded at compile time as a fixstr: header byte, then the bytes. Every key of the
/// spec is shorter than 32 bytes; a longer one fails to compile.
const fn fixstr<const N: usize>(key: &str) -> [u8; N] {
    let bytes = key.as_bytes();
    assert!(bytes.len() < 32 && bytes.len() + 1 == N);
    let mut out = [0; N];
    // Under 32: the cast is lossless.
    out[0] = 0xa0 | bytes.len() as u8;
    let mut i = 0;
    while i < bytes.len() {
        out[i + 1] = bytes[i];
        i += 1;
    }
    out
}

/// The encoded form of a key, as a `&'static [u8]` computed at compile time.
macro_rules! key {
    ($k:literal) => {{
        const ENCODED: [u8; $k.len() + 1] = fixstr($k);
        &ENCODED
    }};
}

/// Writes MessagePack values into a `BufMut`. Writing to a `BytesMut` or `Vec<u8>` cannot
/// fail (they grow), so nothing here returns an error.
pub(crate) struct Enc<'a, B: BufMut>(pub(crate) &'a mut B);

/// A collection length as MessagePack's 32-bit length.
///
/// # Panics
///
/// When `len` exceeds `u32::MAX`, which MessagePack cannot represent. Only a caller's own
/// value can be that large (decoded values are bounded by their payload), and no frame can
/// carry it.
fn len32(len: usize) -> u32 {
    u32::try_from(len).expect("MessagePack lengths are at most u32::MAX")
}

impl<B: BufMut> Enc<'_, B> {
    #[inline]
    fn marker(&mut self, m: Marker) {
        self.0.put_u8(m.to_u8());
    }

    #[inline]
    pub(crate) fn map(&mut self, len: usize) {
        let len = len32(len);
        if len <= 15 {
            // Fits the fixmap form: the cast is lossless.
            self.marker(Marker::FixMap(len as u8));
        } else if let Ok(len) = u16::try_from(len) {
            self.marker(Marker::Map16);
            self.0.put_u16(len);
        } else {
            self.marker(Marker::Map32);
            self.0.put_u32(len);
        }
    }

    #[inline]
    pub(crate) fn array(&mut self, len: usize) {
        let len = len32(len);
        if len <= 15 {
            // Fits the fixarray form: the cast is lossless.
            self.marker(Marker::FixArray(len as u8));
        } else if let Ok(len) = u16::try_from(len) {
            self.marker(Marker::Array16);
            self.0.put_u16(len);
        } else {
            self.marker(Marker::Array32);
            self.0.put_u32(len);
        }
    }

    /// A key, already encoded (fixstr header and bytes) by [`key!`]: one `put_slice`.
    #[inline]
    fn key(&mut self, encoded: &'static [u8]) {
        self.0.put_slice(encoded);
    }

    #[inline]
    pub(crate) fn str(&mut self, s: &str) {
        let len = len32(s.len());
        if len <= 31 {
            // Fits the fixstr form: the cast is lossless.
            self.marker(Marker::FixStr(len as u8));
        } else if let Ok(len) = u8::try_from(len) {
            self.marker(Marker::Str8);
            self.0.put_u8(len);
        } else if let Ok(len) = u16::try_from(len) {
            self.marker(Marker::Str16);
            self.0.put_u16(len);
        } else {
            self.marker(Marker::Str32);
            self.0.put_u32(len);
        }
        self.0.put_slice(s.as_bytes());
    }

    #[inline]
    pub(crate) fn bin(&mut self, b: &[u8]) {
        let len = len32(b.len());
        if let Ok(len) = u8::try_from(len) {
            self.marker(Marker::Bin8);
            self.0.put_u8(len);
        } else if let Ok(len) = u16::try_from(len) {
            self.marker(Marker::Bin16);
            self.0.put_u16(len);
        } else {
            self.marker(Marker::Bin32);
            self.0.put_u32(len);
        }
        self.0.put_slice(b);
    }

    #[inline]
    pub(crate) fn uint(&mut self, v: u64) {
        if v <= 0x7f {
            // Positive fixint: the cast is lossless.
            self.marker(Marker::FixPos(v as u8));
        } else if let Ok(v) = u8::try_from(v) {
            self.marker(Marker::U8);
            self.0.put_u8(v);
        } else if let Ok(v) = u16::try_from(v) {
            self.marker(Marker::U16);
            self.0.put_u16(v);
        } else if let Ok(v) = u32::try_from(v) {
            self.marker(Marker::U32);
            self.0.put_u32(v);
        } else {
            self.marker(Marker::U64);
            self.0.put_u64(v);
        }
    }

    /// A signed integer: non-negative values take the unsigned forms (the most compact).
    #[inline]
    pub(crate) fn int(&mut self, v: i64) {
        if let Ok(u) = u64::try_from(v) {
            self.uint(u);
        } else if v >= -32 {
            // Negative fixint: -32..=-1, the cast is lossless.
            self.marker(Marker::FixNeg(v as i8));
        } else if let Ok(v) = i8::try_from(v) {
            self.marker(Marker::I8);
            self.0.put_i8(v);
        } else if let Ok(v) = i16::try_from(v) {
            self.marker(Marker::I16);
            self.0.put_i16(v);
        } else if let Ok(v) = i32::try_from(v) {
            self.marker(Marker::I32);
            self.0.put_i32(v);
        } else {
            self.marker(Marker::I64);
            self.0.put_i64(v);
        }
    }

    #[inline]
    pub(crate) fn f32(&mut self, v: f32) {
        self.marker(Marker::F32);
        self.0.put_u32(v.to_bits());
    }

    #[inline]
    pub(crate) fn bool(&mut self, v: bool) {
        self.marker(if v { Marker::True } else { Marker::False });
    }

    fn version(&mut self, v: ProtocolVersion) {
        self.array(2);
        self.uint(u64::from(v.major));
        self.uint(u64::from(v.minor));
    }

    fn str_list(&mut self, list: &[String]) {
        self.array(list.len());
        for s in list {
            self.str(s);
        }
    }

    /// The map header and the `type` entry.
    #[inline]
    fn head(&mut self, keys: usize, type_name: &str) {
        // `keys` counts `type` too.
        self.map(keys);
        self.key(key!("type"));
        self.str(type_name);
    }

    pub(crate) fn record(&mut self, r: &RssiRecord) {
        self.map(
            5 + usize::from(r.snr_db.is_some())
                + usize::from(r.noise_dbm.is_some())
                + r.beacon.len(),
        );
        self.key(key!("timestamp_ns"));
        self.int(r.timestamp_ns);
        self.key(key!("rssi_dbm"));
        self.f32(r.rssi_dbm.get());
        self.key(key!("frequency_hz"));
        self.uint(r.frequency_hz.get());
        self.key(key!("source_id"));
        self.uint(u64::from(r.source_id.get()));
        self.key(key!("quality_score"));
        self.uint(u64::from(r.quality_score.get()));
        if let Some(snr) = r.snr_db {
            self.key(key!("snr_db"));
            self.f32(snr.get());
        }
        if let Some(noise) = r.noise_dbm {
            self.key(key!("noise_dbm"));
            self.f32(noise.get());
        }
        if !r.beacon.is_empty() {
            self.beacon(&r.beacon);
        }
    }

    /// The protocol 1.1 beacon keys, in the spec's order after `noise_dbm`.
    fn beacon(&mut self, b: &BeaconFields) {
        if let Some(v) = b.detected {
            self.key(key!("detected"));
            self.bool(v);
        }
        if let Some(v) = b.pulses {
            self.key(key!("pulses"));
            self.uint(u64::from(v));
        }
        if let Some(v) = b.pulse_dbm {
            self.key(key!("pulse_dbm"));
            self.f32(v.get());
        }
        if let Some(v) = b.pulse_width_us {
            self.key(key!("pulse_width_us"));
            self.uint(u64::from(v));
        }
        if let Some(v) = b.pulse_start_ns {
            self.key(key!("pulse_start_ns"));
            self.int(v);
        }
        if let Some(v) = b.pulse_interval_ms {
            self.key(key!("pulse_interval_ms"));
            self.uint(u64::from(v));
        }
        if let Some(v) = b.last_pulse_dbm {
            self.key(key!("last_pulse_dbm"));
            self.f32(v.get());
        }
        if let Some(v) = b.last_pulse_age_ms {
            self.key(key!("last_pulse_age_ms"));
            self.uint(u64::from(v));
        }
        if let Some(v) = b.burst {
            self.key(key!("burst"));
            self.bool(v);
        }
        if let Some(v) = b.offset_hz {
            self.key(key!("offset_hz"));
            self.f32(v.get());
        }
        if let Some(v) = b.clip_fraction {
            self.key(key!("clip_fraction"));
            self.f32(v.get());
        }
        if let Some(v) = b.smoothing {
            self.key(key!("smoothing"));
            self.f32(v);
        }
        if let Some(v) = b.stale {
            self.key(key!("stale"));
            self.bool(v);
        }
        if let Some(v) = b.lat_e7 {
            self.key(key!("lat_e7"));
            self.int(i64::from(v));
        }
        if let Some(v) = b.lon_e7 {
            self.key(key!("lon_e7"));
            self.int(i64::from(v));
        }
        if let Some(v) = b.alt_m {
            self.key(key!("alt_m"));
            self.f32(v);
        }
        if let Some(v) = b.heading_deg {
            self.key(key!("heading_deg"));
            self.f32(v);
        }
    }

    pub(crate) fn message(&mut self, m: &Message) {
        match m {
            Message::Hello(m) => self.hello(m),
            Message::Challenge(Challenge { nonce }) => {
                self.head(2, "challenge");
                self.key(key!("nonce"));
                self.bin(nonce.as_bytes());
            }
            Message::Auth(Auth { mac }) => {
                self.head(2, "auth");
                self.key(key!("mac"));
                self.bin(mac.as_bytes());
            }
            Message::Welcome(m) => self.welcome(m),
            Message::Reject(Reject { code, reason }) => {
                self.head(3, "reject");
                self.key(key!("code"));
                self.str(code.as_str());
                self.key(key!("reason"));
                self.str(reason);
            }
            Message::Rssi(m) => self.rssi(m),
            Message::Rx(Rx { seq }) => {
                self.head(2, "rx");
                self.key(key!("seq"));
                self.uint(*seq);
            }
            Message::Ping(Ping { seq, t_ns }) => {
                self.head(3, "ping");
                self.key(key!("seq"));
                self.uint(u64::from(*seq));
                self.key(key!("t_ns"));
                self.int(*t_ns);
            }
            Message::Pong(Pong { seq, t_ns }) => {
                self.head(3, "pong");
                self.key(key!("seq"));
                self.uint(u64::from(*seq));
                self.key(key!("t_ns"));
                self.int(*t_ns);
            }
            Message::Cmd(m) => self.cmd(m),
            Message::Ack(m) => self.ack(m),
            Message::Status(m) => self.status(m),
            Message::Decision(m) => self.decision(m),
            Message::Bye(Bye { code, reason }) => {
                self.head(3, "bye");
                self.key(key!("code"));
                self.str(code.as_str());
                self.key(key!("reason"));
                self.str(reason);
            }
            Message::Unknown(UnknownMessage { type_name }) => self.head(1, type_name),
        }
    }

    fn hello(&mut self, m: &Hello) {
        self.head(9 + usize::from(m.rssi_units.is_some()), "hello");
        self.key(key!("proto"));
        self.str("sarlink");
        self.key(key!("version"));
        self.version(m.version);
        self.key(key!("role"));
        self.str(m.role.as_str());
        self.key(key!("node"));
        self.str(m.node.as_str());
        self.key(key!("stream"));
        self.uint(m.stream);
        self.key(key!("compression"));
        self.str_list(&m.compression);
        self.key(key!("max_message"));
        self.uint(u64::from(m.max_message));
        self.key(key!("nonce"));
        self.bin(m.nonce.as_bytes());
        if let Some(units) = m.rssi_units {
            self.key(key!("rssi_units"));
            self.str(units.as_str());
        }
    }

    fn welcome(&mut self, m: &Welcome) {
        self.head(
            6 + usize::from(m.mac.is_some()) + usize::from(m.rssi_units.is_some()),
            "welcome",
        );
        self.key(key!("version"));
        self.version(m.version);
        self.key(key!("node"));
        self.str(m.node.as_str());
        self.key(key!("compression"));
        self.str_list(&m.compression);
        self.key(key!("max_message"));
        self.uint(u64::from(m.max_message));
        self.key(key!("resume_seq"));
        self.uint(m.resume_seq);
        if let Some(mac) = &m.mac {
            self.key(key!("mac"));
            self.bin(mac.as_bytes());
        }
        if let Some(units) = m.rssi_units {
            self.key(key!("rssi_units"));
            self.str(units.as_str());
        }
    }

    fn rssi(&mut self, m: &Rssi) {
        self.rssi_batch(m.seq(), m.samples().iter());
    }

    pub(crate) fn rssi_batch<'r>(
        &mut self,
        seq: u64,
        records: impl ExactSizeIterator<Item = &'r RssiRecord>,
    ) {
        self.head(3, "rssi");
        self.key(key!("seq"));
        self.uint(seq);
        self.key(key!("samples"));
        self.array(records.len());
        for r in records {
            self.record(r);
        }
    }

    fn cmd(&mut self, m: &Cmd) {
        let op_keys = match m.op {
            CmdOp::GainAuto | CmdOp::Unknown { .. } => 0,
            CmdOp::Tune { .. } | CmdOp::Gain { .. } | CmdOp::Rate { .. } | CmdOp::Stream { .. } => {
                1
            }
        };
        self.head(3 + usize::from(m.target.is_some()) + op_keys, "cmd");
        self.key(key!("id"));
        self.uint(u64::from(m.id));
        self.key(key!("op"));
        self.str(m.op.as_str());
        if let Some(target) = &m.target {
            self.key(key!("target"));
            self.str(target.as_str());
        }
        match &m.op {
            CmdOp::Tune { frequency_hz } => {
                self.key(key!("frequency_hz"));
                self.uint(frequency_hz.get());
            }
            CmdOp::Gain { gain_db } => {
                self.key(key!("gain_db"));
                self.f32(*gain_db);
            }
            CmdOp::Rate { hz } => {
                self.key(key!("hz"));
                self.f32(*hz);
            }
            CmdOp::Stream { on } => {
                self.key(key!("on"));
                self.bool(*on);
            }
            CmdOp::GainAuto | CmdOp::Unknown { .. } => {}
        }
    }

    fn ack(&mut self, m: &Ack) {
        self.head(
            3 + usize::from(m.code.is_some()) + usize::from(m.reason.is_some()),
            "ack",
        );
        self.key(key!("id"));
        self.uint(u64::from(m.id));
        self.key(key!("ok"));
        self.bool(m.ok);
        if let Some(code) = &m.code {
            self.key(key!("code"));
            self.str(code.as_str());
        }
        if let Some(reason) = &m.reason {
            self.key(key!("reason"));
            self.str(reason);
        }
    }

    fn status(&mut self, m: &Status) {
        self.head(
            9 + usize::from(m.temp_c.is_some())
                + usize::from(m.source.is_some())
                + usize::from(m.data_age_ms.is_some())
                + usize::from(!m.alerts.is_empty()),
            "status",
        );
        self.key(key!("t_ns"));
        self.int(m.t_ns);
        self.key(key!("cpu_pct"));
        self.f32(m.cpu_pct);
        self.key(key!("mem_bytes"));
        self.uint(m.mem_bytes);
        if let Some(temp_c) = m.temp_c {
            self.key(key!("temp_c"));
            self.f32(temp_c);
        }
        self.key(key!("level"));
        self.str(&m.level);
        self.key(key!("disabled"));
        self.str_list(&m.disabled);
        self.key(key!("dropped"));
        self.uint(m.dropped);
        self.key(key!("queued"));
        self.uint(u64::from(m.queued));
        self.key(key!("rate_hz"));
        self.f32(m.rate_hz);
        if let Some(source) = &m.source {
            self.key(key!("source"));
            self.str(source);
        }
        if let Some(age) = m.data_age_ms {
            self.key(key!("data_age_ms"));
            self.uint(u64::from(age));
        }
        if !m.alerts.is_empty() {
            self.key(key!("alerts"));
            self.str_list(&m.alerts);
        }
    }

    fn decision(&mut self, m: &Decision) {
        let optional = usize::from(m.score_drone.is_some()) + usize::from(m.score_ground.is_some());
        self.head(5 + optional, "decision");
        self.key(key!("t_ns"));
        self.int(m.t_ns);
        self.key(key!("source_id"));
        self.uint(u64::from(m.source_id.get()));
        self.key(key!("fallback"));
        self.bool(m.fallback);
        self.key(key!("reason"));
        self.str(&m.reason);
        if let Some(score) = m.score_drone {
            self.key(key!("score_drone"));
            self.f32(score);
        }
        if let Some(score) = m.score_ground {
            self.key(key!("score_ground"));
            self.f32(score);
        }
    }
}

/// Appends the canonical bytes of an `rssi` message whose samples are `records`, numbered
/// from `seq`, without building an [`Rssi`] (so a sender can encode straight from its own
/// buffer of samples). The bytes equal those of `Message::Rssi(Rssi::new(seq, records))`.
///
/// # Panics
///
/// When `records` is empty (an `rssi` message carries at least one sample), or as
/// [`Message::encode`].
///
/// # Examples
///
/// ```
/// use sarlink_schema::{encode_rssi_batch, BeaconFields, Dbm, FrequencyHz, Message, QualityScore, Rssi, RssiRecord, SourceId};
///
/// let r = RssiRecord {
///     timestamp_ns: 1, rssi_dbm: Dbm::new(-70.0).unwrap(), frequency_hz: FrequencyHz::new(406_025_000).unwrap(),
///     source_id: SourceId::DRONE, quality_score: QualityScore::new(90).unwrap(), snr_db: None, noise_dbm: None,
///     beacon: BeaconFields::NONE,
/// };
/// let mut direct = Vec::new();
/// encode_rssi_batch(5, [r, r].iter(), &mut direct);
/// assert_eq!(direct, Message::Rssi(Rssi::new(5, vec![r, r]).unwrap()).encode_to_vec());
/// ```
pub fn encode_rssi_batch<'r, B: BufMut>(
    seq: u64,
    records: impl ExactSizeIterator<Item = &'r RssiRecord>,
    dst: &mut B,
) {
    assert!(
        records.len() > 0,
        "an rssi message carries at least one sample"
    );
    Enc(dst).rssi_batch(seq, records);
}

impl Message {
    /// Appends the message's canonical MessagePack bytes to `dst` (a `BytesMut`, a
    /// `Vec<u8>`, or any other growable [`BufMut`]).
    ///
    /// Canonical means: keys in the spec's order, optional keys only when present, integers in
    /// their most compact form, floats as float 32, nonces and MACs as bin. Encoding is
    /// deterministic, so equal messages give equal bytes.
    ///
    /// # Panics
    ///
    /// When a string or list holds more than `u32::MAX` bytes or items (MessagePack cannot
    /// represent it), or when `dst` cannot grow (a fixed-size `&mut [u8]` that fills up).
    ///
    /// # Examples
    ///
    /// ```
    /// use sarlink_schema::{Message, Ping};
    ///
    /// let mut buf = Vec::new();
    /// Message::Ping(Ping { seq: 7, t_ns: 1_700_000_000_123_456_789 }).encode(&mut buf);
    /// assert_eq!(buf.len(), 30);
    /// assert_eq!(&buf[..6], b"\x83\xa4type");
    /// ```
    pub fn encode<B: BufMut>(&self, dst: &mut B) {
        Enc(dst).message(self);
    }

    /// The canonical bytes in a new `Vec`; see [`Message::encode`].
    pub fn encode_to_vec(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64);
        self.encode(&mut buf);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: impl FnOnce(&mut Enc<'_, Vec<u8>>)) -> Vec<u8> {
        let mut buf = Vec::new();
        f(&mut Enc(&mut buf));
        buf
    }

    #[test]
    fn unsigned_integers_take_the_most_compact_form() {
        let cases: [(u64, &[u8]); 10] = [
            (0, &[0x00]),
            (0x7f, &[0x7f]),
            (0x80, &[0xcc, 0x80]),
            (0xff, &[0xcc, 0xff]),
            (0x100, &[0xcd, 0x01, 0x00]),
            (0xffff, &[0xcd, 0xff, 0xff]),
            (0x1_0000, &[0xce, 0, 1, 0, 0]),
            (0xffff_ffff, &[0xce, 0xff, 0xff, 0xff, 0xff]),
            (0x1_0000_0000, &[0xcf, 0, 0, 0, 1, 0, 0, 0, 0]),
            (
                u64::MAX,
                &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ];
        for (v, want) in cases {
            assert_eq!(enc(|e| e.uint(v)), want, "{v}");
        }
    }

    #[test]
    fn signed_integers_take_the_most_compact_form() {
        let cases: [(i64, &[u8]); 10] = [
            (5, &[0x05]),
            (200, &[0xcc, 200]),
            (-1, &[0xff]),
            (-32, &[0xe0]),
            (-33, &[0xd0, 0xdf]),
            (-128, &[0xd0, 0x80]),
            (-129, &[0xd1, 0xff, 0x7f]),
            (-32769, &[0xd2, 0xff, 0xff, 0x7f, 0xff]),
            (
                i64::from(i32::MIN) - 1,
                &[0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
            ),
            (
                i64::MAX,
                &[0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ),
        ];
        for (v, want) in cases {
            assert_eq!(enc(|e| e.int(v)), want, "{v}");
        }
    }

    #[test]
    fn lengths_switch_forms_at_the_msgpack_boundaries() {
        assert_eq!(enc(|e| e.str(&"a".repeat(31)))[0], 0xbf);
        assert_eq!(enc(|e| e.str(&"a".repeat(32)))[..2], [0xd9, 32]);
        assert_eq!(enc(|e| e.str(&"a".repeat(256)))[..3], [0xda, 1, 0]);
        assert_eq!(enc(|e| e.str(&"a".repeat(65536)))[..5], [0xdb, 0, 1, 0, 0]);
        assert_eq!(enc(|e| e.bin(&[0; 16]))[..2], [0xc4, 16]);
        assert_eq!(enc(|e| e.bin(&[0; 256]))[..3], [0xc5, 1, 0]);
        assert_eq!(enc(|e| e.bin(&[0; 65536]))[..5], [0xc6, 0, 1, 0, 0]);
        assert_eq!(enc(|e| e.array(15)), [0x9f]);
        assert_eq!(enc(|e| e.array(16)), [0xdc, 0, 16]);
        assert_eq!(enc(|e| e.array(65536)), [0xdd, 0, 1, 0, 0]);
        assert_eq!(enc(|e| e.map(15)), [0x8f]);
        assert_eq!(enc(|e| e.map(16)), [0xde, 0, 16]);
        assert_eq!(enc(|e| e.map(65536)), [0xdf, 0, 1, 0, 0]);
    }

    #[test]
    fn floats_are_float32_and_bools_single_bytes() {
        assert_eq!(enc(|e| e.f32(-71.5)), [0xca, 0xc2, 0x8f, 0x00, 0x00]);
        assert_eq!(enc(|e| e.bool(true)), [0xc3]);
        assert_eq!(enc(|e| e.bool(false)), [0xc2]);
    }
}

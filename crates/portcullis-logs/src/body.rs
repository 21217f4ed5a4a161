//! The CSV body (contract §8.2): fields by position, parsed without allocating.
//!
//! Every access is bounds-checked (`get`), so no input can make this panic.

use std::net::IpAddr;

use crate::entry::{
    Action, CarpInfo, Direction, FilterLogEntry, IpHeader, Ipv4Header, Ipv6Header, OtherInfo, ProtocolInfo, SeqRange,
    TcpInfo, UdpInfo,
};
use crate::error::{Field, ParseError};
use crate::header::Header;
use crate::icmp::icmp;
use crate::ip::{parse_ipv4, parse_ipv6};
use crate::num::{number_at, parse_hex, parse_i64, parse_u64};

/// A cursor over the comma-separated fields of the body.
///
/// Numbers and IPv4 addresses are parsed in place, in the pass that finds their terminating comma; text fields
/// are delimited with [`find_byte`]. Fields are short (6 bytes on average): too short for `memchr`'s vector
/// search to pay for its call.
pub(crate) struct Fields<'a> {
    text: &'a str,
    /// Start of the next field; `text.len() + 1` once the last field has been returned.
    pos: usize,
    /// Index of the next field.
    index: u16,
}

impl<'a> Fields<'a> {
    #[inline(always)]
    fn new(text: &'a str) -> Self {
        Fields { text, pos: 0, index: 0 }
    }

    /// The index of the next field, for errors.
    #[inline(always)]
    pub(crate) fn at(&self) -> u16 {
        self.index
    }

    /// Moves past a field that ends at `end` (the position of its comma, or the end of the text).
    #[inline(always)]
    fn advance(&mut self, end: usize) {
        self.pos = end + 1;
        self.index = self.index.saturating_add(1);
    }

    /// The next field, or `None` past the end (the index still moves on, so later errors name the right field).
    #[inline(always)]
    pub(crate) fn next(&mut self) -> Option<&'a str> {
        let start = self.pos;
        let Some(rest) = self.text.as_bytes().get(start..) else {
            self.index = self.index.saturating_add(1);
            return None;
        };
        let end = start + find_byte(rest, b',').unwrap_or(rest.len());
        self.advance(end);
        self.text.get(start..end)
    }

    /// The next field, required.
    #[inline(always)]
    pub(crate) fn req(&mut self, field: Field) -> Result<&'a str, ParseError> {
        let index = self.index;
        self.next().ok_or(ParseError::MissingField { index, field })
    }

    /// Parses the decimal digits of the next field in place: `Ok(None)` for an empty field, `Err(true)` past the
    /// end, `Err(false)` for anything but digits or a number too large for a `u64`.
    #[inline(always)]
    fn digits(&mut self) -> Result<Option<u64>, bool> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let Some(rest) = bytes.get(start..) else {
            self.index = self.index.saturating_add(1);
            return Err(true);
        };
        let (len, acc) = number_at(rest).ok_or(false)?;
        match rest.get(len) {
            None | Some(b',') => {
                self.advance(start + len);
                Ok(if len == 0 { None } else { Some(acc) })
            }
            Some(_) => Err(false),
        }
    }

    /// The next field as a TCP sequence number, `n` or `start:end`, parsed in place: `Ok(None)` when empty or
    /// absent, `Err(())` when it is not one.
    #[inline(always)]
    fn seq_range(&mut self) -> Result<Option<SeqRange>, ()> {
        let start = self.pos;
        let Some(rest) = self.text.as_bytes().get(start..) else {
            self.index = self.index.saturating_add(1);
            return Ok(None);
        };
        let number = |at: usize| -> Result<(usize, u32), ()> {
            let (len, v) = number_at(rest.get(at..).unwrap_or_default()).ok_or(())?;
            Ok((len, u32::try_from(v).map_err(|_| ())?))
        };
        let (len, first) = number(0)?;
        let (end, range) = match rest.get(len) {
            None | Some(b',') if len == 0 => (0, None),
            None | Some(b',') => (len, Some(SeqRange { start: first, end: None })),
            Some(b':') if len > 0 => {
                let (len2, last) = number(len + 1)?;
                if len2 == 0 {
                    return Err(());
                }
                (len + 1 + len2, Some(SeqRange { start: first, end: Some(last) }))
            }
            _ => return Err(()),
        };
        if !matches!(rest.get(end), None | Some(b',')) {
            return Err(());
        }
        self.advance(start + end);
        Ok(range)
    }

    /// The next field as a required number that fits `T`.
    #[inline(always)]
    fn num<T: TryFrom<u64>>(&mut self, field: Field) -> Result<T, ParseError> {
        let index = self.index;
        match self.digits() {
            Ok(Some(v)) => T::try_from(v).map_err(|_| ParseError::BadNumber { index, field }),
            Err(true) => Err(ParseError::MissingField { index, field }),
            Ok(None) | Err(false) => Err(ParseError::BadNumber { index, field }),
        }
    }

    /// The next field as an optional number: absent or empty gives `None`.
    #[inline(always)]
    fn opt_num<T: TryFrom<u64>>(&mut self, field: Field) -> Result<Option<T>, ParseError> {
        let index = self.index;
        match self.digits() {
            Ok(Some(v)) => T::try_from(v).map(Some).map_err(|_| ParseError::BadNumber { index, field }),
            Ok(None) | Err(true) => Ok(None),
            Err(false) => Err(ParseError::BadNumber { index, field }),
        }
    }

    /// The next field as a required hexadecimal number (`0x` prefix optional).
    #[inline(always)]
    fn hex<T: TryFrom<u64>>(&mut self, field: Field) -> Result<T, ParseError> {
        let index = self.index;
        let s = self.req(field)?;
        parse_hex(s).and_then(|v| T::try_from(v).ok()).ok_or(ParseError::BadNumber { index, field })
    }

    /// The next field as an IPv4 address, parsed in place.
    #[inline(always)]
    fn ipv4(&mut self, field: Field) -> Result<IpAddr, ParseError> {
        let index = self.index;
        let rest = self.text.as_bytes().get(self.pos..).ok_or(ParseError::MissingField { index, field })?;
        let (addr, len) = parse_ipv4(rest).ok_or(ParseError::BadIp { index, field })?;
        self.advance(self.pos + len);
        Ok(IpAddr::V4(addr))
    }

    /// The next field as an IPv6 address.
    #[inline(always)]
    fn ipv6(&mut self, field: Field) -> Result<IpAddr, ParseError> {
        let index = self.index;
        let s = self.req(field)?;
        // An IPv4-mapped address is the IPv4 host it spells (a dual-stack socket's view of IPv4 traffic): counted,
        // detected and blocked as that host, in the one form a block of it enforces.
        let addr = parse_ipv6(s).ok_or(ParseError::BadIp { index, field })?;
        Ok(addr.to_ipv4_mapped().map_or(IpAddr::V6(addr), IpAddr::V4))
    }

    /// The text from the next field to the end of the body (empty past the end).
    #[inline(always)]
    pub(crate) fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    /// Whether the next field starts with `b` (cheap test before a prefix comparison).
    #[inline(always)]
    pub(crate) fn peek_is(&self, b: u8) -> bool {
        self.text.as_bytes().get(self.pos) == Some(&b)
    }

    /// Consumes everything.
    pub(crate) fn finish(&mut self) {
        self.pos = self.text.len() + 1;
    }
}

/// The position of the first `needle` in `hay`, eight bytes at a time (SWAR): in `word ^ needle×8` a match is a
/// zero byte, and `!(((x & 0x7f..) + 0x7f..) | x | 0x7f..)` sets the high bit of exactly the zero bytes. For the
/// short haystacks of a log line this beats `memchr`'s call and vector set-up.
#[inline(always)]
pub(crate) fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LOW7: u64 = u64::from_ne_bytes([0x7f; 8]);
    let pattern = u64::from_ne_bytes([needle; 8]);
    let mut chunks = hay.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).unwrap_or([0; 8])) ^ pattern;
        let found = !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7);
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks.remainder().iter().position(|&b| b == needle).map(|p| offset + p)
}

/// pf's "no rule" number (`(u_int32_t)-1`): pfSense prints it, OPNsense prints an empty field instead (the two
/// `filterlog.c`: pfSense `sysutils/filterlog/files/`, OPNsense `opnsense/filterlog/files/`).
const NO_RULE: u32 = u32::MAX;

/// Parses the CSV body; `header` supplies the prefix fields.
pub(crate) fn parse<'a>(header: Header<'a>) -> Result<FilterLogEntry<'a>, ParseError> {
    let body = header.body;
    if body.is_empty() {
        return Err(ParseError::MissingField { index: 0, field: Field::RuleNumber });
    }
    let mut f = Fields::new(body);
    let rule_number = f.opt_num::<u32>(Field::RuleNumber)?.filter(|n| *n != NO_RULE);
    let sub_rule = f.opt_num::<u32>(Field::SubRule)?;
    let anchor = f.req(Field::Anchor)?;
    let (tracker, rule_label) = rule_reference(&mut f)?;
    let index = f.at();
    let interface = f.req(Field::Interface)?;
    if interface.is_empty() {
        return Err(ParseError::BadValue { index, field: Field::Interface });
    }
    let reason = f.req(Field::Reason)?;
    let index = f.at();
    let action = action(f.req(Field::Action)?).ok_or(ParseError::BadValue { index, field: Field::Action })?;
    let index = f.at();
    let direction =
        direction(f.req(Field::Direction)?).ok_or(ParseError::BadValue { index, field: Field::Direction })?;
    let index = f.at();
    let ip_version = match f.req(Field::IpVersion)? {
        "4" => 4,
        "6" => 6,
        _ => return Err(ParseError::BadValue { index, field: Field::IpVersion }),
    };
    let mut error = None;
    if let Some(e) = f.peek_is(b'e').then(|| f.rest().strip_prefix("error=")).flatten() {
        let e = e.get(..find_byte(e.as_bytes(), b',').unwrap_or(e.len())).unwrap_or(e);
        error = Some(e);
        f.next();
    }

    let (ip, protocol_name, protocol_id, length, src, dst) = if ip_version == 4 {
        let tos = f.hex::<u8>(Field::Tos)?;
        let ecn = f.req(Field::Ecn)?;
        let ttl = f.num::<u8>(Field::Ttl)?;
        let id = f.num::<u16>(Field::Id)?;
        let offset = f.num::<u32>(Field::Offset)?;
        let flags = f.req(Field::Flags)?;
        let protocol_id = f.num::<u8>(Field::ProtocolId)?;
        let protocol_name = f.req(Field::Protocol)?;
        let length = f.num::<u32>(Field::Length)?;
        let src = f.ipv4(Field::SourceAddress)?;
        let dst = f.ipv4(Field::DestinationAddress)?;
        let header = Ipv4Header { tos, ecn, ttl, id, offset, flags };
        (IpHeader::V4(header), protocol_name, protocol_id, length, src, dst)
    } else {
        let class = f.hex::<u8>(Field::Class)?;
        let flow_label = f.hex::<u32>(Field::FlowLabel)?;
        let hop_limit = f.num::<u8>(Field::HopLimit)?;
        let protocol_name = f.req(Field::Protocol)?;
        let protocol_id = f.num::<u8>(Field::ProtocolId)?;
        let length = f.num::<u32>(Field::Length)?;
        let src = f.ipv6(Field::SourceAddress)?;
        let dst = f.ipv6(Field::DestinationAddress)?;
        let header = Ipv6Header { class, flow_label, hop_limit };
        (IpHeader::V6(header), protocol_name, protocol_id, length, src, dst)
    };

    let proto = match protocol_id {
        6 => ProtocolInfo::Tcp(tcp(&mut f)?),
        17 | 132 => {
            let src_port = f.num::<u16>(Field::SourcePort)?;
            let dst_port = f.num::<u16>(Field::DestinationPort)?;
            let data_length = f.opt_num::<u32>(Field::DataLength)?;
            ProtocolInfo::Udp(UdpInfo { src_port, dst_port, data_length })
        }
        1 => ProtocolInfo::Icmp(icmp(&mut f, length)?),
        112 if !f.rest().is_empty() && !f.rest().starts_with(',') => ProtocolInfo::Carp(carp(&mut f)?),
        _ => {
            let text = f.rest();
            let data_length = text.strip_prefix("datalength=").and_then(leading_number);
            ProtocolInfo::Other(OtherInfo { data_length, text })
        }
    };

    Ok(FilterLogEntry {
        format: header.format,
        priority: header.priority,
        timestamp: header.timestamp,
        host: header.host,
        pid: header.pid,
        body,
        rule_number,
        sub_rule,
        anchor,
        tracker,
        rule_label,
        interface,
        reason,
        action,
        direction,
        ip_version,
        error,
        ip,
        protocol_name,
        protocol_id,
        length,
        src,
        dst,
        proto,
    })
}

/// Field 3: the numeric tracker (pfSense) or the rule label (OPNsense), and the field's text.
fn rule_reference<'a>(f: &mut Fields<'a>) -> Result<(Option<u64>, Option<&'a str>), ParseError> {
    let index = f.at();
    let start = f.pos;
    match f.digits() {
        Ok(Some(tracker)) => Ok((Some(tracker), f.text.get(start..f.pos - 1))),
        Ok(None) | Err(true) => Ok((None, None)),
        Err(false) => {
            let text = f.req(Field::Tracker)?;
            if is_rule_label(text) {
                Ok((None, Some(text)))
            } else {
                Err(ParseError::BadNumber { index, field: Field::Tracker })
            }
        }
    }
}

/// Whether a non-numeric field 3 is an OPNsense rule label rather than a damaged tracker: a 32-hex-digit MD5 label
/// (`read_log.py` matches labels by exactly that shape), a UUID, or text with a letter in it. Signs, spaces and
/// replacement characters around digits, and numbers too large for a u64, stay bad numbers.
fn is_rule_label(text: &str) -> bool {
    let b = text.as_bytes();
    let md5 = b.len() == 32 && b.iter().all(u8::is_ascii_hexdigit);
    md5 || is_uuid(b) || b.iter().any(u8::is_ascii_alphabetic)
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

/// Field 6. Both filterlogs print pf's action table (`pass`, `block`, `scrub`, `nat`, `binat`, `rdr`,
/// `synproxy-drop`) and a placeholder for anything else; `reject` comes from other pf producers.
fn action(word: &str) -> Option<Action> {
    match word {
        "pass" => Some(Action::Pass),
        "block" => Some(Action::Block),
        "reject" => Some(Action::Reject),
        "scrub" | "nat" | "binat" | "rdr" | "synproxy-drop" => Some(Action::Unknown),
        _ => is_placeholder(word).then_some(Action::Unknown),
    }
}

/// Field 7: `in`, `out`, pf's `in/out`, or a placeholder.
fn direction(word: &str) -> Option<Direction> {
    match word {
        "in" => Some(Direction::In),
        "out" => Some(Direction::Out),
        "in/out" => Some(Direction::Unknown),
        _ => is_placeholder(word).then_some(Direction::Unknown),
    }
}

/// filterlog's word for a code it has no name for: pfSense passes `"unkn(%u)"` to `code2str` as the fallback and
/// prints it as it is, so the `%u` is literal (`sysutils/filterlog/files/filterlog.c`); `unkn(N)` is the formatted
/// form (tcpdump's `pflog_print`), `unknown(N)` OPNsense's (`opnsense/filterlog/files/filterlog.c`).
fn is_placeholder(word: &str) -> bool {
    let inner = word.strip_prefix("unkn(").or_else(|| word.strip_prefix("unknown(")).and_then(|r| r.strip_suffix(')'));
    inner.is_some_and(|n| n == "%u" || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
}

/// The digits at the start of `s` (after optional spaces), as a number: `datalength=8 ` gives 8.
pub(crate) fn leading_number(s: &str) -> Option<u32> {
    let s = s.trim_start_matches(' ');
    let end = s.bytes().take_while(u8::is_ascii_digit).count();
    parse_u64(s.get(..end)?).and_then(|v| u32::try_from(v).ok())
}

fn tcp<'a>(f: &mut Fields<'a>) -> Result<TcpInfo<'a>, ParseError> {
    let src_port = f.num::<u16>(Field::SourcePort)?;
    let dst_port = f.num::<u16>(Field::DestinationPort)?;
    let index = f.at();
    let bad_length = ParseError::BadNumber { index, field: Field::DataLength };
    let data_length = if f.peek_is(b'-') {
        let s = f.next().unwrap_or("");
        Some(parse_i64(s).and_then(|v| i32::try_from(v).ok()).ok_or(bad_length)?)
    } else {
        f.opt_num::<u64>(Field::DataLength)?.map(|v| i32::try_from(v).map_err(|_| bad_length)).transpose()?
    };
    let mut info = TcpInfo { src_port, dst_port, data_length, ..TcpInfo::default() };
    // Flags, seq, ack, window, urg, options: any of them may be replaced by `errormsg='...'`, which runs to the
    // end of the line (its text may contain commas).
    if errormsg(f, &mut info) {
        return Ok(info);
    }
    info.flags = f.next().unwrap_or("");
    if errormsg(f, &mut info) {
        return Ok(info);
    }
    let index = f.at();
    info.seq = f.seq_range().map_err(|()| ParseError::BadNumber { index, field: Field::Sequence })?;
    if errormsg(f, &mut info) {
        return Ok(info);
    }
    info.ack = f.opt_num(Field::Acknowledgement)?;
    if errormsg(f, &mut info) {
        return Ok(info);
    }
    info.window = f.opt_num(Field::Window)?;
    if errormsg(f, &mut info) {
        return Ok(info);
    }
    info.urg = f.opt_num(Field::UrgentPointer)?;
    if errormsg(f, &mut info) {
        return Ok(info);
    }
    info.options = f.next().unwrap_or("");
    info.extra = f.rest();
    Ok(info)
}

/// When the next field is `errormsg=...`: records its text (to the end of the line, without the quotes and the
/// trailing comma) and consumes the rest.
#[inline]
fn errormsg<'a>(f: &mut Fields<'a>, info: &mut TcpInfo<'a>) -> bool {
    if !f.peek_is(b'e') {
        return false;
    }
    let Some(msg) = f.rest().strip_prefix("errormsg=") else {
        return false;
    };
    let msg = msg.strip_suffix(',').unwrap_or(msg);
    let msg = msg.strip_prefix('\'').and_then(|m| m.strip_suffix('\'')).unwrap_or(msg);
    info.error_message = Some(msg);
    f.finish();
    true
}

fn carp<'a>(f: &mut Fields<'a>) -> Result<CarpInfo<'a>, ParseError> {
    Ok(CarpInfo {
        carp_type: f.req(Field::CarpType)?,
        ttl: f.num(Field::CarpTtl)?,
        vhid: f.num(Field::Vhid)?,
        version: f.num(Field::CarpVersion)?,
        advskew: f.num(Field::Advskew)?,
        advbase: f.num(Field::Advbase)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn digits_of(text: &str) -> Result<Option<u64>, bool> {
        Fields::new(text).digits()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// The word-at-a-time number parse agrees with the byte loop of `parse_u64` on every field shape.
        #[test]
        fn digits_agree_with_parse_u64(field in "[0-9]{0,22}", end in prop::sample::select(vec!["", ",", ",x", ":", "a", " "])) {
            let text = format!("{field}{end}");
            let expected = match (field.is_empty(), end) {
                (_, "" | "," | ",x") if field.is_empty() => Ok(None),
                (_, "" | "," | ",x") => parse_u64(&field).map(Some).ok_or(false),
                _ => Err(false),
            };
            prop_assert_eq!(digits_of(&text), expected);
        }

        #[test]
        fn digits_of_any_u64(n in any::<u64>(), zeros in 0usize..3) {
            let text = format!("{}{n},", "0".repeat(zeros));
            prop_assert_eq!(digits_of(&text), parse_u64(&text[..text.len() - 1]).map(Some).ok_or(false));
        }
    }
}

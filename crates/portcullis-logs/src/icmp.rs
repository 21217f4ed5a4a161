//! The ICMP (IPv4) trailing fields, in pfSense's layout and in OPNsense's.
//!
//! pfSense's `icmp_print` (`sysutils/filterlog/files/print-icmp.c` in pfsense/FreeBSD-ports) prints the
//! type-specific fields and then, with no separator, the ICMP message length: `sbuf_printf(sbuf, "%u", plen)`,
//! where `plen` is the IP length minus the IP header length (`print-ip.c`). So the last field of every pfSense ICMP
//! line carries the length glued on: `request,37728,164` is id 37728, seq 1, 64 bytes (an 84-byte packet).
//! The parser splits it off by the IP length: the header is 20 bytes without options and up to 60 with them, so
//! the glued number is one of `length - 20`, `length - 24`, ..., `length - 60`.
//!
//! OPNsense's decoder (`opnsense/filterlog/files/print-icmp.c`, 2026) prints `datalength=N,type,code,id,seq,mtu`
//! instead, with pf.conf keywords for type and code.

use std::net::IpAddr;

use crate::body::{Fields, leading_number};
use crate::entry::{IcmpDetail, IcmpInfo};
use crate::error::{Field, ParseError};
use crate::num::parse_u64;

/// Smallest and largest IPv4 header, in bytes (IHL 5 to 15 words).
const MIN_IP_HEADER: u32 = 20;
const MAX_IP_HEADER: u32 = 60;

/// The ICMP fields after the addresses of a line whose IP length is `ip_length`.
pub(crate) fn icmp<'a>(f: &mut Fields<'a>, ip_length: u32) -> Result<IcmpInfo<'a>, ParseError> {
    let icmp_type = f.req(Field::IcmpType)?;
    if let Some(n) = icmp_type.strip_prefix("datalength=").and_then(leading_number) {
        return Ok(opnsense(f, n));
    }
    let text = f.rest();
    if text.is_empty() {
        // The type was the last thing printed (`type-??` and the named types of `icmp2str`), so it carries the
        // length.
        let (name, data_length) = text_and_length(icmp_type, ip_length);
        return Ok(IcmpInfo { icmp_type: Some(name), detail: IcmpDetail::Text(""), data_length });
    }
    let glued = Glued { ip_length };
    let typed = match icmp_type {
        "request" | "reply" | "tstamp" => glued.echo(f),
        "tstampreply" => glued.timestamp_reply(f),
        "unreachproto" => glued.unreach_proto(f),
        "unreachport" => glued.unreach_port(f),
        "needfrag" => glued.need_frag(f),
        _ => None,
    };
    Ok(match typed {
        Some((detail, data_length)) => IcmpInfo { icmp_type: Some(icmp_type), detail, data_length },
        None => {
            let (text, data_length) = text_and_length(text, ip_length);
            IcmpInfo { icmp_type: Some(icmp_type), detail: IcmpDetail::Text(text), data_length }
        }
    })
}

/// `datalength=N` and, from OPNsense's 2026 decoder on, `type,code,id,seq,mtu` (empty where not applicable).
fn opnsense<'a>(f: &mut Fields<'a>, data_length: u32) -> IcmpInfo<'a> {
    let Some(icmp_type) = f.next().filter(|t| !t.is_empty()) else {
        return IcmpInfo {
            icmp_type: None,
            detail: IcmpDetail::DataLength(data_length),
            data_length: Some(data_length),
        };
    };
    let code = f.next().unwrap_or("");
    let mut number = || f.next().and_then(parse_u64);
    let id = number().and_then(|v| u16::try_from(v).ok());
    let seq = number().and_then(|v| u16::try_from(v).ok());
    let mtu = number().and_then(|v| u32::try_from(v).ok());
    IcmpInfo {
        icmp_type: Some(icmp_type),
        detail: IcmpDetail::Coded { code, id, seq, mtu },
        data_length: Some(data_length),
    }
}

/// The typed pfSense layouts, each ending in a field with the message length glued on.
struct Glued {
    ip_length: u32,
}

impl Glued {
    /// `id,seq<len>` (`request`, `reply`, `tstamp`).
    fn echo<'a>(&self, f: &mut Fields<'a>) -> Option<(IcmpDetail<'a>, Option<u32>)> {
        let id = loose_u32(f.next()?)?;
        let (seq, data_length) = self.last_number(f.next()?, u16::MAX.into())?;
        Some((IcmpDetail::Echo { id, seq }, data_length))
    }

    /// ` id,seq,otime,rtime,ttime<len>`: each time is `%02u:%02u:%02u.%03u`, so the length starts after the three
    /// digits of the last one's milliseconds.
    fn timestamp_reply<'a>(&self, f: &mut Fields<'a>) -> Option<(IcmpDetail<'a>, Option<u32>)> {
        let id = loose_u32(f.next()?)?;
        let seq = loose_u32(f.next()?)?;
        let otime = f.next()?;
        let rtime = f.next()?;
        let last = f.next()?;
        let millis_end = last.find('.').map_or(last.len(), |dot| (dot + 4).min(last.len()));
        let (ttime, length) = (last.get(..millis_end)?, last.get(millis_end..)?);
        let data_length = parse_u64(length).and_then(|v| u32::try_from(v).ok());
        Some((IcmpDetail::TimestampReply { id, seq, otime, rtime, ttime }, data_length))
    }

    /// `dst,proto<len>`.
    fn unreach_proto<'a>(&self, f: &mut Fields<'a>) -> Option<(IcmpDetail<'a>, Option<u32>)> {
        let dst = loose_ip(f.next()?)?;
        let (proto, data_length) = self.last_number(f.next()?, u8::MAX.into())?;
        Some((IcmpDetail::UnreachProto { dst, proto }, data_length))
    }

    /// `dst,proto,port<len>` (proto `TCP`, `UDP` or a number).
    fn unreach_port<'a>(&self, f: &mut Fields<'a>) -> Option<(IcmpDetail<'a>, Option<u32>)> {
        let dst = loose_ip(f.next()?)?;
        let proto = f.next()?;
        let (port, data_length) = self.last_number(f.next()?, u16::MAX.into())?;
        Some((IcmpDetail::UnreachPort { dst, proto, port }, data_length))
    }

    /// `dst,mtu<len>`; without an MTU pfSense prints `dst need to frag<len>`, kept as text.
    fn need_frag<'a>(&self, f: &mut Fields<'a>) -> Option<(IcmpDetail<'a>, Option<u32>)> {
        let dst = loose_ip(f.next()?)?;
        let (mtu, data_length) = self.last_number(f.next()?, u16::MAX.into())?;
        Some((IcmpDetail::NeedFrag { dst, mtu }, data_length))
    }

    /// The number at the end of a line (at most `max`) and the length glued to it. When no split fits the IP
    /// length (another producer, a damaged or rewritten line), the field is read whole, without a length, as
    /// before the split existed: the line is kept rather than refused.
    fn last_number(&self, field: &str, max: u32) -> Option<(u32, Option<u32>)> {
        let fits = |head: &str| loose_u32(head).is_some_and(|v| v <= max);
        match split_glued(field, self.ip_length, fits) {
            Some((head, length)) => Some((loose_u32(head)?, Some(length))),
            None => Some((loose_u32(field)?, None)),
        }
    }
}

/// Free text with the length glued on: split where the IP length says, or else where the text's last run of
/// digits follows a letter or `?` (`unreachable48`, `type-??20`: the text itself ends in a word there).
fn text_and_length(text: &str, ip_length: u32) -> (&str, Option<u32>) {
    if let Some((head, length)) = split_glued(text, ip_length, |h| !h.is_empty()) {
        return (head, Some(length));
    }
    let digits = text.bytes().rev().take_while(u8::is_ascii_digit).count();
    let cut = text.len() - digits;
    let after_word = text.as_bytes().get(cut.wrapping_sub(1)).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'?');
    match (digits > 0 && after_word, text.get(..cut), text.get(cut..).and_then(parse_u64)) {
        (true, Some(head), Some(n)) => (head, u32::try_from(n).ok()),
        _ => (text, None),
    }
}

/// `field` split into what filterlog printed and the message length glued to its end, trying the header lengths
/// from the common one (20 bytes) up; `head_ok` judges what is left.
fn split_glued(field: &str, ip_length: u32, head_ok: impl Fn(&str) -> bool) -> Option<(&str, u32)> {
    (MIN_IP_HEADER..=MAX_IP_HEADER)
        .step_by(4)
        .filter_map(|header| ip_length.checked_sub(header))
        .find_map(|length| strip_decimal(field, length).filter(|head| head_ok(head)).map(|head| (head, length)))
}

/// `field` without `n` printed in decimal at its end.
fn strip_decimal(field: &str, n: u32) -> Option<&str> {
    let width = n.checked_ilog10().map_or(1, |l| l as usize + 1);
    let cut = field.len().checked_sub(width)?;
    let tail = field.get(cut..)?;
    (parse_u64(tail)? == u64::from(n)).then(|| field.get(..cut)).flatten()
}

/// A number with surrounding spaces allowed (ICMP fields: ` 17664`).
fn loose_u32(s: &str) -> Option<u32> {
    parse_u64(s.trim_matches(' ')).and_then(|v| u32::try_from(v).ok())
}

fn loose_ip(s: &str) -> Option<IpAddr> {
    s.trim_matches(' ').parse().ok()
}

//! What can be wrong with a line. Errors are small `Copy` values (no allocation on the malformed path) and name the
//! CSV field by its index (from 0, as in the contract's §8.2 and the Netgate documentation) and by its name.

use std::fmt;

use serde::Serialize;

/// Why a line is not a usable filterlog entry. Its `Display` is the reason shown to users for a skipped line
/// (`bad number in field 3 (tracker)`); the order lets callers count lines by reason in a sorted map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, thiserror::Error)]
pub enum ParseError {
    /// The line is blank: empty, only spaces or tabs, or only a line terminator.
    #[error("empty line")]
    Empty,
    /// The line is not from `filterlog`: another program's syslog line, or text that is neither a syslog line nor
    /// a filterlog CSV body.
    #[error("not filterlog")]
    NotFilterlog,
    /// The syslog prefix is recognisably one of the supported forms but broken (`part` says where).
    #[error("malformed syslog header: {part}")]
    BadHeader {
        /// The part of the header that is wrong.
        part: HeaderPart,
    },
    /// The line ends before a required field.
    #[error("missing field {index} ({field})")]
    MissingField {
        /// Index of the CSV field, from 0.
        index: u16,
        /// The field.
        field: Field,
    },
    /// A field that must be a number is not one, or does not fit its type.
    #[error("bad number in field {index} ({field})")]
    BadNumber {
        /// Index of the CSV field, from 0.
        index: u16,
        /// The field.
        field: Field,
    },
    /// A field that must be an IP address of the line's IP version is not one.
    #[error("bad IP address in field {index} ({field})")]
    BadIp {
        /// Index of the CSV field, from 0.
        index: u16,
        /// The field.
        field: Field,
    },
    /// A field has a value outside its vocabulary (an action other than pass/block/reject, a direction other than
    /// in/out, an IP version other than 4/6, an empty interface).
    #[error("unexpected value in field {index} ({field})")]
    BadValue {
        /// Index of the CSV field, from 0.
        index: u16,
        /// The field.
        field: Field,
    },
}

/// The part of a syslog prefix that is wrong, in [`ParseError::BadHeader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderPart {
    /// `<PRI>` is not 1–3 digits up to 191 between `<` and `>`.
    Priority,
    /// The timestamp is not `Mmm dd hh:mm:ss` or RFC 3339.
    Timestamp,
    /// RFC 5424 structured data is neither `-` nor well-formed `[...]` elements.
    StructuredData,
    /// The line ends inside the prefix.
    Truncated,
}

impl HeaderPart {
    /// A short description.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderPart::Priority => "bad priority",
            HeaderPart::Timestamp => "bad timestamp",
            HeaderPart::StructuredData => "bad structured data",
            HeaderPart::Truncated => "truncated",
        }
    }
}

impl fmt::Display for HeaderPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! fields {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// A CSV field of the filterlog body, named in errors.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Field {
            $($(#[$doc])* #[doc = concat!("`", $name, "`")] $variant,)*
        }

        impl Field {
            /// The field's name as used in the contract.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Field::$variant => $name,)*
                }
            }
        }
    };
}

fields! {
    RuleNumber => "rule number",
    SubRule => "sub-rule",
    Anchor => "anchor",
    Tracker => "tracker",
    Interface => "interface",
    Reason => "reason",
    Action => "action",
    Direction => "direction",
    IpVersion => "IP version",
    Tos => "tos",
    Ecn => "ecn",
    Ttl => "ttl",
    Id => "id",
    Offset => "offset",
    Flags => "flags",
    ProtocolId => "protocol id",
    Protocol => "protocol",
    Length => "length",
    Class => "class",
    FlowLabel => "flow label",
    HopLimit => "hop limit",
    SourceAddress => "source address",
    DestinationAddress => "destination address",
    SourcePort => "source port",
    DestinationPort => "destination port",
    DataLength => "data length",
    Sequence => "sequence",
    Acknowledgement => "acknowledgement",
    Window => "window",
    UrgentPointer => "urgent pointer",
    IcmpType => "ICMP type",
    CarpType => "CARP type",
    CarpTtl => "CARP ttl",
    Vhid => "vhid",
    CarpVersion => "CARP version",
    Advskew => "advskew",
    Advbase => "advbase",
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The variant of a [`ParseError`] without its details: the key of [`crate::ParseStats::by_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParseErrorKind {
    /// [`ParseError::Empty`]
    Empty,
    /// [`ParseError::NotFilterlog`]
    NotFilterlog,
    /// [`ParseError::BadHeader`]
    BadHeader,
    /// [`ParseError::MissingField`]
    MissingField,
    /// [`ParseError::BadNumber`]
    BadNumber,
    /// [`ParseError::BadIp`]
    BadIp,
    /// [`ParseError::BadValue`]
    BadValue,
}

impl ParseErrorKind {
    /// Every kind, in order.
    pub const ALL: [ParseErrorKind; 7] = [
        ParseErrorKind::Empty,
        ParseErrorKind::NotFilterlog,
        ParseErrorKind::BadHeader,
        ParseErrorKind::MissingField,
        ParseErrorKind::BadNumber,
        ParseErrorKind::BadIp,
        ParseErrorKind::BadValue,
    ];

    /// The kind in words, for counts of skipped lines (`3 not filterlog, 1 bad number`).
    pub fn describe(self) -> &'static str {
        match self {
            ParseErrorKind::Empty => "empty",
            ParseErrorKind::NotFilterlog => "not filterlog",
            ParseErrorKind::BadHeader => "malformed syslog header",
            ParseErrorKind::MissingField => "missing field",
            ParseErrorKind::BadNumber => "bad number",
            ParseErrorKind::BadIp => "bad IP address",
            ParseErrorKind::BadValue => "unexpected value",
        }
    }
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl ParseError {
    /// The variant without its details.
    pub fn kind(&self) -> ParseErrorKind {
        match self {
            ParseError::Empty => ParseErrorKind::Empty,
            ParseError::NotFilterlog => ParseErrorKind::NotFilterlog,
            ParseError::BadHeader { .. } => ParseErrorKind::BadHeader,
            ParseError::MissingField { .. } => ParseErrorKind::MissingField,
            ParseError::BadNumber { .. } => ParseErrorKind::BadNumber,
            ParseError::BadIp { .. } => ParseErrorKind::BadIp,
            ParseError::BadValue { .. } => ParseErrorKind::BadValue,
        }
    }

    /// The CSV field the error is about, when it is about one.
    pub fn field(&self) -> Option<Field> {
        match *self {
            ParseError::MissingField { field, .. }
            | ParseError::BadNumber { field, .. }
            | ParseError::BadIp { field, .. }
            | ParseError::BadValue { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The CSV field index the error is about, when it is about one.
    pub fn field_index(&self) -> Option<u16> {
        match *self {
            ParseError::MissingField { index, .. }
            | ParseError::BadNumber { index, .. }
            | ParseError::BadIp { index, .. }
            | ParseError::BadValue { index, .. } => Some(index),
            _ => None,
        }
    }
}

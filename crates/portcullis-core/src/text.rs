//! Free text: descriptions, reasons and labels. What a person reads must be what the text is: control
//! characters, the Unicode bidirectional controls, zero-width and other format characters (general category
//! Cf) and line/paragraph separators can make a description display as something other than what it is
//! ("block" shown as "kcolb", an invisible word in a rule's name). Text given to Portcullis is refused when it
//! holds any of them; text read from a firewall, which Portcullis must keep, is shown with them escaped.

use std::borrow::Cow;
use std::fmt::Write as _;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::error::{FieldError, FieldResult};

/// Characters refused in free text.
pub const FORBIDDEN_IN_TEXT: &str = r#"<>`$;|&\"'{}"#;

/// Whether a character changes how text displays without being visible itself.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// Free text such as descriptions and reasons: bounded, no control, bidi or format characters, no markup.
pub fn validate_text(field: &str, s: &str, max_len: usize) -> FieldResult<()> {
    if s.chars().count() > max_len {
        return Err(FieldError::new(field, format!("is longer than {max_len} characters")));
    }
    if let Some(c) = s.chars().find(|c| is_invisible(*c)) {
        return Err(FieldError::new(
            field,
            format!("contains the invisible character U+{:04X} ({}); use plain text", c as u32, kind_of(c)),
        ));
    }
    // Text goes to firewall configs, shells on the firewall, logs and HTML reports: markup, quoting and shell
    // metacharacters have no business in a rule description.
    if let Some(c) = s.chars().find(|c| FORBIDDEN_IN_TEXT.contains(*c)) {
        return Err(FieldError::new(
            field,
            format!("contains {c:?}; markup, quotes and shell metacharacters ({FORBIDDEN_IN_TEXT}) are not allowed"),
        ));
    }
    Ok(())
}

/// Text read from outside, with every invisible character written as `\u{…}`, so it shows as what it is.
pub fn show_invisible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_invisible) {
        return Cow::Borrowed(s);
    }
    let mut shown = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_invisible(c) {
            let _ = write!(shown, "\\u{{{:04X}}}", c as u32);
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

fn kind_of(c: char) -> &'static str {
    match c {
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}' => {
            "a bidirectional control"
        }
        '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' => "a zero-width character",
        c if c.is_control() => "a control character",
        '\u{2028}' | '\u{2029}' => "a line or paragraph separator",
        _ => "a format character",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_in_any_script_is_accepted() {
        for ok in ["Allow SSH from office", "Büro-Zugang", "نظام", "東京オフィス", "emoji 🔒 ok", "a - b (c)"]
        {
            assert!(validate_text("description", ok, 255).is_ok(), "{ok}");
        }
    }

    #[test]
    fn every_invisible_spelling_is_refused_and_named() {
        let spellings = [
            ("rtl override", "block \u{202E}kcolb"),
            ("rtl isolate", "a\u{2067}b\u{2069}"),
            ("rtl mark", "x\u{200F}y"),
            ("arabic letter mark", "x\u{061C}y"),
            ("zero-width space", "allow\u{200B}all"),
            ("zero-width joiner", "a\u{200D}b"),
            ("word joiner", "a\u{2060}b"),
            ("byte order mark", "\u{FEFF}lead"),
            ("soft hyphen", "pass\u{00AD}word"),
            ("line separator", "one\u{2028}two"),
            ("paragraph separator", "one\u{2029}two"),
            ("bell", "evil\u{7}bell"),
            ("newline", "line\nbreak"),
            ("C1 control", "x\u{85}y"),
            ("tag character", "x\u{E0041}y"),
        ];
        for (name, text) in spellings {
            let e = validate_text("reason", text, 255).unwrap_err();
            assert_eq!(e.field, "reason", "{name}");
            assert!(e.message.contains("U+"), "{name}: {}", e.message);
        }
        let e = validate_text("description", "block \u{202E}kcolb", 255).unwrap_err();
        assert!(e.message.contains("U+202E") && e.message.contains("bidirectional"), "{}", e.message);
    }

    #[test]
    fn markup_and_metacharacters_stay_refused() {
        for bad in ["<script>", "a;b", "$(id)", "`x`", "\"q\""] {
            assert!(validate_text("description", bad, 255).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_from_outside_shows_its_invisible_characters() {
        assert!(matches!(show_invisible("plain"), Cow::Borrowed("plain")));
        assert_eq!(show_invisible("block \u{202E}kcolb"), "block \\u{202E}kcolb");
        assert_eq!(show_invisible("a\u{200B}b\nc"), "a\\u{200B}b\\u{000A}c");
        // Shown text is plain: showing it again changes nothing.
        let once = show_invisible("x\u{2066}y").into_owned();
        assert_eq!(show_invisible(&once), once);
    }
}

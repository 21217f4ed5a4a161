//! The root shell behind `POST /api/v2/diagnostics/command_prompt`, as far as Portcullis uses it: writing a rules
//! file with `printf`, and loading, flushing and listing a pf anchor with `pfctl`. pf's anchors are state of the
//! running firewall, not of config.xml: a filter reload leaves them, a reboot empties them
//! ([`ShellState::reboot`]).
//!
//! Exactly these command shapes are understood (everything else answers exit status 127 and is recorded as a
//! violation, so a test sees any command it did not expect):
//!
//! - `printf '%s\n' 'LINE' 'LINE' … > FILE` and `… >> FILE`
//! - `/sbin/pfctl -a ANCHOR -f FILE` — checks every line against the part of pf.conf's grammar Portcullis writes
//!   and replaces the anchor's rules only if all of them parse (as pfctl does); counters start at zero
//! - `/sbin/pfctl -a ANCHOR -F rules`
//! - `/sbin/pfctl -a ANCHOR -sr` and `-vsr` (with each rule's counters)

use std::collections::BTreeMap;

use serde::Serialize;

/// The files and anchors the shell has seen.
#[derive(Debug, Default)]
pub(crate) struct ShellState {
    files: BTreeMap<String, String>,
    anchors: BTreeMap<String, Vec<AnchorRule>>,
}

/// One loaded rule with pf's counters for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AnchorRule {
    pub text: String,
    pub evaluations: u64,
    pub packets: u64,
    pub bytes: u64,
}

/// What a command printed and its exit status; `unexpected` when the emulator does not know the command.
pub(crate) struct Ran {
    pub output: String,
    pub result_code: i64,
    pub unexpected: bool,
}

impl Ran {
    fn ok(output: impl Into<String>) -> Self {
        Ran { output: output.into(), result_code: 0, unexpected: false }
    }

    fn failed(output: impl Into<String>, code: i64) -> Self {
        Ran { output: output.into(), result_code: code, unexpected: false }
    }

    fn unknown(command: &str) -> Self {
        Ran {
            output: format!("sh: the emulator does not run this command: {command}"),
            result_code: 127,
            unexpected: true,
        }
    }
}

impl ShellState {
    pub(crate) fn run(&mut self, command: &str) -> Ran {
        if let Some(rest) = command.strip_prefix("printf '%s\\n' ") {
            return self.printf(command, rest);
        }
        if let Some(rest) = command.strip_prefix("/sbin/pfctl -a ") {
            return self.pfctl(command, rest);
        }
        Ran::unknown(command)
    }

    /// What a reboot does to state outside config.xml: anchors and `/tmp` are empty again.
    pub(crate) fn reboot(&mut self) {
        self.files.clear();
        self.anchors.clear();
    }

    pub(crate) fn anchors(&self) -> BTreeMap<String, Vec<AnchorRule>> {
        self.anchors.clone()
    }

    /// Sets the counters of the rule with this label in `anchor`, as traffic would; false when there is none.
    pub(crate) fn count(&mut self, anchor: &str, label: &str, packets: u64, bytes: u64) -> bool {
        let quoted = format!("label \"{label}\"");
        let Some(rule) = self.anchors.get_mut(anchor).and_then(|r| r.iter_mut().find(|r| r.text.contains(&quoted)))
        else {
            return false;
        };
        rule.evaluations = rule.evaluations.max(packets);
        rule.packets = packets;
        rule.bytes = bytes;
        true
    }

    fn printf(&mut self, command: &str, rest: &str) -> Ran {
        let Some((args, append, path)) = split_redirect(rest) else { return Ran::unknown(command) };
        let Some(lines) = single_quoted_words(args) else { return Ran::unknown(command) };
        let file = self.files.entry(path.to_string()).or_default();
        if !append {
            file.clear();
        }
        for line in lines {
            file.push_str(&line);
            file.push('\n');
        }
        Ran::ok("")
    }

    fn pfctl(&mut self, command: &str, rest: &str) -> Ran {
        let Some((anchor, verb)) = rest.split_once(' ') else { return Ran::unknown(command) };
        if anchor.is_empty() || !anchor.chars().all(|c| c.is_ascii_alphanumeric() || "_/".contains(c)) {
            return Ran::unknown(command);
        }
        match verb {
            "-F rules" => {
                self.anchors.remove(anchor);
                Ran::ok("rules cleared\n")
            }
            "-sr" => Ran::ok(self.listing(anchor, false)),
            "-vsr" => Ran::ok(self.listing(anchor, true)),
            _ => match verb.strip_prefix("-f ") {
                Some(path) => self.load(anchor, path),
                None => Ran::unknown(command),
            },
        }
    }

    fn load(&mut self, anchor: &str, path: &str) -> Ran {
        let Some(text) = self.files.get(path) else {
            return Ran::failed(format!("pfctl: {path}: No such file or directory\n"), 1);
        };
        let mut rules = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            if let Err(why) = grammar::rule(line) {
                return Ran::failed(
                    format!(
                        "{path}:{}: syntax error ({why})\npfctl: Syntax error in config file: pf rules not loaded\n",
                        n + 1
                    ),
                    1,
                );
            }
            rules.push(AnchorRule { text: line.to_string(), ..AnchorRule::default() });
        }
        if rules.is_empty() {
            self.anchors.remove(anchor);
        } else {
            self.anchors.insert(anchor.to_string(), rules);
        }
        Ran::ok("")
    }

    fn listing(&self, anchor: &str, verbose: bool) -> String {
        let mut out = String::new();
        for rule in self.anchors.get(anchor).map(Vec::as_slice).unwrap_or_default() {
            out.push_str(&rule.text);
            out.push('\n');
            if verbose {
                out.push_str(&format!(
                    "  [ Evaluations: {:<10}Packets: {:<10}Bytes: {:<12}States: 0     ]\n",
                    rule.evaluations, rule.packets, rule.bytes
                ));
                out.push_str("  [ Inserted: uid 0 pid 4242 State Creations: 0     ]\n");
            }
        }
        out
    }
}

/// `ARGS > PATH` or `ARGS >> PATH`: the arguments, whether it appends, and the path (one word under `/tmp`).
fn split_redirect(rest: &str) -> Option<(&str, bool, &str)> {
    let (args, append, path) = match rest.rsplit_once(" >> ") {
        Some((a, p)) => (a, true, p),
        None => {
            let (a, p) = rest.rsplit_once(" > ")?;
            (a, false, p)
        }
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    (path.starts_with("/tmp/") && path.chars().all(plain)).then_some((args, append, path))
}

/// `'a' 'b c' 'd'`: the words, each in single quotes (which a word cannot contain), one space apart.
fn single_quoted_words(text: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut rest = text;
    loop {
        let body = rest.strip_prefix('\'')?;
        let end = body.find('\'')?;
        words.push(body[..end].to_string());
        rest = &body[end + 1..];
        if rest.is_empty() {
            return Some(words);
        }
        rest = rest.strip_prefix(' ')?;
    }
}

/// The part of pf.conf's rule grammar Portcullis writes into its anchor:
///
/// ```text
/// (pass|block) (in|out) quick on IF [dup-to (IF | "(" IF ADDRESS ")")] [inet|inet6] [proto NAME]
///     from HOST [port PORTS] to HOST [port PORTS] [no state | keep state] [max-pkt-rate N/S] [label "TEXT"]
/// HOST  = any | [!] ADDRESS[/LEN] | <TABLE>
/// PORTS = N | N:M | != N | N <> M
/// ```
mod grammar {
    use std::net::IpAddr;

    type Parsed<T> = Result<T, String>;

    struct Words<'a> {
        words: Vec<&'a str>,
        at: usize,
    }

    impl<'a> Words<'a> {
        fn peek(&self) -> Option<&'a str> {
            self.words.get(self.at).copied()
        }

        fn next(&mut self) -> Parsed<&'a str> {
            let w = self.peek().ok_or("the rule ends too early")?;
            self.at += 1;
            Ok(w)
        }

        fn expect(&mut self, word: &str) -> Parsed<()> {
            match self.next()? {
                w if w == word => Ok(()),
                w => Err(format!("expected {word}, found {w}")),
            }
        }

        fn take(&mut self, word: &str) -> bool {
            let found = self.peek() == Some(word);
            if found {
                self.at += 1;
            }
            found
        }
    }

    /// Splits on spaces, keeping `"quoted text"` as one word and `(` `)` as words of their own.
    fn split(line: &str) -> Parsed<Vec<&str>> {
        let mut words = Vec::new();
        let mut rest = line.trim();
        while !rest.is_empty() {
            if let Some(body) = rest.strip_prefix('"') {
                let end = body.find('"').ok_or("a label's quote is not closed")?;
                words.push(&rest[..end + 2]);
                rest = rest[end + 2..].trim_start();
                continue;
            }
            if rest.starts_with('(') || rest.starts_with(')') {
                words.push(&rest[..1]);
                rest = rest[1..].trim_start();
                continue;
            }
            let end = rest.find([' ', ')']).unwrap_or(rest.len());
            words.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
        Ok(words)
    }

    pub(super) fn rule(line: &str) -> Parsed<()> {
        if line.contains('\'') || line.contains('$') || line.contains('`') || line.contains(';') {
            return Err("characters pf.conf does not take here".into());
        }
        let mut w = Words { words: split(line)?, at: 0 };
        match w.next()? {
            "pass" | "block" => {}
            other => return Err(format!("unknown action {other}")),
        }
        match w.next()? {
            "in" | "out" => {}
            other => return Err(format!("expected in or out, found {other}")),
        }
        w.expect("quick")?;
        w.expect("on")?;
        interface(w.next()?)?;
        if w.take("dup-to") {
            if w.take("(") {
                interface(w.next()?)?;
                w.next()?.parse::<IpAddr>().map_err(|_| "dup-to needs an address".to_string())?;
                w.expect(")")?;
            } else {
                interface(w.next()?)?;
            }
        }
        let _ = w.take("inet") || w.take("inet6");
        if w.take("proto") {
            match w.next()? {
                "tcp" | "udp" | "icmp" | "icmp6" => {}
                number if number.parse::<u8>().is_ok() => {}
                other => return Err(format!("unknown protocol {other}")),
            }
        }
        w.expect("from")?;
        host(&mut w)?;
        ports(&mut w)?;
        w.expect("to")?;
        host(&mut w)?;
        ports(&mut w)?;
        if w.take("no") || w.take("keep") {
            w.expect("state")?;
        }
        if w.take("max-pkt-rate") {
            let (n, s) = w.next()?.split_once('/').ok_or("max-pkt-rate is number/seconds")?;
            n.parse::<u32>().ok().filter(|n| *n > 0).ok_or("max-pkt-rate's number")?;
            s.parse::<u32>().ok().filter(|s| *s > 0).ok_or("max-pkt-rate's seconds")?;
        }
        if w.take("label") {
            let label = w.next()?;
            if !(label.len() >= 2 && label.starts_with('"') && label.ends_with('"') && label.len() <= 65) {
                return Err("a label is quoted and at most 63 characters".into());
            }
        }
        match w.peek() {
            None => Ok(()),
            Some(extra) => Err(format!("unexpected {extra}")),
        }
    }

    fn interface(name: &str) -> Parsed<()> {
        let ok = !name.is_empty() && name.len() <= 15 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
        if ok { Ok(()) } else { Err(format!("{name} is not an interface")) }
    }

    fn host(w: &mut Words<'_>) -> Parsed<()> {
        if w.take("any") {
            return Ok(());
        }
        let negated = w.take("!");
        let word = w.next()?;
        if let Some(table) = word.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
            let ok = !negated && !table.is_empty() && table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            return if ok { Ok(()) } else { Err(format!("{word} is not a table")) };
        }
        let (address, len) = word.split_once('/').map_or((word, None), |(a, l)| (a, Some(l)));
        let address: IpAddr = address.parse().map_err(|_| format!("{word} is not an address"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        if let Some(len) = len {
            len.parse::<u8>().ok().filter(|l| *l <= max).ok_or(format!("{word} has a bad prefix length"))?;
        }
        Ok(())
    }

    fn ports(w: &mut Words<'_>) -> Parsed<()> {
        if !w.take("port") {
            return Ok(());
        }
        let number = |s: &str| s.parse::<u16>().map_err(|_| format!("{s} is not a port"));
        if w.take("!=") {
            number(w.next()?)?;
            return Ok(());
        }
        let first = w.next()?;
        if let Some((lo, hi)) = first.split_once(':') {
            if number(lo)? > number(hi)? {
                return Err(format!("{first} is an empty range"));
            }
            return Ok(());
        }
        number(first)?;
        if w.take("<>") {
            number(w.next()?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "/tmp/portcullis_mirror.rules";
    const ANCHOR: &str = "userrules/portcullis_mirror";

    #[test]
    fn a_file_written_in_pieces_loads_into_the_anchor_and_lists_with_counters() {
        let mut sh = ShellState::default();
        let first = "block in quick on igb0 from <PORTCULLIS_BLOCK> to any";
        let second = "pass in quick on igb0 dup-to (igb2 10.99.0.2) inet proto tcp from any to any port 80 no state \
                      max-pkt-rate 1000/1 label \"pcm:0a1b2c3d:0\"";
        assert_eq!(sh.run(&format!("printf '%s\\n' '{first}' > {FILE}")).result_code, 0);
        assert_eq!(sh.run(&format!("printf '%s\\n' '{second}' >> {FILE}")).result_code, 0);
        assert_eq!(sh.run(&format!("/sbin/pfctl -a {ANCHOR} -f {FILE}")).result_code, 0);
        assert_eq!(sh.run(&format!("/sbin/pfctl -a {ANCHOR} -sr")).output, format!("{first}\n{second}\n"));
        assert!(sh.count(ANCHOR, "pcm:0a1b2c3d:0", 7, 900));
        let verbose = sh.run(&format!("/sbin/pfctl -a {ANCHOR} -vsr")).output;
        assert!(verbose.contains("Packets: 7 ") && verbose.contains("Bytes: 900 "), "{verbose}");
        sh.reboot();
        assert_eq!(sh.run(&format!("/sbin/pfctl -a {ANCHOR} -sr")).output, "");
    }

    #[test]
    fn a_bad_line_loads_nothing_and_unknown_commands_are_refused() {
        let mut sh = ShellState::default();
        sh.run(&format!("printf '%s\\n' 'pass in quick on igb0 from any to any' > {FILE}"));
        sh.run(&format!("/sbin/pfctl -a {ANCHOR} -f {FILE}"));
        sh.run(&format!("printf '%s\\n' 'pass in quick on igb0 from any to any port 99999' > {FILE}"));
        let ran = sh.run(&format!("/sbin/pfctl -a {ANCHOR} -f {FILE}"));
        assert_eq!(ran.result_code, 1, "{}", ran.output);
        assert_eq!(sh.anchors()[ANCHOR].len(), 1, "the earlier rules stay");
        for command in ["rm -rf /", "/sbin/pfctl -a x -F all", "printf '%s\\n' 'x' > /etc/passwd"] {
            let ran = sh.run(command);
            assert!(ran.unexpected && ran.result_code == 127, "{command}");
        }
        assert_eq!(sh.run(&format!("/sbin/pfctl -a {ANCHOR} -F rules")).result_code, 0);
        assert!(sh.anchors().is_empty());
    }
}

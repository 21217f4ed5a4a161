//! Operation allow and deny lists with `*` wildcards (`read_*`, `block_ip`). A deny always wins.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationPolicy {
    /// `None` allows every operation not denied.
    allowed: Option<Vec<String>>,
    denied: Vec<String>,
}

impl OperationPolicy {
    pub fn allow_all() -> Self {
        Self { allowed: None, denied: Vec::new() }
    }

    pub fn new(allowed: Option<Vec<String>>, denied: Vec<String>) -> Self {
        Self { allowed, denied }
    }

    /// `Ok` when the operation may run, else the reason.
    pub fn check(&self, operation: &str) -> Result<(), String> {
        if let Some(p) = self.denied.iter().find(|p| pattern_matches(p, operation)) {
            return Err(format!("denied by security.denied_operations entry {p:?}"));
        }
        match &self.allowed {
            None => Ok(()),
            Some(list) if list.iter().any(|p| pattern_matches(p, operation)) => Ok(()),
            Some(_) => Err("not listed in security.allowed_operations".into()),
        }
    }
}

/// Glob matching with `*` for any run of characters; everything else literal.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = parts.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(pattern_matches("read_*", "read_rules"));
        assert!(!pattern_matches("read_*", "create_rule"));
        assert!(pattern_matches("*", "anything"));
        assert!(pattern_matches("*_rule", "delete_rule"));
        assert!(pattern_matches("block_ip", "block_ip"));
        assert!(!pattern_matches("block_ip", "block_ip_range"));
        assert!(pattern_matches("a*b*c", "aXXbYYc"));
        assert!(!pattern_matches("a*b*c", "aXXcYYb"));
    }

    #[test]
    fn deny_wins_and_allow_list_is_strict() {
        let p = OperationPolicy::new(Some(vec!["read_*".into(), "block_ip".into()]), vec!["read_logs".into()]);
        assert!(p.check("read_rules").is_ok());
        assert!(p.check("block_ip").is_ok());
        assert!(p.check("read_logs").is_err());
        assert!(p.check("delete_rule").is_err());
    }
}

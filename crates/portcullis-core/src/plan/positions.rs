//! Rule positions: an index among an interface's rules, mapped to the global ordered rule list.

use crate::model::Rule;

/// Where the `position`-th rule of `interface` goes in the global, ordered rule list: before the rule now at
/// that position, or after the interface's last rule.
pub fn global_index(rules: &[Rule], interface: &str, position: usize) -> usize {
    global_index_by(rules, |r| r.interface == interface, position)
}

/// `global_index` over any ordered list whose items belong to interfaces (e.g. a device's own rule records).
pub fn global_index_by<T>(items: &[T], on_interface: impl Fn(&T) -> bool, position: usize) -> usize {
    let mut seen = 0;
    let mut after_last = None;
    for (i, item) in items.iter().enumerate() {
        if on_interface(item) {
            if seen == position {
                return i;
            }
            seen += 1;
            after_last = Some(i + 1);
        }
    }
    after_last.unwrap_or(items.len())
}

//! The IEEE registry of hardware address blocks (OUI), as the CSV files Debian's `ieee-data` ships them
//! (`oui.csv` for MA-L, `mam.csv` for MA-M, `oui36.csv` for MA-S: `Registry,Assignment,Organization Name,…`).
//! A lookup tries the longest block first.

use std::collections::HashMap;

use super::Mac;

/// Vendors by assigned block.
#[derive(Debug, Clone, Default)]
pub struct OuiRegistry {
    /// By the block's prefix length in bits (24, 28, 36): the prefix's value, the organisation.
    blocks: [(u8, HashMap<u64, String>); 3],
}

impl OuiRegistry {
    pub fn new() -> Self {
        Self { blocks: [(36, HashMap::new()), (28, HashMap::new()), (24, HashMap::new())] }
    }

    /// Adds the rows of one registry file; how many it read. Rows that do not parse are skipped.
    pub fn add_csv(&mut self, text: &str) -> usize {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
        let mut added = 0;
        for row in reader.records().flatten() {
            let (Some(registry), Some(assignment), Some(name)) = (row.get(0), row.get(1), row.get(2)) else { continue };
            let bits = match registry.trim() {
                "MA-L" => 24,
                "MA-M" => 28,
                "MA-S" => 36,
                _ => continue,
            };
            let hex = assignment.trim();
            if hex.len() * 4 != bits as usize {
                continue;
            }
            let Ok(prefix) = u64::from_str_radix(hex, 16) else { continue };
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            if let Some((_, map)) = self.blocks.iter_mut().find(|(b, _)| *b == bits) {
                map.insert(prefix, name.to_string());
                added += 1;
            }
        }
        added
    }

    pub fn len(&self) -> usize {
        self.blocks.iter().map(|(_, m)| m.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The organisation the address' block is assigned to; `None` for a locally administered address or an
    /// unassigned block.
    pub fn vendor(&self, mac: &Mac) -> Option<&str> {
        if mac.locally_administered() {
            return None;
        }
        let value = mac.octets().iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        self.blocks.iter().find_map(|(bits, map)| map.get(&(value >> (48 - u32::from(*bits)))).map(String::as_str))
    }
}

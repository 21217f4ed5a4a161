//! `devices:` in the config file: when a device counts as gone, the vendor registry, and DHCP leases files.

use std::path::PathBuf;

use portcullis_core::device::LeaseFormat;
use portcullis_tools::{DEFAULT_OUI_FILES, DeviceSettings, LeaseFile};
use serde::{Deserialize, Serialize};

/// `devices:` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevicesConfig {
    /// A device not seen present for this long is offline.
    pub idle: String,
    /// The IEEE OUI registry (CSV, as Debian's `ieee-data` ships it: MA-L, MA-M, MA-S).
    pub oui_files: Vec<PathBuf>,
    /// DHCP servers' leases files on this host.
    pub leases: Vec<LeaseFileConfig>,
}

/// One leases file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseFileConfig {
    pub path: PathBuf,
    /// dnsmasq, isc or kea.
    pub format: LeaseFormat,
    /// The target whose networks it serves; the default target when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The interface its leases are on, when it serves one network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        Self {
            idle: "10m".into(),
            oui_files: DEFAULT_OUI_FILES.iter().map(PathBuf::from).collect(),
            leases: Vec::new(),
        }
    }
}

impl DevicesConfig {
    /// The settings, or the key that is wrong and why.
    pub fn settings(&self) -> Result<DeviceSettings, (String, String)> {
        let idle = portcullis_core::duration::parse_span("devices.idle", &self.idle)
            .map_err(|e| ("devices.idle".to_string(), e.message))?
            .to_std()
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| ("devices.idle".to_string(), "must be above 0".to_string()))?;
        let leases = self
            .leases
            .iter()
            .map(|l| LeaseFile {
                target: l.target.clone(),
                path: l.path.clone(),
                format: l.format,
                interface: l.interface.clone(),
            })
            .collect();
        Ok(DeviceSettings { idle, oui_files: self.oui_files.clone(), leases })
    }
}

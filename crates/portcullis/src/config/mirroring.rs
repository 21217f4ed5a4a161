//! The `mirroring:` section: the sensors traffic may be copied to, and the bounds of every mirror. A call names a
//! sensor; it can never give an address, so copies only ever go where this file says.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use portcullis_core::mirror::{Sensor, SensorKind, VXLAN_PORT};
use portcullis_tools::{MirrorSettings, SensorSetting};
use serde::{Deserialize, Serialize};

/// `mirroring:` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirroringConfig {
    /// How long a mirror runs when a call gives no duration.
    pub default_duration: String,
    /// The longest a mirror may run.
    pub max_duration: String,
    /// Packets per second copied when a call gives no `rate_limit`.
    pub default_rate_limit: u32,
    /// The highest `rate_limit` a call may ask.
    pub max_rate_limit: u32,
    /// Sensors by name.
    pub sensors: BTreeMap<String, SensorConfig>,
}

impl Default for MirroringConfig {
    fn default() -> Self {
        Self {
            default_duration: "1h".into(),
            max_duration: "24h".into(),
            default_rate_limit: 1000,
            max_rate_limit: 100_000,
            sensors: BTreeMap::new(),
        }
    }
}

/// One sensor: exactly one of `interface` alone (copies leave on it, L2), `address` with `interface` (copies
/// routed to the sensor's address through it, L3), or `vxlan` (a tunnel to a remote sensor).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensorConfig {
    /// The target the sensor hangs off (default: the default target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// An interface of the target (logical name or kernel device) the sensor listens on, or the one its address
    /// is reached through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vxlan: Option<VxlanConfig>,
    /// The interfaces whose `enable_traffic_analysis` copies to this sensor.
    pub serves: Vec<String>,
    /// The IDS that reads the copies (e.g. `suricata`); without one, deep packet inspection is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The sensor's Suricata `eve.json` (shared with this host), followed for alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eve: Option<PathBuf>,
}

/// A VXLAN tunnel to a remote sensor.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VxlanConfig {
    pub remote: String,
    pub vni: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    #[serde(default = "default_vxlan_port")]
    pub port: u16,
}

fn default_vxlan_port() -> u16 {
    VXLAN_PORT
}

impl MirroringConfig {
    /// The settings the service uses, or the key at fault and why.
    pub fn settings(&self) -> Result<MirrorSettings, (String, String)> {
        let span = |key: &str, text: &str| {
            portcullis_core::duration::parse_span(key, text).map_err(|e| (format!("mirroring.{key}"), e.message))
        };
        let default_duration = span("default_duration", &self.default_duration)?;
        let max_duration = span("max_duration", &self.max_duration)?;
        if default_duration > max_duration {
            return Err(("mirroring.default_duration".into(), "is longer than mirroring.max_duration".into()));
        }
        if self.default_rate_limit == 0 || self.default_rate_limit > self.max_rate_limit {
            return Err((
                "mirroring.default_rate_limit".into(),
                format!("must be between 1 and mirroring.max_rate_limit ({})", self.max_rate_limit),
            ));
        }
        let sensors = self.sensors.iter().map(|(name, s)| s.setting(name)).collect::<Result<Vec<_>, _>>()?;
        let mut vnis = std::collections::BTreeSet::new();
        for s in &sensors {
            if let SensorKind::Vxlan { vni, .. } = &s.sensor.kind
                && !vnis.insert((s.target.clone(), *vni))
            {
                return Err((
                    format!("mirroring.sensors.{}.vxlan.vni", s.sensor.name),
                    format!("VNI {vni} is used by another sensor"),
                ));
            }
        }
        Ok(MirrorSettings {
            default_duration,
            max_duration,
            default_rate_limit: self.default_rate_limit,
            max_rate_limit: self.max_rate_limit,
            sensors,
        })
    }
}

impl MirroringConfig {
    /// The eve.json of each sensor that names one, followed like `logs.eve_files`. A sensor serving one interface
    /// counts its alerts on it (so `alerts` thresholds of `enable_traffic_analysis` apply); one serving several
    /// keeps the sensor's own `in_iface`.
    pub fn eve_sources(&self, default_target: &str) -> Vec<portcullis_tools::EveSourceSpec> {
        self.sensors
            .iter()
            .filter_map(|(name, s)| {
                Some(portcullis_tools::EveSourceSpec {
                    path: s.eve.clone()?,
                    target: s.target.clone().unwrap_or_else(|| default_target.to_string()),
                    interface: match s.serves.as_slice() {
                        [only] => Some(only.clone()),
                        _ => None,
                    },
                    sensor: Some(name.clone()),
                })
            })
            .collect()
    }
}

impl SensorConfig {
    fn setting(&self, name: &str) -> Result<SensorSetting, (String, String)> {
        let key = format!("mirroring.sensors.{name}");
        let addr = |field: &str, text: &str| -> Result<IpAddr, (String, String)> {
            portcullis_core::address::parse_host(field, text).map_err(|e| (e.field, e.message))
        };
        let kind = match (&self.interface, &self.address, &self.vxlan) {
            (Some(interface), None, None) => SensorKind::Interface { interface: interface.clone() },
            (Some(interface), Some(address), None) => {
                SensorKind::Address { address: addr(&format!("{key}.address"), address)?, interface: interface.clone() }
            }
            (None, None, Some(v)) => SensorKind::Vxlan {
                remote: addr(&format!("{key}.vxlan.remote"), &v.remote)?,
                vni: v.vni,
                local: v.local.as_deref().map(|l| addr(&format!("{key}.vxlan.local"), l)).transpose()?,
                port: v.port,
            },
            (None, Some(_), _) => {
                return Err((
                    format!("{key}.interface"),
                    "an address sensor needs the interface it is reached through".into(),
                ));
            }
            _ => {
                return Err((
                    key,
                    "give interface (a local sensor), interface and address (an L3 copy), or vxlan (a remote sensor)"
                        .into(),
                ));
            }
        };
        let sensor = Sensor { name: name.to_string(), kind };
        sensor.validate(&key).map_err(|e| (e.field, e.message))?;
        for (i, iface) in self.serves.iter().enumerate() {
            portcullis_core::mirror::check_name(&format!("{key}.serves[{i}]"), iface)
                .map_err(|e| (e.field, e.message))?;
        }
        if let Some(engine) = &self.engine {
            portcullis_core::mirror::check_name(&format!("{key}.engine"), engine).map_err(|e| (e.field, e.message))?;
        }
        Ok(SensorSetting {
            target: self.target.clone(),
            sensor,
            serves: self.serves.iter().map(|s| s.to_ascii_lowercase()).collect(),
            engine: self.engine.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> MirroringConfig {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn each_kind_of_sensor_reads_into_its_settings() {
        let c = parse(
            "sensors:\n  zeek: {interface: eth3, serves: [wan], engine: zeek}\n  \
             suricata: {interface: eth3, address: 10.99.0.2}\n  far: {vxlan: {remote: 198.51.100.9, vni: 42}}\n",
        );
        let s = c.settings().unwrap();
        assert_eq!(s.sensors.len(), 3);
        let far = s.sensors.iter().find(|x| x.sensor.name == "far").unwrap();
        assert!(matches!(far.sensor.kind, SensorKind::Vxlan { vni: 42, port: 4789, .. }));
    }

    #[test]
    fn a_sensors_eve_is_followed_and_counted_on_the_one_interface_it_serves() {
        let c = parse(
            "sensors:\n  one: {interface: eth3, serves: [wan], engine: suricata, eve: /var/log/one/eve.json}\n  \
             two: {interface: eth4, serves: [wan, lan], engine: suricata, eve: /var/log/two/eve.json, target: edge}\n  \
             none: {interface: eth5, serves: [dmz]}\n",
        );
        let sources = c.eve_sources("lab");
        assert_eq!(sources.len(), 2, "a sensor without eve is not followed");
        let one = sources.iter().find(|s| s.sensor.as_deref() == Some("one")).unwrap();
        assert_eq!((one.target.as_str(), one.interface.as_deref()), ("lab", Some("wan")));
        let two = sources.iter().find(|s| s.sensor.as_deref() == Some("two")).unwrap();
        assert_eq!((two.target.as_str(), two.interface.as_deref()), ("edge", None));
    }

    #[test]
    fn bad_sensors_name_their_key() {
        let key = |yaml: &str| parse(yaml).settings().unwrap_err().0;
        assert_eq!(key("sensors:\n  s: {address: 10.0.0.2}\n"), "mirroring.sensors.s.interface");
        assert_eq!(key("sensors:\n  s: {}\n"), "mirroring.sensors.s");
        assert_eq!(key("sensors:\n  s: {interface: 'eth0;reboot'}\n"), "mirroring.sensors.s.interface");
        assert_eq!(key("sensors:\n  s: {vxlan: {remote: 198.51.100.9, vni: 99999999}}\n"), "mirroring.sensors.s.vni");
        assert_eq!(key("max_duration: 1h\ndefault_duration: 2h\n"), "mirroring.default_duration");
        assert!(serde_norway::from_str::<MirroringConfig>("sensors:\n  s: {interfce: eth0}\n").is_err());
    }
}

//! The one place that runs `nft` (and `ip` for interface addresses): a path and, optionally, a network namespace
//! entered with `ip netns exec`. Batches go to `nft -j -f -` on stdin, so the kernel applies them in one
//! transaction.

use std::path::PathBuf;
use std::process::Stdio;

use portcullis_core::firewall::{BackendError, ErrorCode};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How to reach the kernel's nftables: which `nft` binary, in which network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftRunner {
    pub nft: PathBuf,
    pub ip: PathBuf,
    /// `wg` (wireguard-tools), for the peers of a WireGuard interface.
    pub wg: PathBuf,
    /// A named network namespace (`ip netns add NAME`); `None` is the namespace Portcullis runs in.
    pub netns: Option<String>,
}

impl Default for NftRunner {
    fn default() -> Self {
        Self { nft: PathBuf::from("nft"), ip: PathBuf::from("ip"), wg: PathBuf::from("wg"), netns: None }
    }
}

fn unavailable(what: &str, e: std::io::Error) -> BackendError {
    BackendError::new(ErrorCode::Unavailable, format!("cannot run {what}: {e}"))
        .with_hint("install nftables and iproute2 (apt-get install nftables iproute2) and run Portcullis as root or with CAP_NET_ADMIN")
}

impl NftRunner {
    pub fn in_netns(netns: impl Into<String>) -> Self {
        Self { netns: Some(netns.into()), ..Self::default() }
    }

    /// `nft ARGS` in the configured namespace.
    fn nft_command(&self, args: &[&str]) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new(&self.ip);
                c.args(["netns", "exec", ns]).arg(&self.nft);
                c
            }
            None => Command::new(&self.nft),
        };
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        cmd
    }

    /// Runs `nft ARGS` and returns its standard output.
    pub async fn nft(&self, args: &[&str]) -> Result<String, NftError> {
        let output = self.nft_command(args).output().await.map_err(|e| NftError::Spawn(e.to_string()))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(NftError::Failed { stderr: String::from_utf8_lossy(&output.stderr).trim().to_string() });
        }
        Ok(stdout)
    }

    /// Feeds `input` to `nft ARGS` on stdin (`-f -`): the whole input is one kernel transaction.
    pub async fn nft_stdin(&self, args: &[&str], input: &[u8]) -> Result<String, NftError> {
        let mut cmd = self.nft_command(args);
        cmd.stdin(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| NftError::Spawn(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).await.map_err(|e| NftError::Spawn(format!("writing to nft: {e}")))?;
            drop(stdin);
        }
        let output = child.wait_with_output().await.map_err(|e| NftError::Spawn(e.to_string()))?;
        if !output.status.success() {
            return Err(NftError::Failed { stderr: String::from_utf8_lossy(&output.stderr).trim().to_string() });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A sysctl's value in the configured namespace (`net.ipv4.tcp_syncookies`), or `None` where it cannot be
    /// read (the module that owns it is not loaded, say).
    pub async fn sysctl(&self, key: &str) -> Option<String> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let output = match &self.netns {
            Some(ns) => Command::new(&self.ip)
                .args(["netns", "exec", ns, "cat", &path])
                .kill_on_drop(true)
                .output()
                .await
                .ok()?,
            None => Command::new("cat").arg(&path).kill_on_drop(true).output().await.ok()?,
        };
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
    }

    /// `ip -j ARGS` in the configured namespace (addresses and link statistics of interfaces).
    pub async fn ip_json(&self, args: &[&str]) -> Result<serde_json::Value, BackendError> {
        let mut cmd = Command::new(&self.ip);
        if let Some(ns) = &self.netns {
            cmd.args(["-n", ns]);
        }
        cmd.arg("-j").args(args).stdin(Stdio::null()).kill_on_drop(true);
        let output = cmd.output().await.map_err(|e| unavailable("ip", e))?;
        if !output.status.success() {
            return Err(BackendError::new(
                ErrorCode::Unavailable,
                format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()),
            ));
        }
        serde_json::from_slice(&output.stdout).map_err(|e| {
            BackendError::new(ErrorCode::UnexpectedResponse, format!("ip {} printed invalid JSON: {e}", args.join(" ")))
        })
    }

    /// `ip ARGS` in the configured namespace (a mirror's VXLAN tunnel device made and deleted).
    pub async fn ip(&self, args: &[&str]) -> Result<(), BackendError> {
        let mut cmd = Command::new(&self.ip);
        if let Some(ns) = &self.netns {
            cmd.args(["-n", ns]);
        }
        cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
        let output = cmd.output().await.map_err(|e| unavailable("ip", e))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            let code = if stderr.contains("Operation not permitted") {
                ErrorCode::AuthorizationFailed
            } else {
                ErrorCode::ApplyFailed
            };
            return Err(BackendError::new(code, format!("ip {}: {stderr}", args.join(" "))));
        }
        Ok(())
    }

    /// `wg ARGS` in the configured namespace. Its output can hold an interface's private key (`show … dump`):
    /// callers parse it at once and keep nothing of that field; it is never logged.
    pub async fn wg(&self, args: &[&str]) -> Result<String, BackendError> {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new(&self.ip);
                c.args(["netns", "exec", ns]).arg(&self.wg);
                c
            }
            None => Command::new(&self.wg),
        };
        cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
        let output = cmd.output().await.map_err(|e| {
            BackendError::new(ErrorCode::Unavailable, format!("cannot run wg: {e}"))
                .with_hint("install wireguard-tools (apt-get install wireguard-tools)")
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
            // The verb and the interface: the rest of a command line never holds more than a public key.
            let what = args.iter().take(2).copied().collect::<Vec<_>>().join(" ");
            if stderr.contains("No such device") || stderr.contains("Unable to access interface") {
                return Err(BackendError::new(ErrorCode::Unavailable, format!("wg {what}: {stderr}")).with_hint(
                    "bring the WireGuard interface up (wg-quick up, systemd-networkd, wireguard-go) first",
                ));
            }
            return Err(BackendError::new(ErrorCode::ApplyFailed, format!("wg {what}: {stderr}")));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    pub fn describe(&self) -> String {
        match &self.netns {
            Some(ns) => format!("nftables in network namespace {ns}"),
            None => "nftables on this host".to_string(),
        }
    }
}

/// A failed `nft` run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NftError {
    #[error("cannot run nft: {0}")]
    Spawn(String),
    #[error("nft failed: {stderr}")]
    Failed { stderr: String },
}

impl NftError {
    /// `nft list table` of a table that does not exist.
    pub fn is_missing_table(&self) -> bool {
        matches!(self, NftError::Failed { stderr } if stderr.contains("No such file or directory"))
    }

    pub fn into_backend(self, doing: &str) -> BackendError {
        match self {
            NftError::Spawn(e) => BackendError::new(ErrorCode::Unavailable, format!("{doing}: cannot run nft: {e}"))
                .with_hint(
                    "install nftables (apt-get install nftables) and run Portcullis as root or with CAP_NET_ADMIN",
                ),
            NftError::Failed { stderr } if stderr.contains("Operation not permitted") => {
                BackendError::new(ErrorCode::AuthorizationFailed, format!("{doing}: {stderr}"))
                    .with_hint("nft needs root or CAP_NET_ADMIN")
            }
            NftError::Failed { stderr } => BackendError::new(ErrorCode::ApplyFailed, format!("{doing}: {stderr}")),
        }
    }
}

/// Shown in target descriptions and status.
impl std::fmt::Display for NftRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

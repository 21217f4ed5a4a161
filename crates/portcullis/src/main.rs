//! `portcullis`: the MCP server (stdio and Streamable HTTP) and the CLI. Thin by design: configuration,
//! transports and rendering live here; every tool call runs in `portcullis_tools::ToolService`.

mod alerts;
mod app;
mod approvals;
mod cli;
mod client_config;
mod config;
#[cfg(feature = "conformance")]
mod conformance;
#[cfg(test)]
mod fuzz;
mod geoip;
mod http;
mod init;
mod jsonrpc;
mod logs;
mod mcp;
mod secrets;
mod stdio;
mod token;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portcullis_guard::Transport;
use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::config::{ConfigSource, LoadedConfig};

/// What the MCP transports serve: the MCP handler itself, or with the `conformance` feature the suite's fixtures
/// wrapped around it.
#[cfg(not(feature = "conformance"))]
type McpHandler = mcp::McpServer;
#[cfg(feature = "conformance")]
type McpHandler = conformance::FixtureServer;

#[cfg(not(feature = "conformance"))]
fn mcp_handler(server: mcp::McpServer) -> McpHandler {
    server
}

#[cfg(feature = "conformance")]
fn mcp_handler(server: mcp::McpServer) -> McpHandler {
    conformance::FixtureServer::new(server)
}

#[derive(Parser)]
#[command(name = "portcullis", version, about = "A firewall assistant with guardrails, over MCP and the CLI")]
struct Cli {
    /// Configuration file (YAML). Default: $PORTCULLIS_CONFIG, then the platform config dir, then lab defaults.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Where the store lives (overrides config `data_dir` and $PORTCULLIS_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct InitArgs {
    /// Where to write (default: --config, $PORTCULLIS_CONFIG, else the platform's configuration file).
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Replace a file that exists.
    #[arg(long)]
    force: bool,
    /// A pfSense target: the firewall's host name or address (pfRest v2 on its web configurator).
    #[arg(long)]
    pfsense_host: Option<String>,
    #[arg(long, default_value_t = 443)]
    pfsense_port: u16,
    #[arg(long, default_value = "https", value_parser = ["https", "http"])]
    pfsense_protocol: String,
    /// The pfRest API key, written into the file (which is then readable by its owner only).
    #[arg(long, conflicts_with = "pfsense_api_key_env")]
    pfsense_api_key: Option<String>,
    /// The environment variable the key is read from when Portcullis starts (`env:VAR` in the file).
    #[arg(long, default_value = "PORTCULLIS_PFSENSE_API_KEY")]
    pfsense_api_key_env: String,
    /// Do not check the firewall's TLS certificate (prefer `ca_file` with its CA).
    #[arg(long)]
    pfsense_insecure: bool,
    /// An nftables target on this host: logical=device pairs, e.g. lan=eth1,wan=eth0.
    #[arg(long, value_delimiter = ',')]
    nftables_interfaces: Vec<String>,
    /// Run that target's `nft` in this network namespace.
    #[arg(long, requires = "nftables_interfaces")]
    nftables_netns: Option<String>,
    /// Who the CLI and MCP over stdio run as.
    #[arg(long, default_value = "admin")]
    principal: String,
    /// The principal's role: viewer, operator or admin.
    #[arg(long, default_value = "admin", value_parser = ["viewer", "operator", "admin"])]
    role: String,
    /// Connect to each target once the file is written, and say what works (exit 1 when one does not answer).
    #[arg(long)]
    probe: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP: over stdio by default, or Streamable HTTP with --http ADDR.
    Serve {
        /// Serve Streamable HTTP on this address (e.g. 127.0.0.1:8787) instead of stdio.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
        http: Option<String>,
    },
    /// List the tool catalogue.
    Tools {
        #[arg(long)]
        json: bool,
    },
    /// Call a tool: `portcullis call block_ip_address ip_address=192.0.2.7 duration=1h reason="port scan"`;
    /// `portcullis call TOOL --help` describes one tool's arguments.
    #[command(disable_help_flag = true)]
    Call {
        tool: String,
        /// Describe the tool: what it does, its arguments with their types, an example.
        #[arg(short = 'h', long = "help")]
        help: bool,
        /// Arguments as key=value.
        args: Vec<String>,
        #[arg(long)]
        json: bool,
        /// Write the answer to FILE instead (a report's rendered `content` — HTML or Markdown — as it is,
        /// anything else as JSON); a short line on stdout says what was written.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Audit trail commands.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Grant a pending approval (a person's decision; the assistant cannot make it).
    Approve {
        id: String,
        /// Refuse instead of grant.
        #[arg(long)]
        deny: bool,
        /// Do not ask for confirmation on the terminal.
        #[arg(long)]
        yes: bool,
    },
    /// List pending approvals.
    Approvals,
    /// Who local calls (the CLI, MCP over stdio) run as: the principal, its role, and what it may and may not do.
    Whoami {
        #[arg(long)]
        json: bool,
    },
    /// Log store commands.
    Logs {
        #[command(subcommand)]
        command: LogsCommand,
    },
    /// Lab commands.
    Lab {
        #[command(subcommand)]
        command: LabCommand,
    },
    /// The offline country database (geo blocks, countries in answers).
    Geoip {
        #[command(subcommand)]
        command: GeoipCommand,
    },
    /// Write a commented configuration file for this install (from flags, or asked on a terminal), checked by
    /// loading it back; `--probe` then connects to each target. Without a firewall, the lab is the target.
    Init(InitArgs),
    /// Bearer tokens for the Streamable HTTP transport.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Print what an MCP client's configuration needs to use this install (nothing is written).
    ClientConfig {
        client: client_config::Client,
        /// Reach a running `portcullis serve --http` at this URL instead of starting this binary over stdio.
        #[arg(long, value_name = "URL")]
        http: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token for PRINCIPAL: its SHA-256 is added to the config file's http.tokens, the token printed once.
    New { principal: String },
}

#[derive(Subcommand)]
enum GeoipCommand {
    /// Check a MaxMind DB country file whole and install it in the data directory.
    Install { file: PathBuf },
    /// Show the country database in use: type, build date and attribution.
    Info,
}

#[derive(Subcommand)]
enum LogsCommand {
    /// Store the filterlog lines of files (plain or .gz) in a target's log store, and the alerts of Suricata eve.json
    /// files (`--eve FILE`, repeatable) in its alert store; prints what was stored and what was skipped, and why.
    Import {
        files: Vec<PathBuf>,
        /// A Suricata eve.json file (plain or .gz): alerts are stored, other events counted.
        #[arg(long = "eve", value_name = "FILE")]
        eve: Vec<PathBuf>,
        /// The target the lines belong to (default: the default target).
        #[arg(long)]
        target: Option<String>,
        /// With --eve: the logical interface the sensor watches (alerts are counted on it).
        #[arg(long)]
        interface: Option<String>,
        /// With --eve: the sensor's name.
        #[arg(long)]
        sensor: Option<String>,
    },
}

#[derive(Subcommand)]
enum LabCommand {
    /// Generate traffic through the lab firewall's rule set and store it as filterlog lines (ending now).
    Traffic {
        /// `default` (history, SSH brute force, port scan, volume spike in the last hour) or `normal`.
        #[arg(long, default_value = "default")]
        scenario: String,
        /// Random seed: the same seed gives the same packets.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Days of history before the last hour.
        #[arg(long, default_value_t = 3)]
        days: u32,
        /// Ordinary lines per hour at the busiest time of day.
        #[arg(long, default_value_t = 600)]
        peak_per_hour: u32,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration, and show it with secrets redacted.
    Check {
        /// Also connect to every target and say what works (its status read through the tool service).
        #[arg(long)]
        probe: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify the hash chain of the audit trail.
    Verify,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("portcullis: {}", secrets::global().scrub(&format!("{e:#}")));
            std::process::ExitCode::from(1)
        }
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<LoadedConfig> {
    let env = |name: &str| std::env::var(name).ok();
    let mut loaded = config::load(cli.config.as_deref(), &env)?;
    if let Some(dir) = &cli.data_dir {
        loaded.config.data_dir = Some(dir.clone());
    }
    Ok(loaded)
}

/// Logs go to stderr (stdout is the MCP channel in stdio mode), and when `serve` runs with `logging.file` also
/// to that file, appended, created with mode 0600, at the same level; every line, in both, scrubbed of the
/// configured secrets (and of the JWTs obtained since).
fn init_logging(level: tracing::Level, file: Option<&std::path::Path>) -> anyhow::Result<()> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level.as_str().to_ascii_lowercase()));
    let scrubbed = |sink| secrets::ScrubbingWriter::to(secrets::global().clone(), sink);
    let stderr = tracing_subscriber::fmt::layer().with_writer(scrubbed(secrets::Sink::Stderr)).with_ansi(false);
    let file = match file {
        Some(path) => {
            let sink = secrets::Sink::File(std::sync::Arc::new(open_log_file(path)?));
            Some(tracing_subscriber::fmt::layer().with_writer(scrubbed(sink)).with_ansi(false))
        }
        None => None,
    };
    tracing_subscriber::registry().with(filter).with(stderr).with(file).init();
    Ok(())
}

/// Opens `logging.file` for appending; a new file is created with mode 0600, an existing one readable by others
/// is narrowed to 0600 (logs name addresses, principals and targets).
fn open_log_file(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file =
        options.open(path).with_context(|| format!("logging.file: cannot open {} for appending", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file.metadata().map(|m| m.permissions().mode()).unwrap_or(0);
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("logging.file: cannot make {} private (mode 0600)", path.display()))?;
        }
    }
    Ok(file)
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Command::Init(args) = &cli.command {
        return init_config(args, cli.config.as_deref());
    }
    let loaded = load_config(&cli)?;
    secrets::add_config(secrets::global(), &loaded.config);
    let quiet = !matches!(cli.command, Command::Serve { .. });
    if quiet {
        init_logging(tracing::Level::WARN, None)?;
    } else {
        init_logging(loaded.config.logging.tracing_level(), loaded.config.logging.file.as_deref())?;
    }
    // stdio is one conversation on one pipe: a single-threaded runtime answers it without cross-thread
    // wake-ups. HTTP serves many clients at once and gets worker threads.
    let multi_threaded = matches!(&cli.command, Command::Serve { http: Some(_) });
    let mut builder = if multi_threaded {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = builder.enable_all().build().context("starting the async runtime")?;
    runtime.block_on(dispatch(cli.command, loaded))
}

/// `portcullis init`: the file written and checked, then probed if asked.
fn init_config(args: &InitArgs, config: Option<&std::path::Path>) -> anyhow::Result<i32> {
    init_logging(tracing::Level::WARN, None)?;
    let mut answers = init::Answers {
        pfsense: args.pfsense_host.as_ref().map(|host| init::PfSense {
            host: host.trim().to_string(),
            port: args.pfsense_port,
            protocol: args.pfsense_protocol.clone(),
            api_key: match &args.pfsense_api_key {
                Some(key) => init::ApiKey::Literal(key.clone()),
                None => init::ApiKey::Env(args.pfsense_api_key_env.clone()),
            },
            verify_ssl: !args.pfsense_insecure,
        }),
        nftables: None,
        principal: args.principal.clone(),
        role: args.role.clone(),
    };
    if !args.nftables_interfaces.is_empty() {
        let interfaces = init::interface_pairs(&args.nftables_interfaces)?;
        answers.nftables = Some(init::Nftables { interfaces, netns: args.nftables_netns.clone() });
    }
    if answers.pfsense.is_none() && answers.nftables.is_none() {
        init::ask(&mut answers)?;
    }
    let path = init::destination(args.output.as_deref(), config)?;
    let holds_secret = matches!(&answers.pfsense, Some(p) if matches!(p.api_key, init::ApiKey::Literal(_)));
    init::write_checked(&path, &init::render(&answers), args.force, holds_secret)?;
    println!("# wrote {}", path.display());
    if !args.probe {
        println!("# next: portcullis --config {} config check --probe", path.display());
        return Ok(0);
    }
    let loaded = config::load(Some(&path), &|k| std::env::var(k).ok())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(cli::probe_targets(loaded.config))
}

/// `portcullis client-config`: the snippet and where it goes (stderr), the snippet alone on stdout.
fn print_client_config(
    client: client_config::Client,
    http: Option<&str>,
    source: &ConfigSource,
) -> anyhow::Result<i32> {
    let binary = std::env::current_exe().context("where this binary is")?;
    let config = match source {
        ConfigSource::File(path) => Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone())),
        ConfigSource::Defaults => None,
    };
    let reach = match http {
        Some(url) => {
            let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).unwrap_or("");
            if host.is_empty() || host.starts_with('/') || url.chars().any(|c| c.is_whitespace() || c == '"') {
                anyhow::bail!("--http: {url:?} is not an http(s) URL (e.g. https://fw.example.com/mcp)");
            }
            client_config::Reach::Http { url }
        }
        None => client_config::Reach::Stdio { binary: &binary, config: config.as_deref() },
    };
    let (place, text) = client_config::snippet(client, &reach);
    eprintln!("# for {place}:");
    println!("{text}");
    Ok(0)
}

async fn dispatch(command: Command, loaded: LoadedConfig) -> anyhow::Result<i32> {
    match command {
        Command::Config { command: ConfigCommand::Check { probe } } => {
            let probed = if probe { Some(loaded.config.clone()) } else { None };
            let code = config_check(loaded)?;
            match probed {
                Some(config) => cli::probe_targets(config).await,
                None => Ok(code),
            }
        }
        // Handled in `run`, before any configuration is loaded.
        Command::Init(_) => anyhow::bail!("`init` writes the configuration; it runs before one is loaded"),
        Command::Token { command: TokenCommand::New { principal } } => match &loaded.source {
            ConfigSource::File(path) => token::new(path, &loaded.config, &principal),
            ConfigSource::Defaults => anyhow::bail!(
                "no configuration file to add the token to: name one with --config FILE (or $PORTCULLIS_CONFIG)"
            ),
        },
        Command::ClientConfig { client, http } => print_client_config(client, http.as_deref(), &loaded.source),
        Command::Geoip { command: GeoipCommand::Install { file } } => geoip::install(&loaded.config, &file).await,
        Command::Geoip { command: GeoipCommand::Info } => geoip::info(&loaded.config),
        Command::Tools { json } => {
            cli::print_catalogue(&portcullis_tools::catalogue(), json)?;
            Ok(0)
        }
        Command::Call { tool, help: true, .. } => cli::tool_help(&portcullis_tools::catalogue(), &tool),
        Command::Call { tool, args, json, output, .. } => {
            let app = App::open(loaded.config)?;
            recover(&app).await;
            cli::call(&app, &tool, &args, json, output.as_deref()).await
        }
        Command::Audit { command: AuditCommand::Verify } => {
            let app = App::open(loaded.config)?;
            let v = app.service.audit_verify().map_err(|e| anyhow::anyhow!("{}", e.message))?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(if v.ok { 0 } else { 3 })
        }
        Command::Approve { id, deny, yes } => {
            let app = App::open(loaded.config)?;
            approvals::decide(&app, &id, !deny, yes)
        }
        Command::Approvals => {
            let app = App::open(loaded.config)?;
            approvals::list(&app)
        }
        Command::Whoami { json } => {
            let app = App::open(loaded.config)?;
            cli::whoami(&app, json)
        }
        Command::Logs { command: LogsCommand::Import { files, eve, target, interface, sensor } } => {
            if files.is_empty() && eve.is_empty() {
                anyhow::bail!("nothing to import: name filterlog files, or eve.json files with --eve");
            }
            if let Some(i) = &interface
                && (i.is_empty()
                    || i.len() > 64
                    || !i.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')))
            {
                anyhow::bail!("--interface: 1-64 letters, digits, `_`, `.`, `:` or `-` (like `wan`)");
            }
            if let Some(sensor) = &sensor {
                portcullis_core::text::validate_text("--sensor", sensor, 64)
                    .map_err(|e| anyhow::anyhow!("--sensor: {}", e.message))?;
            }
            let app = App::open(loaded.config)?;
            let target = target.unwrap_or_else(|| app.config.default_target());
            let store = app
                .service
                .log_store(&target)
                .ok_or_else(|| anyhow::anyhow!("--target: no target named `{target}`"))?;
            for file in files {
                let s = portcullis_logstore::files::import_file(store, &file, chrono::Utc::now())
                    .with_context(|| format!("importing {}", file.display()))?;
                let skipped = s.skipped_summary();
                let skipped = if skipped.is_empty() { String::new() } else { format!("; {skipped}") };
                println!("{}: stored {} lines{skipped}", file.display(), s.stored);
            }
            let origin = portcullis_logstore::EveOrigin { interface: interface.as_deref(), sensor: sensor.as_deref() };
            for file in eve {
                let s = portcullis_logstore::files::import_eve(store, &file, &origin, chrono::Utc::now())
                    .with_context(|| format!("importing {}", file.display()))?;
                println!("{}", eve_import_line(&file, &s));
            }
            Ok(0)
        }
        Command::Lab { command: LabCommand::Traffic { scenario, seed, days, peak_per_hour } } => {
            let app = App::open(loaded.config)?;
            let scenario = portcullis_lab::traffic::Scenario::parse(&scenario)
                .ok_or_else(|| anyhow::anyhow!("--scenario: `{scenario}` is not a scenario (default, normal)"))?;
            let options = portcullis_lab::traffic::TrafficOptions {
                scenario,
                seed,
                end: chrono::Utc::now(),
                days,
                peak_per_hour,
            };
            let stats =
                app.service.generate_lab_traffic(&options).await.map_err(|e| anyhow::anyhow!("{}", e.message))?;
            println!("stored {} filterlog lines in the lab's log store ({} malformed)", stats.stored, stats.malformed);
            Ok(0)
        }
        Command::Serve { http } => {
            let app = App::open(loaded.config)?;
            serve(app, http).await.map(|()| 0)
        }
    }
}

/// What `logs import --eve` says of one file: `eve.json: 1200 lines: stored 12 alerts; counted 900 flow, 280
/// dns, 12 alert, 8 stats; skipped 3: 2 not JSON, 1 line too long`.
fn eve_import_line(file: &std::path::Path, s: &portcullis_logstore::EveIngestStats) -> String {
    let mut line = format!("{}: {} lines: stored {} alerts", file.display(), s.lines, s.alerts);
    if !s.events.is_empty() {
        line.push_str(&format!("; counted {}", s.events_summary()));
    }
    let skipped = s.skipped_summary();
    if !skipped.is_empty() {
        line.push_str(&format!("; {skipped}"));
    }
    line
}

fn config_check(loaded: LoadedConfig) -> anyhow::Result<i32> {
    let source = match &loaded.source {
        ConfigSource::File(p) => format!("file {}", p.display()),
        ConfigSource::Defaults => "built-in lab defaults (no config file found)".into(),
    };
    println!("# configuration OK, from {source}");
    println!("# data directory: {}", loaded.config.data_dir().display());
    let mut targets = vec![config::LAB_TARGET.to_string()];
    targets.extend(loaded.config.pfsense_targets().into_iter().map(|(name, pf)| format!("{name} ({})", pf.host)));
    targets.extend(loaded.config.nftables_targets().into_iter().map(|(name, _)| format!("{name} (nftables)")));
    println!("# targets: {}; default: {}", targets.join(", "), loaded.config.default_target());
    for key in secrets::short_secrets(&loaded.config) {
        println!("# warning: {} (portcullis refuses to start with it)", secrets::short_secret_message(&key));
    }
    let unreachable = unreachable_tools(&loaded.config);
    if !unreachable.is_empty() {
        println!(
            "# warning: security.allowed_operations / denied_operations leave these tools out of everyone's reach \
             (operation: tools); add the operation to allowed_operations where they are wanted:"
        );
        for line in unreachable {
            println!("#   {line}");
        }
    }
    print!("{}", loaded.config.redacted_yaml());
    Ok(0)
}

/// The tools `security.allowed_operations` and `denied_operations` leave no one able to call, grouped by the
/// operation to add (a list that blocks but can never list or unblock is a trap).
fn unreachable_tools(config: &config::Config) -> Vec<String> {
    let security = &config.security;
    if security.allowed_operations.is_none() && security.denied_operations.is_empty() {
        return Vec::new();
    }
    let policy =
        portcullis_guard::OperationPolicy::new(security.allowed_operations.clone(), security.denied_operations.clone());
    let mut by_operation: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for def in portcullis_tools::catalogue() {
        if policy.check(def.operation).is_err() {
            by_operation.entry(def.operation).or_default().push(def.name);
        }
    }
    by_operation.into_iter().map(|(operation, tools)| format!("{operation}: {}", tools.join(", "))).collect()
}

async fn serve(app: App, http: Option<String>) -> anyhow::Result<()> {
    tracing::info!(store = %app.store_path.display(), targets = ?app.service.target_names(), "serving");
    recover(&app).await;
    let shutdown = CancellationToken::new();
    spawn_expiry_sweeper(&app, shutdown.clone());
    spawn_counter_sampler(&app, shutdown.clone());
    logs::spawn_tasks(&app, shutdown.clone()).await?;
    alerts::spawn(&app, shutdown.clone())?;
    spawn_signal_handler(shutdown.clone());
    match http {
        Some(bind) => {
            let bind = if bind.is_empty() { app.config.http.bind.clone() } else { bind };
            http::serve(&app, &bind, shutdown).await
        }
        None => serve_stdio(&app, shutdown).await,
    }
}

async fn serve_stdio(app: &App, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mcp = &app.config.mcp;
    let server = mcp_handler(mcp::McpServer::new(
        app.service.clone(),
        Transport::Stdio,
        app.local_principal(),
        &mcp.server_name,
        &mcp.version,
        mcp::log_level_from_config(&app.config.logging.level),
    ));
    let (stdin, stdout) = rmcp::transport::io::stdio_pipes();
    let transport = stdio::LineTransport::new(stdin, stdout);
    let running = server.serve(transport).await.context("MCP handshake over stdio failed")?;
    tokio::select! {
        quit = running.waiting() => { quit.context("MCP stdio session failed")?; }
        () = shutdown.cancelled() => {}
    }
    Ok(())
}

/// Settles changes left in flight by a crash and undoes overdue unconfirmed ones, before anything is served.
async fn recover(app: &App) {
    for line in app.service.recover().await {
        tracing::warn!("{line}");
    }
}

/// Expiries take effect at their time in every verdict; the reconciler also removes them from the firewall at
/// that time, rolls back overdue unconfirmed changes and checks drift (`portcullis_tools::reconciler`).
fn spawn_expiry_sweeper(app: &App, shutdown: CancellationToken) {
    let service = app.service.clone();
    tokio::spawn(async move {
        service
            .reconcile(shutdown.cancelled(), |sweep| match &sweep.result {
                Ok(0) => {}
                Ok(n) => tracing::info!(target = sweep.target, "expired {n} entries"),
                Err(e) => tracing::warn!(target = sweep.target, "expiry sweep failed: {e}"),
            })
            .await;
    });
}

/// Reads every target's interface counters once a minute, so that traffic statistics can give rates over their
/// timeframe.
fn spawn_counter_sampler(app: &App, shutdown: CancellationToken) {
    let service = app.service.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => service.sample_counters().await,
                () = shutdown.cancelled() => return,
            }
        }
    });
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        shutdown.cancel();
    });
}

//! `portcullis client-config claude|vscode|cursor`: the snippet an MCP client's configuration needs to start this
//! install (stdio: this binary, with the config file it was given) or reach it over Streamable HTTP (`--http`),
//! printed for the user to paste. Nothing is written and no token is printed: over HTTP the snippet names where the
//! token goes.

use std::path::Path;

use serde_json::{Value, json};

/// The MCP clients whose configuration formats are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Client {
    /// Claude Desktop (`claude_desktop_config.json`); over HTTP, the `claude mcp add` command of Claude Code.
    Claude,
    /// VS Code (`.vscode/mcp.json`).
    Vscode,
    /// Cursor (`~/.cursor/mcp.json`).
    Cursor,
}

/// How the client reaches Portcullis.
pub enum Reach<'a> {
    /// The client starts `binary serve` itself, with this config file (none: the defaults).
    Stdio { binary: &'a Path, config: Option<&'a Path> },
    /// The client connects to a running `portcullis serve --http` at this URL.
    Http { url: &'a str },
}

/// Where the snippet goes, and the snippet.
pub fn snippet(client: Client, reach: &Reach<'_>) -> (String, String) {
    let placeholder = "<token from your Portcullis administrator (portcullis token new)>";
    match (client, reach) {
        (Client::Claude, Reach::Http { url }) => (
            "a shell (Claude Code; Claude Desktop adds remote servers under Settings > Connectors)".into(),
            format!(
                "claude mcp add --transport http portcullis {url} --header \"Authorization: Bearer {placeholder}\""
            ),
        ),
        (Client::Claude, Reach::Stdio { .. }) => (
            "claude_desktop_config.json (Settings > Developer > Edit Config), merged into \"mcpServers\"".into(),
            pretty(&json!({"mcpServers": {"portcullis": stdio_server(reach, false)}})),
        ),
        (Client::Vscode, Reach::Http { url }) => (
            ".vscode/mcp.json in the workspace (or the user's mcp.json), merged into \"servers\"".into(),
            pretty(&json!({
                "inputs": [{"type": "promptString", "id": "portcullis-token", "description": "Portcullis bearer token",
                            "password": true}],
                "servers": {"portcullis": {"type": "http", "url": url,
                                           "headers": {"Authorization": "Bearer ${input:portcullis-token}"}}}
            })),
        ),
        (Client::Vscode, Reach::Stdio { .. }) => (
            ".vscode/mcp.json in the workspace (or the user's mcp.json), merged into \"servers\"".into(),
            pretty(&json!({"servers": {"portcullis": stdio_server(reach, true)}})),
        ),
        (Client::Cursor, Reach::Http { url }) => (
            "~/.cursor/mcp.json (or .cursor/mcp.json in the project), merged into \"mcpServers\"".into(),
            pretty(&json!({"mcpServers": {"portcullis": {"url": url,
                                                          "headers": {"Authorization": format!("Bearer {placeholder}")}}}})),
        ),
        (Client::Cursor, Reach::Stdio { .. }) => (
            "~/.cursor/mcp.json (or .cursor/mcp.json in the project), merged into \"mcpServers\"".into(),
            pretty(&json!({"mcpServers": {"portcullis": stdio_server(reach, false)}})),
        ),
    }
}

fn stdio_server(reach: &Reach<'_>, typed: bool) -> Value {
    let Reach::Stdio { binary, config } = reach else { return Value::Null };
    let mut args = Vec::new();
    if let Some(config) = config {
        args.push(config.display().to_string());
        args.insert(0, "--config".to_string());
    }
    args.push("serve".into());
    let mut server = json!({"command": binary.display().to_string(), "args": args});
    if typed {
        server["type"] = json!("stdio");
    }
    server
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdio_snippets_start_this_binary_with_its_config() {
        let reach = Reach::Stdio {
            binary: Path::new("/opt/portcullis/bin/portcullis"),
            config: Some(Path::new("/etc/portcullis.yaml")),
        };
        let (_, claude) = snippet(Client::Claude, &reach);
        let v: Value = serde_json::from_str(&claude).expect("json");
        assert_eq!(v["mcpServers"]["portcullis"]["command"], "/opt/portcullis/bin/portcullis");
        assert_eq!(v["mcpServers"]["portcullis"]["args"], json!(["--config", "/etc/portcullis.yaml", "serve"]));
        let (_, vscode) =
            snippet(Client::Vscode, &Reach::Stdio { binary: Path::new("/usr/bin/portcullis"), config: None });
        let v: Value = serde_json::from_str(&vscode).expect("json");
        assert_eq!(
            v["servers"]["portcullis"],
            json!({"type": "stdio", "command": "/usr/bin/portcullis", "args": ["serve"]})
        );
    }

    #[test]
    fn http_snippets_name_where_the_token_goes_and_hold_none() {
        let reach = Reach::Http { url: "https://fw-assistant.example.com/mcp" };
        let (_, vscode) = snippet(Client::Vscode, &reach);
        let v: Value = serde_json::from_str(&vscode).expect("json");
        assert_eq!(v["servers"]["portcullis"]["headers"]["Authorization"], "Bearer ${input:portcullis-token}");
        let (_, cursor) = snippet(Client::Cursor, &reach);
        assert!(cursor.contains("https://fw-assistant.example.com/mcp") && cursor.contains("portcullis token new"));
        let (_, claude) = snippet(Client::Claude, &reach);
        assert!(claude.starts_with("claude mcp add --transport http portcullis https://fw-assistant.example.com/mcp"));
    }
}

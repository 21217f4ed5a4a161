//! The MCP adapter (rmcp). It lists the catalogue, resources and prompts of `portcullis-tools` and hands every
//! call, resource read, prompt and completion to `ToolService`; it holds no business logic, so MCP and the CLI
//! behave the same. It carries the protocol's own utilities to the pipeline: cancellation (a token in the
//! `CallContext`), progress, and log notifications at the level the client sets.

// Logging notifications are deprecated by SEP-2577 in rmcp but still part of the protocol versions clients speak.
#![allow(deprecated)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::firewall::ErrorCode;
use portcullis_guard::{Approver, CallContext, CallError, HumanApprover, Principal, Progress, ProgressSink, Transport};
use portcullis_tools::{ToolDef, ToolKind, ToolService};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult, CompletionInfo,
    ContentBlock, GetPromptRequestParams, GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, LoggingLevel, LoggingMessageNotificationParam,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, Prompt, PromptArgument, PromptMessage,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Reference, Resource, ResourceContents,
    ResourceTemplate, ResourceUpdatedNotificationParam, Role, ServerCapabilities, ServerConfig, SetLevelRequestParams,
    SubscribeRequestParams, Tool, ToolAnnotations, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};

#[derive(Clone)]
pub struct McpServer {
    service: Arc<ToolService>,
    transport: Transport,
    /// Who calls when the transport itself does not authenticate (stdio, loopback HTTP without tokens).
    default_principal: Principal,
    tools: Arc<Vec<Tool>>,
    info: Arc<ServerConfig>,
    /// This session's state: each MCP session gets its own (see `for_session`).
    session: Arc<Session>,
}

const AUDIT_TAIL: &str = "portcullis://audit/tail";

pub type LogLevel = LoggingLevel;

/// The rank of a level, least severe first (`LoggingLevel` from rmcp has no order).
fn severity(level: LogLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// The config's `logging.level` (tracing names) as an MCP level.
pub fn log_level_from_config(level: &str) -> LogLevel {
    match level.to_ascii_lowercase().as_str() {
        "trace" | "debug" => LoggingLevel::Debug,
        "warn" | "warning" => LoggingLevel::Warning,
        "error" => LoggingLevel::Error,
        _ => LoggingLevel::Info,
    }
}

/// Per-session state of the protocol utilities.
struct Session {
    /// Log notifications below this level are not sent.
    log_level: Mutex<LogLevel>,
    /// Resource URIs the client subscribed to.
    subscriptions: Arc<Mutex<BTreeSet<String>>>,
    /// Whether the task announcing firewall changes to this session runs (started by the first subscription).
    announcing: std::sync::atomic::AtomicBool,
}

impl Session {
    fn new(log_level: LogLevel) -> Arc<Self> {
        Arc::new(Session {
            log_level: Mutex::new(log_level),
            subscriptions: Default::default(),
            announcing: Default::default(),
        })
    }
}

impl McpServer {
    pub fn new(
        service: Arc<ToolService>,
        transport: Transport,
        default_principal: Principal,
        name: &str,
        version: &str,
        log_level: LogLevel,
    ) -> Self {
        let tools: Vec<Tool> = service.tools().iter().map(to_mcp_tool).collect();
        let capabilities = ServerCapabilities::builder()
            .enable_logging()
            .enable_completions()
            .enable_prompts()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_tools()
            .build();
        let who = match transport {
            Transport::Stdio => format!(
                "You run as principal {} (role {}); tools that role may not call are not listed, and a refusal \
                 names the role that would allow it.",
                default_principal.name, default_principal.role
            ),
            _ => {
                "You run as the principal of your bearer token; tools its role may not call are not listed.".to_string()
            }
        };
        let info = ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(name, version))
            .with_instructions(format!(
                "Portcullis runs network security on firewalls with guardrails. Read tools are safe; change tools \
                 accept dry_run: true to show the exact plan first. Every call is audited. {who}"
            ));
        let session = Session::new(log_level);
        Self { service, transport, default_principal, tools: Arc::new(tools), info: Arc::new(info), session }
    }

    /// A copy for a new MCP session: same service, fresh log level and subscriptions.
    pub fn for_session(&self) -> Self {
        Self { session: Session::new(*lock(&self.session.log_level)), ..self.clone() }
    }

    /// Sends a log notification if the session's level lets it through.
    pub async fn log(&self, peer: &rmcp::Peer<RoleServer>, level: LogLevel, data: Value) {
        if severity(level) < severity(*lock(&self.session.log_level)) {
            return;
        }
        let note = LoggingMessageNotificationParam::new(level, data).with_logger("portcullis");
        if let Err(e) = peer.notify_logging_message(note).await {
            tracing::debug!("log notification not delivered: {e}");
        }
    }

    /// After one of this session's calls: the audit tail has a new record.
    async fn notify_audit_tail(&self, peer: &rmcp::Peer<RoleServer>) {
        if lock(&self.session.subscriptions).contains(AUDIT_TAIL) {
            let note = ResourceUpdatedNotificationParam::new(AUDIT_TAIL);
            if let Err(e) = peer.notify_resource_updated(note).await {
                tracing::debug!("resource update not delivered: {e}");
            }
        }
    }

    /// Announces to this session every change applied to a firewall, by anyone (other sessions, the CLI, the
    /// expiry sweeper, rollbacks), for the subscribed resources that read that firewall. Runs until the client
    /// goes away.
    fn start_announcing(&self, peer: rmcp::Peer<RoleServer>) {
        if self.session.announcing.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let mut changes = self.service.subscribe_changes();
        let service = self.service.clone();
        let subscriptions = self.session.subscriptions.clone();
        tokio::spawn(async move {
            loop {
                let target = match changes.recv().await {
                    Ok(target) => target,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                let uris: Vec<String> = lock(&subscriptions)
                    .iter()
                    .filter(|uri| service.resource_depends_on(uri, &target))
                    .cloned()
                    .collect();
                for uri in uris {
                    if peer.notify_resource_updated(ResourceUpdatedNotificationParam::new(uri)).await.is_err() {
                        return;
                    }
                }
            }
        });
    }

    fn context(&self, ctx: &RequestContext<RoleServer>) -> CallContext {
        let parts = ctx.extensions.get::<axum::http::request::Parts>();
        let http_principal = parts.and_then(|parts| parts.extensions.get::<Principal>().cloned());
        let peer = parts
            .and_then(|parts| parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>())
            .map(|info| info.0);
        let client = ctx.peer.peer_info().map(|info| {
            let c = &info.client_info;
            format!("{} {}", c.name, c.version)
        });
        let approver = supports_form_elicitation(&ctx.peer).then(|| {
            let name = format!("elicitation:{}", client.clone().unwrap_or_else(|| "mcp-client".into()));
            Approver(Arc::new(ElicitationApprover { peer: ctx.peer.clone(), name }))
        });
        CallContext::new(http_principal.unwrap_or_else(|| self.default_principal.clone()), self.transport, client)
            .with_approver(approver)
            .with_peer(peer)
            .with_cancel(ctx.ct.clone())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Forwards a call's progress to the client as `notifications/progress`, in order, without blocking the work.
struct PeerProgress {
    sender: tokio::sync::mpsc::UnboundedSender<ProgressNotificationParam>,
    token: ProgressToken,
}

/// How long the last progress notifications may take to go out before the result does.
const PROGRESS_FLUSH: Duration = Duration::from_secs(2);

impl PeerProgress {
    /// The sink, and the task that forwards to the client; await it (after dropping every copy of the sink) so
    /// that progress reaches the client before the result, which ends the client's interest in it.
    fn start(peer: rmcp::Peer<RoleServer>, token: ProgressToken) -> (Progress, tokio::task::JoinHandle<()>) {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<ProgressNotificationParam>();
        // Ends when the call's context, and with it the sender, is dropped.
        let forwarder = tokio::spawn(async move {
            while let Some(note) = receiver.recv().await {
                if peer.notify_progress(note).await.is_err() {
                    break;
                }
            }
        });
        (Progress(Arc::new(PeerProgress { sender, token })), forwarder)
    }
}

impl ProgressSink for PeerProgress {
    fn report(&self, done: u64, total: Option<u64>, message: &str) {
        let mut note = ProgressNotificationParam::new(self.token.clone(), done as f64);
        note.total = total.map(|t| t as f64);
        note.message = Some(message.to_string());
        let _ = self.sender.send(note);
    }
}

/// A pipeline error as a JSON-RPC error for resource reads, prompts and completions.
fn protocol_error(e: &CallError) -> ErrorData {
    let data = Some(json!({ "error": e }));
    let message = format!("{}: {}", e.code.as_str(), e.message);
    match e.code {
        ErrorCode::NotFound => ErrorData::resource_not_found(message, data),
        ErrorCode::ValidationError => ErrorData::invalid_params(message, data),
        ErrorCode::InternalError => ErrorData::internal_error(message, data),
        _ => ErrorData::invalid_request(message, data),
    }
}

/// How a call ended, for the client's log: level and a one-line summary. Reads log at debug (a client that wants
/// them asks with `logging/setLevel`; the default level, from config, keeps reads quiet), applied changes at notice,
/// refusals at warning, failures of allowed calls at error.
fn call_log(tool: &str, result: &Result<Value, CallError>) -> (LogLevel, Value) {
    match result {
        Ok(value) => {
            let status = value.get("status").and_then(Value::as_str);
            let level = match status {
                Some("applied" | "pending_confirmation") => LoggingLevel::Notice,
                Some(_) => LoggingLevel::Info,
                None => LoggingLevel::Debug,
            };
            (level, json!({"tool": tool, "outcome": status.unwrap_or("ok"), "change_id": value.get("change_id")}))
        }
        Err(e) => {
            let level = match e.code {
                ErrorCode::InternalError | ErrorCode::ApplyFailed | ErrorCode::VerificationFailed => {
                    LoggingLevel::Error
                }
                _ => LoggingLevel::Warning,
            };
            (level, json!({"tool": tool, "outcome": e.code.as_str(), "message": e.message}))
        }
    }
}

fn arguments_map(args: Option<&Map<String, Value>>) -> Map<String, Value> {
    args.cloned().unwrap_or_default()
}

fn supports_form_elicitation(peer: &rmcp::Peer<RoleServer>) -> bool {
    peer.supported_elicitation_modes().contains(&rmcp::service::ElicitationMode::Form)
}

/// The person's answer in the client's elicitation form.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct ApprovalAnswer {
    /// Approve this exact change.
    approve: bool,
}

rmcp::elicit_safe!(ApprovalAnswer);

/// Asks the client's user, through MCP elicitation, to approve a change.
struct ElicitationApprover {
    peer: rmcp::Peer<RoleServer>,
    name: String,
}

/// How long a person has to answer before the change is refused.
const APPROVAL_WAIT: Duration = Duration::from_secs(300);

#[async_trait::async_trait]
impl HumanApprover for ElicitationApprover {
    fn name(&self) -> String {
        self.name.clone()
    }

    async fn confirm(&self, question: &str) -> Result<bool, String> {
        match self.peer.elicit_with_timeout::<ApprovalAnswer>(question, Some(APPROVAL_WAIT)).await {
            Ok(Some(answer)) => Ok(answer.approve),
            Ok(None) => Ok(false),
            Err(rmcp::service::ElicitationError::UserDeclined | rmcp::service::ElicitationError::UserCancelled) => {
                Ok(false)
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

fn to_mcp_tool(def: &ToolDef) -> Tool {
    let annotations = ToolAnnotations::with_title(def.title)
        .read_only(def.kind == ToolKind::Read)
        .destructive(def.destructive)
        .idempotent(def.idempotent)
        .open_world(false);
    Tool::new(def.name, def.description, def.input_schema.clone())
        .with_title(def.title)
        .with_raw_output_schema(def.output_schema.clone())
        .with_annotations(annotations)
}

/// A tool error as the client sees it: the stable code, the field at fault and a hint, as JSON text.
pub fn error_result(e: &CallError) -> CallToolResult {
    let body = json!({ "error": e });
    CallToolResult::error(vec![ContentBlock::text(body.to_string())])
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        (*self.info).clone()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        // A principal sees only the tools its role and the operation policy let it call.
        let ctx = self.context(&context);
        let allowed: Vec<&str> = self.service.tools_for(&ctx).iter().map(|t| t.name).collect();
        let visible: Vec<Tool> = self.tools.iter().filter(|t| allowed.contains(&t.name.as_ref())).cloned().collect();
        Ok(ListToolsResult::with_all_items(visible))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (progress, forwarder) = match context.meta.get_progress_token() {
            Some(token) => {
                let (sink, task) = PeerProgress::start(context.peer.clone(), token);
                (Some(sink), Some(task))
            }
            None => (None, None),
        };
        let ctx = self.context(&context).with_progress(progress);
        let args = request.arguments.map(Value::Object).unwrap_or(Value::Null);
        let outcome = self.service.call(&ctx, &request.name, args).await;
        let cancelled = ctx.cancel.is_cancelled();
        drop(ctx);
        if let Some(task) = forwarder
            && tokio::time::timeout(PROGRESS_FLUSH, task).await.is_err()
        {
            tracing::debug!("progress notifications still pending when the result was sent");
        }
        if cancelled {
            // The client gave up; it expects no answer and no notifications about this call.
            return Err(ErrorData::invalid_request("cancelled by the client", None));
        }
        let (level, summary) = call_log(&request.name, &outcome);
        self.log(&context.peer, level, summary).await;
        self.notify_audit_tail(&context.peer).await;
        let result = match outcome {
            Ok(value) => CallToolResult::structured(value),
            Err(e) => error_result(&e),
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let list: Vec<Resource> = portcullis_tools::resources()
            .into_iter()
            .map(|r| {
                Resource::new(r.uri, r.name)
                    .with_title(r.title)
                    .with_description(r.description)
                    .with_mime_type(r.mime_type)
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(list))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let list: Vec<ResourceTemplate> = portcullis_tools::resource_templates()
            .into_iter()
            .map(|t| {
                ResourceTemplate::new(t.uri_template, t.name)
                    .with_title(t.title)
                    .with_description(t.description)
                    .with_mime_type(t.mime_type)
            })
            .collect();
        Ok(ListResourceTemplatesResult::with_all_items(list))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let ctx = self.context(&context);
        let body = self.service.read_resource(&ctx, &request.uri).await.map_err(|e| protocol_error(&e))?;
        let contents = ResourceContents::text(body.text, body.uri).with_mime_type(body.mime_type);
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        lock(&self.session.subscriptions).insert(request.uri);
        self.start_announcing(context.peer);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        lock(&self.session.subscriptions).remove(&request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let list: Vec<Prompt> = portcullis_tools::prompts()
            .into_iter()
            .map(|p| {
                let args = p
                    .arguments
                    .iter()
                    .map(|a| PromptArgument::new(a.name).with_description(a.description).with_required(a.required))
                    .collect();
                Prompt::new(p.name, Some(p.description), Some(args)).with_title(p.title)
            })
            .collect();
        Ok(ListPromptsResult::with_all_items(list))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let args = arguments_map(request.arguments.as_ref());
        let ctx = self.context(&context);
        let body = self.service.prompt(&ctx, &request.name, &args).await.map_err(|e| protocol_error(&e))?;
        let messages = body.parts.into_iter().map(|text| PromptMessage::new_text(Role::User, text)).collect();
        let mut result = GetPromptResult::new(messages);
        result.description = Some(body.description);
        Ok(result.into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let argument = &request.argument;
        if let Reference::Prompt(p) = &request.r#ref
            && !portcullis_tools::prompts().iter().any(|d| d.name == p.name)
        {
            return Err(ErrorData::invalid_params(format!("there is no prompt named {:?}", p.name), None));
        }
        let target = request.context.as_ref().and_then(|c| c.arguments.as_ref()).and_then(|a| a.get("target")).cloned();
        let ctx = self.context(&context);
        let values = self
            .service
            .complete(&ctx, &argument.name, &argument.value, target.as_deref())
            .await
            .map_err(|e| protocol_error(&e))?;
        Ok(CompleteResult::new(completion(values)))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *lock(&self.session.log_level) = request.level;
        Ok(())
    }
}

/// At most the protocol's 100 values, saying whether there were more.
pub(crate) fn completion(mut values: Vec<String>) -> CompletionInfo {
    let total = values.len();
    values.truncate(CompletionInfo::MAX_VALUES);
    let mut info = CompletionInfo::default();
    info.has_more = Some(total > values.len());
    info.total = Some(total as u32);
    info.values = values;
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_levels_map_to_mcp_levels_in_order() {
        let levels: Vec<u8> =
            ["trace", "DEBUG", "INFO", "warn", "error"].iter().map(|l| severity(log_level_from_config(l))).collect();
        assert_eq!(levels, [0, 0, 1, 3, 4]);
        assert_eq!(log_level_from_config("anything-else"), LoggingLevel::Info);
    }

    #[test]
    fn completions_are_capped_at_the_protocol_maximum_and_say_so() {
        let many: Vec<String> = (0..150).map(|i| format!("10.0.0.{i}")).collect();
        let info = completion(many);
        assert_eq!((info.values.len(), info.total, info.has_more), (100, Some(150), Some(true)));
        let few = completion(vec!["lan".into()]);
        assert_eq!((few.values, few.has_more), (vec!["lan".to_string()], Some(false)));
    }

    #[test]
    fn the_instructions_say_which_principal_a_stdio_session_runs_as() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!("data_dir: {}\nsecurity: {{principal: admin}}\n", dir.path().display());
        let config = crate::config::parse(&text, std::path::Path::new("/etc/portcullis/config.yaml"), &|_| None)
            .expect("config");
        let app = crate::app::App::open(config).expect("app");
        let made = |transport| {
            let server =
                McpServer::new(app.service.clone(), transport, app.local_principal(), "p", "1", LoggingLevel::Info);
            server.info.instructions.clone().unwrap_or_default()
        };
        let stdio = made(Transport::Stdio);
        assert!(stdio.contains("principal admin (role admin)"), "{stdio}");
        let http = made(Transport::Http);
        assert!(http.contains("bearer token") && !http.contains("principal admin"), "{http}");
    }

    #[test]
    fn reads_log_quietly_changes_loudly() {
        let read = call_log("list_blocks", &Ok(json!({"data": []})));
        let change = call_log("block_ip_address", &Ok(json!({"status": "applied", "change_id": "c1"})));
        let refused = call_log("block_ip_address", &Err(CallError::policy("no")));
        let failed = call_log("block_ip_address", &Err(CallError::internal("boom")));
        let levels: Vec<LogLevel> = [read, change, refused, failed].into_iter().map(|(level, _)| level).collect();
        assert_eq!(levels, [LoggingLevel::Debug, LoggingLevel::Notice, LoggingLevel::Warning, LoggingLevel::Error]);
    }
}

//! The MCP adapter (rmcp). It lists the catalogue and hands every call to `ToolService::call`; it holds no
//! business logic, so MCP and the CLI behave the same.

use std::sync::Arc;

use std::time::Duration;

use portcullis_guard::{Approver, CallContext, CallError, HumanApprover, Principal, Transport};
use portcullis_tools::{ToolDef, ToolKind, ToolService};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

#[derive(Clone)]
pub struct McpServer {
    service: Arc<ToolService>,
    transport: Transport,
    /// Who calls when the transport itself does not authenticate (stdio, loopback HTTP without tokens).
    default_principal: Principal,
    tools: Arc<Vec<Tool>>,
    info: Arc<ServerConfig>,
}

impl McpServer {
    pub fn new(
        service: Arc<ToolService>,
        transport: Transport,
        default_principal: Principal,
        name: &str,
        version: &str,
    ) -> Self {
        let tools = service.tools().iter().map(to_mcp_tool).collect();
        let info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(name, version))
            .with_instructions(
                "Portcullis runs network security on firewalls with guardrails. Read tools are safe; change tools \
                 accept dry_run: true to show the exact plan first. Every call is audited.",
            );
        Self { service, transport, default_principal, tools: Arc::new(tools), info: Arc::new(info) }
    }

    fn context(&self, ctx: &RequestContext<RoleServer>) -> CallContext {
        let http_principal = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Principal>().cloned());
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
    }
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
    Tool::new(def.name, def.description, Arc::new(def.input_schema.clone()))
        .with_title(def.title)
        .with_raw_output_schema(Arc::new(def.output_schema.clone()))
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
        let visible = self.tools.iter().filter(|t| allowed.contains(&t.name.as_ref())).cloned().collect();
        Ok(ListToolsResult::with_all_items(visible))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let ctx = self.context(&context);
        let args = request.arguments.map(Value::Object).unwrap_or(Value::Null);
        let result = match self.service.call(&ctx, &request.name, args).await {
            Ok(value) => CallToolResult::structured(value),
            Err(e) => error_result(&e),
        };
        Ok(result.into())
    }
}

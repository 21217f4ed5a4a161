//! Fixtures of the official MCP conformance suite (`@modelcontextprotocol/conformance`, server scenarios): the
//! `test_*` tools, `test://` resources and `test_*` prompts its scenarios call, exactly as they describe them.
//! Compiled only with `--features conformance`; a production build lists none of them. They exercise the MCP
//! layer (content kinds, sampling, elicitation, logging, progress) and touch no firewall, so they do not pass
//! through `ToolService`.
//!
//! [`FixtureServer`] wraps the real handler rather than hooking into it, so that `mcp.rs` is the same code in
//! both builds and the suite tests exactly what production serves, plus the fixtures.

// Sampling and logging are deprecated by SEP-2577 in rmcp; the suite still tests them.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Duration;

use std::borrow::Cow;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, CancelledNotificationParam,
    CompleteRequestParams, CompleteResult, ContentBlock, CreateMessageRequestParams, CustomNotification, CustomRequest,
    CustomResult, DiscoverResult, ElicitRequestParams, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
    GetSkillRequestParams, GetSkillResult, GetTaskParams, GetTaskResult, InitializeRequestParams, InitializeResult,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListSkillsResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, Prompt, PromptArgument, PromptMessage, ProtocolVersion,
    ReadResourceDirectoryRequestParams, ReadResourceDirectoryResult, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Reference, Resource, ResourceContents, ResourceTemplate, Role, SamplingMessage, ServerConfig,
    SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
    UpdateTaskParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};

use crate::mcp::{LogLevel, McpServer, completion};

/// The real MCP handler with the suite's fixtures added: a request for a fixture is answered here, the lists
/// get the fixtures appended, and everything else goes to the inner handler unchanged.
#[derive(Clone)]
pub struct FixtureServer {
    inner: McpServer,
}

impl FixtureServer {
    pub fn new(inner: McpServer) -> Self {
        Self { inner }
    }
}

// Every method of `ServerHandler` is written out, the ones this wrapper does not change as plain delegation:
// a method left to the trait's default would answer with rmcp's default instead of what `McpServer` does, and
// nothing would fail to compile.
impl ServerHandler for FixtureServer {
    async fn ping(&self, context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        self.inner.ping(context).await
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        self.inner.initialize(request, context).await
    }

    fn negotiate_initialize(&self, request: &InitializeRequestParams) -> Result<InitializeResult, ErrorData> {
        self.inner.negotiate_initialize(request)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }

    async fn discover(&self, context: RequestContext<RoleServer>) -> Result<DiscoverResult, ErrorData> {
        self.inner.discover(context).await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        if let Reference::Prompt(p) = &request.r#ref
            && let Some(values) = complete(&p.name, &request.argument.value)
        {
            return Ok(CompleteResult::new(completion(values)));
        }
        self.inner.complete(request, context).await
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.inner.set_level(request, context).await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let args = request.arguments.clone().unwrap_or_default();
        if let Some(fixture) = get_prompt(&request.name, &args) {
            return Ok(fixture.into());
        }
        self.inner.get_prompt(request, context).await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let mut list = self.inner.list_prompts(request, context).await?;
        list.prompts.extend(prompts());
        Ok(list)
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let mut list = self.inner.list_resources(request, context).await?;
        list.resources.extend(resources());
        Ok(list)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let mut list = self.inner.list_resource_templates(request, context).await?;
        list.resource_templates.extend(resource_templates());
        Ok(list)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        if let Some(fixture) = read_resource(&request.uri) {
            return Ok(fixture.into());
        }
        self.inner.read_resource(request, context).await
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        self.inner.accepted_subscription_filter(requested)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        self.inner.listen(context).await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.inner.subscribe(request, context).await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.inner.unsubscribe(request, context).await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if is_fixture_tool(&request.name) {
            let args = request.arguments.clone().unwrap_or_default();
            return call_tool(&self.inner, &request.name, &args, &context).await.map(Into::into);
        }
        self.inner.call_tool(request, context).await
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut list = self.inner.list_tools(request, context).await?;
        list.tools.extend(tools());
        Ok(list)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.get_tool(name)
    }

    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<CustomResult, ErrorData> {
        self.inner.on_custom_request(request, context).await
    }

    async fn on_cancelled(&self, notification: CancelledNotificationParam, context: NotificationContext<RoleServer>) {
        self.inner.on_cancelled(notification, context).await
    }

    async fn on_progress(&self, notification: ProgressNotificationParam, context: NotificationContext<RoleServer>) {
        self.inner.on_progress(notification, context).await
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.inner.on_initialized(context).await
    }

    async fn on_roots_list_changed(&self, context: NotificationContext<RoleServer>) {
        self.inner.on_roots_list_changed(context).await
    }

    async fn on_custom_notification(&self, notification: CustomNotification, context: NotificationContext<RoleServer>) {
        self.inner.on_custom_notification(notification, context).await
    }

    fn get_info(&self) -> ServerConfig {
        self.inner.get_info()
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        self.inner.get_task(request, context).await
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.inner.update_task(request, context).await
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.inner.cancel_task(request, context).await
    }

    async fn list_skills(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListSkillsResult, ErrorData> {
        self.inner.list_skills(request, context).await
    }

    async fn get_skill(
        &self,
        request: GetSkillRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetSkillResult, ErrorData> {
        self.inner.get_skill(request, context).await
    }

    async fn read_resource_directory(
        &self,
        request: ReadResourceDirectoryRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceDirectoryResult, ErrorData> {
        self.inner.read_resource_directory(request, context).await
    }
}

/// A 1×1 red PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
/// Eight samples of 16-bit mono silence at 8 kHz.
const WAV: &str = "UklGRjQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YRAAAAAAAAAAAAAAAAAAAAAAAAAA";

fn object(schema: Value) -> Arc<Map<String, Value>> {
    match schema {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(Map::new()),
    }
}

fn no_args() -> Arc<Map<String, Value>> {
    object(json!({"type": "object", "properties": {}}))
}

fn string_args(names: &[&str]) -> Arc<Map<String, Value>> {
    let properties: Map<String, Value> = names.iter().map(|n| (n.to_string(), json!({"type": "string"}))).collect();
    object(json!({"type": "object", "properties": properties, "required": names}))
}

fn tools() -> Vec<Tool> {
    let tool = |name: &'static str, description: &'static str| Tool::new(name, description, no_args());
    vec![
        tool("test_simple_text", "Conformance fixture: returns simple text."),
        tool("test_image_content", "Conformance fixture: returns an image."),
        tool("test_audio_content", "Conformance fixture: returns audio."),
        tool("test_embedded_resource", "Conformance fixture: returns an embedded resource."),
        tool("test_multiple_content_types", "Conformance fixture: returns text, image and resource."),
        tool("test_tool_with_logging", "Conformance fixture: sends three log messages."),
        tool("test_tool_with_progress", "Conformance fixture: reports progress 0, 50, 100 of 100."),
        tool("test_error_handling", "Conformance fixture: always fails."),
        tool("test_reconnection", "Conformance fixture: a call that takes a moment (SSE polling, SEP-1699)."),
        Tool::new("test_sampling", "Conformance fixture: asks the client's LLM.", string_args(&["prompt"])),
        Tool::new("test_elicitation", "Conformance fixture: asks the user.", string_args(&["message"])),
        tool("test_elicitation_sep1034_defaults", "Conformance fixture: elicitation with defaults (SEP-1034)."),
        tool("test_elicitation_sep1330_enums", "Conformance fixture: elicitation with enums (SEP-1330)."),
        Tool::new(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features",
            object(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {"address": {"type": "object", "properties": {
                    "street": {"type": "string"}, "city": {"type": "string"}}}},
                "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
                "additionalProperties": false
            })),
        ),
    ]
}

fn is_fixture_tool(name: &str) -> bool {
    tools().iter().any(|t| t.name == name)
}

fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

async fn call_tool(
    server: &McpServer,
    name: &str,
    args: &Map<String, Value>,
    context: &RequestContext<RoleServer>,
) -> Result<CallToolResult, ErrorData> {
    let arg = |key: &str| args.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let pause = || tokio::time::sleep(Duration::from_millis(50));
    Ok(match name {
        "test_simple_text" => text_result("This is a simple text response for testing."),
        "test_image_content" => CallToolResult::success(vec![ContentBlock::image(PNG, "image/png")]),
        "test_audio_content" => CallToolResult::success(vec![ContentBlock::audio(WAV, "audio/wav")]),
        "test_embedded_resource" => CallToolResult::success(vec![ContentBlock::resource(
            ResourceContents::text("This is an embedded resource content.", "test://embedded-resource")
                .with_mime_type("text/plain"),
        )]),
        "test_multiple_content_types" => CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(PNG, "image/png"),
            ContentBlock::resource(
                ResourceContents::text(r#"{"test":"data","value":123}"#, "test://mixed-content-resource")
                    .with_mime_type("application/json"),
            ),
        ]),
        "test_tool_with_logging" => {
            for (i, message) in
                ["Tool execution started", "Tool processing data", "Tool execution completed"].into_iter().enumerate()
            {
                if i > 0 {
                    pause().await;
                }
                server.log(&context.peer, LogLevel::Info, json!(message)).await;
            }
            text_result("Tool with logging executed successfully")
        }
        "test_tool_with_progress" => {
            let token = context.meta.get_progress_token();
            for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                if i > 0 {
                    pause().await;
                }
                if let Some(token) = &token {
                    let note = ProgressNotificationParam::new(token.clone(), progress).with_total(100.0);
                    let _ = context.peer.notify_progress(note).await;
                }
            }
            text_result("Tool with progress executed successfully")
        }
        "test_error_handling" => {
            CallToolResult::error(vec![ContentBlock::text("This tool intentionally returns an error for testing")])
        }
        "test_sampling" => sample(context, arg("prompt")).await?,
        "test_elicitation" => {
            let schema = json!({"type": "object", "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"}},
                "required": ["username", "email"]});
            let answer = elicit(context, arg("message"), schema).await?;
            text_result(format!("User response: {answer}"))
        }
        "test_elicitation_sep1034_defaults" => {
            let schema = json!({"type": "object", "properties": {
                "name": {"type": "string", "default": "John Doe"},
                "age": {"type": "integer", "default": 30},
                "score": {"type": "number", "default": 95.5},
                "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
                "verified": {"type": "boolean", "default": true}}});
            let answer = elicit(context, "Please review the defaults".into(), schema).await?;
            text_result(format!("Elicitation completed: {answer}"))
        }
        "test_elicitation_sep1330_enums" => {
            let titled = |prefix: &str, titles: [&str; 3]| -> Vec<Value> {
                titles
                    .iter()
                    .enumerate()
                    .map(|(i, t)| json!({"const": format!("{prefix}{}", i + 1), "title": t}))
                    .collect()
            };
            let schema = json!({"type": "object", "properties": {
                "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                "titledSingle": {"type": "string",
                    "oneOf": titled("value", ["First Option", "Second Option", "Third Option"])},
                "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"]},
                "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                "titledMulti": {"type": "array",
                    "items": {"anyOf": titled("value", ["First Choice", "Second Choice", "Third Choice"])}}}});
            let answer = elicit(context, "Please choose".into(), schema).await?;
            text_result(format!("Elicitation completed: {answer}"))
        }
        "test_reconnection" => {
            pause().await;
            text_result("Reconnection test completed")
        }
        "json_schema_2020_12_tool" => text_result(format!("Received {}", Value::Object(args.clone()))),
        other => return Err(ErrorData::invalid_params(format!("no fixture tool {other}"), None)),
    })
}

async fn sample(context: &RequestContext<RoleServer>, prompt: String) -> Result<CallToolResult, ErrorData> {
    let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
    match context.peer.create_message(params).await {
        Ok(reply) => {
            let text = reply.message.content.first().and_then(|c| c.as_text()).map(|t| t.text.clone());
            Ok(text_result(format!("LLM response: {}", text.unwrap_or_default())))
        }
        Err(e) => Ok(CallToolResult::error(vec![ContentBlock::text(format!("sampling failed: {e}"))])),
    }
}

async fn elicit(context: &RequestContext<RoleServer>, message: String, schema: Value) -> Result<String, ErrorData> {
    let requested_schema = serde_json::from_value(schema)
        .map_err(|e| ErrorData::internal_error(format!("fixture schema rejected by rmcp: {e}"), None))?;
    let params = ElicitRequestParams::FormElicitationParams { meta: None, message, requested_schema };
    match context.peer.create_elicitation(params).await {
        Ok(answer) => Ok(format!(
            "action={}, content={}",
            serde_json::to_value(&answer.action).unwrap_or_default().as_str().unwrap_or("unknown"),
            answer.content.map(|c| c.to_string()).unwrap_or_else(|| "null".into())
        )),
        Err(e) => Err(ErrorData::internal_error(format!("elicitation failed: {e}"), None)),
    }
}

fn resources() -> Vec<Resource> {
    vec![
        Resource::new("test://static-text", "static-text")
            .with_description("Conformance fixture: static text")
            .with_mime_type("text/plain"),
        Resource::new("test://static-binary", "static-binary")
            .with_description("Conformance fixture: static PNG")
            .with_mime_type("image/png"),
        Resource::new("test://watched-resource", "watched-resource")
            .with_description("Conformance fixture: a resource to subscribe to")
            .with_mime_type("text/plain"),
    ]
}

fn resource_templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("test://template/{id}/data", "template-data")
            .with_description("Conformance fixture: data by id")
            .with_mime_type("application/json"),
    ]
}

/// The fixture behind a `test://` URI, or `None` if it is not one.
fn read_resource(uri: &str) -> Option<ReadResourceResult> {
    let text = |body: &str, mime: &str| ResourceContents::text(body, uri).with_mime_type(mime);
    let contents = match uri {
        "test://static-text" => text("This is the content of the static text resource.", "text/plain"),
        "test://static-binary" => ResourceContents::blob(PNG, uri).with_mime_type("image/png"),
        "test://watched-resource" => text("Watched resource content.", "text/plain"),
        _ => {
            let id = uri.strip_prefix("test://template/")?.strip_suffix("/data")?;
            let body = json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")});
            text(&body.to_string(), "application/json")
        }
    };
    Some(ReadResourceResult::new(vec![contents]))
}

fn prompts() -> Vec<Prompt> {
    let arg =
        |name: &str, description: &str| PromptArgument::new(name).with_description(description).with_required(true);
    vec![
        Prompt::new("test_simple_prompt", Some("Conformance fixture: a simple prompt"), None),
        Prompt::new(
            "test_prompt_with_arguments",
            Some("Conformance fixture: a prompt with arguments"),
            Some(vec![arg("arg1", "First test argument"), arg("arg2", "Second test argument")]),
        ),
        Prompt::new(
            "test_prompt_with_embedded_resource",
            Some("Conformance fixture: a prompt with an embedded resource"),
            Some(vec![arg("resourceUri", "URI of the resource to embed")]),
        ),
        Prompt::new("test_prompt_with_image", Some("Conformance fixture: a prompt with an image"), None),
    ]
}

/// The fixture prompt `name`, or `None` if it is not one.
fn get_prompt(name: &str, args: &Map<String, Value>) -> Option<GetPromptResult> {
    let arg = |key: &str| args.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let messages = match name {
        "test_simple_prompt" => vec![PromptMessage::new_text(Role::User, "This is a simple prompt for testing.")],
        "test_prompt_with_arguments" => vec![PromptMessage::new_text(
            Role::User,
            format!("Prompt with arguments: arg1='{}', arg2='{}'", arg("arg1"), arg("arg2")),
        )],
        "test_prompt_with_embedded_resource" => vec![
            PromptMessage::new(
                Role::User,
                ContentBlock::resource(
                    ResourceContents::text("Embedded resource content for testing.", arg("resourceUri"))
                        .with_mime_type("text/plain"),
                ),
            ),
            PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
        ],
        "test_prompt_with_image" => vec![
            PromptMessage::new(Role::User, ContentBlock::image(PNG, "image/png")),
            PromptMessage::new_text(Role::User, "Please analyze the image above."),
        ],
        _ => return None,
    };
    Some(GetPromptResult::new(messages))
}

/// Completions for the fixture prompt's arguments, or `None` if the reference is not a fixture.
fn complete(prompt: &str, value: &str) -> Option<Vec<String>> {
    (prompt == "test_prompt_with_arguments").then(|| {
        ["paris", "park", "party", "test", "testing"]
            .iter()
            .filter(|v| v.starts_with(value))
            .map(|v| v.to_string())
            .collect()
    })
}

//! Fixtures of the official MCP conformance suite (`@modelcontextprotocol/conformance`, server scenarios): the
//! `test_*` tools, `test://` resources and `test_*` prompts its scenarios call, exactly as they describe them.
//! Compiled only with `--features conformance`; a production build lists none of them. They exercise the MCP
//! layer (content kinds, sampling, elicitation, logging, progress) and touch no firewall, so they do not pass
//! through `ToolService`.

// Sampling and logging are deprecated by SEP-2577 in rmcp; the suite still tests them.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    CallToolResult, ContentBlock, CreateMessageRequestParams, ElicitRequestParams, GetPromptResult,
    ProgressNotificationParam, Prompt, PromptArgument, PromptMessage, ReadResourceResult, Resource, ResourceContents,
    ResourceTemplate, Role, SamplingMessage, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Map, Value, json};

use crate::mcp::LogLevel;

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

pub fn tools() -> Vec<Tool> {
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

pub fn is_fixture_tool(name: &str) -> bool {
    tools().iter().any(|t| t.name == name)
}

fn text_result(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

pub async fn call_tool(
    server: &crate::mcp::McpServer,
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

pub fn resources() -> Vec<Resource> {
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

pub fn resource_templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("test://template/{id}/data", "template-data")
            .with_description("Conformance fixture: data by id")
            .with_mime_type("application/json"),
    ]
}

/// The fixture behind a `test://` URI, or `None` if it is not one.
pub fn read_resource(uri: &str) -> Option<ReadResourceResult> {
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

pub fn prompts() -> Vec<Prompt> {
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
pub fn get_prompt(name: &str, args: &Map<String, Value>) -> Option<GetPromptResult> {
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
pub fn complete(prompt: &str, value: &str) -> Option<Vec<String>> {
    (prompt == "test_prompt_with_arguments").then(|| {
        ["paris", "park", "party", "test", "testing"]
            .iter()
            .filter(|v| v.starts_with(value))
            .map(|v| v.to_string())
            .collect()
    })
}

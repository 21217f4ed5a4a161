//! The tool catalogue: every tool is declared once, as a type implementing [`Tool`] (its metadata, access,
//! argument type, result type and route), and [`row`] turns the declaration into the [`ToolDef`] transports list
//! and `ToolService::call` dispatches through. The rows themselves are in `rows.rs`.

mod outline;
mod rows;

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use portcullis_core::model::Timestamp;
use portcullis_guard::{Category, Level, RateClass, Requirement};
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::CallError;
use crate::args::parse_args;
use crate::work::{Work, WorkKind};

/// Whether a tool reads or changes the firewall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    Read,
    Change,
}

/// One tool as every transport sees it.
#[derive(Debug, Clone)]
pub struct ToolDef {
    pub name: &'static str,
    pub title: &'static str,
    pub description: &'static str,
    /// The operation name policies refer to (`security.allowed_operations`).
    pub operation: &'static str,
    pub kind: ToolKind,
    /// The permission a principal's role must grant.
    pub requirement: Requirement,
    pub rate_class: RateClass,
    pub destructive: bool,
    pub idempotent: bool,
    pub input_schema: Schema,
    /// What clients check each result against: an outline of the result type (`outline.rs`).
    pub output_schema: Schema,
    /// The whole result type (2020-12, shared `$defs`), served as `portcullis://schemas/{tool}`.
    pub result_schema: Schema,
    /// Parses the arguments into the tool's argument type and says what work the call is.
    pub(crate) route: Route,
}

/// A tool's route, with its argument type erased.
pub(crate) type Route = fn(&Value, Timestamp) -> Result<WorkKind, CallError>;

/// A JSON schema, shared: a dozen change tools return the same result type, and a server holds its tools' schemas
/// for its whole life (as JSON trees they are most of its heap at idle).
pub type Schema = Arc<Map<String, Value>>;

/// How a schema holds the types it is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Form {
    /// Every type written out where it is used: input schemas, which some clients turn into function
    /// declarations for a model and which must not need a resolver.
    Inline,
    /// Each type written once under `$defs` and referenced: output schemas, which clients validate every result
    /// against (the change result holds a rule four times over; inlined it was 19 KB per tool).
    Shared,
}

/// The schema of `T` in `form`, made once per process.
fn schema_of<T: JsonSchema + 'static>(form: Form) -> Schema {
    static MADE: OnceLock<Mutex<HashMap<(TypeId, Form), Schema>>> = OnceLock::new();
    let made = MADE.get_or_init(Mutex::default);
    let mut made = made.lock().unwrap_or_else(|p| p.into_inner());
    made.entry((TypeId::of::<T>(), form)).or_insert_with(|| Arc::new(generate_schema::<T>(form))).clone()
}

/// The input schema of `T`: inline, closed to properties it does not declare, as calls are checked.
fn input_schema_of<T: JsonSchema + 'static>() -> Schema {
    static MADE: OnceLock<Mutex<HashMap<TypeId, Schema>>> = OnceLock::new();
    let made = MADE.get_or_init(Mutex::default);
    let mut made = made.lock().unwrap_or_else(|p| p.into_inner());
    made.entry(TypeId::of::<T>())
        .or_insert_with(|| {
            let mut schema = (*schema_of::<T>(Form::Inline)).clone();
            schema.insert("additionalProperties".into(), Value::Bool(false));
            Arc::new(schema)
        })
        .clone()
}

/// The output schema of tool `T`: the outline of its result type, made once per process and tool.
fn outline_of<T: Tool>() -> Schema {
    static MADE: OnceLock<Mutex<HashMap<&'static str, Schema>>> = OnceLock::new();
    let made = MADE.get_or_init(Mutex::default);
    let mut made = made.lock().unwrap_or_else(|p| p.into_inner());
    made.entry(T::DECL.name)
        .or_insert_with(|| Arc::new(outline::outline(T::DECL.name, &schema_of::<T::Output>(Form::Shared))))
        .clone()
}

fn generate_schema<T: JsonSchema>(form: Form) -> Map<String, Value> {
    // Draft 2020-12; shared definitions live under `$defs` and are referenced within the same document, which
    // every validator resolves without fetching anything.
    let settings = SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = form == Form::Inline);
    let schema = SchemaGenerator::new(settings).into_root_schema_for::<T>();
    let mut map = match serde_json::to_value(schema) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    map.remove("$schema");
    map.remove("title");
    let mut schema = Value::Object(map);
    objects_for_boolean_schemas(&mut schema);
    match schema {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Replaces the boolean schema `true` (what schemars makes of a free-form `serde_json::Value`) with its equal `{}`
/// below `properties` and `items`: MCP clients (the official TypeScript SDK among them) accept only object
/// schemas there and refuse the whole tool list otherwise.
fn objects_for_boolean_schemas(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if child == &Value::Bool(true) && matches!(key.as_str(), "items" | "additionalProperties") {
                    *child = Value::Object(Map::new());
                } else if key == "properties" {
                    if let Value::Object(props) = child {
                        for prop in props.values_mut() {
                            if prop == &Value::Bool(true) {
                                *prop = Value::Object(Map::new());
                            }
                            objects_for_boolean_schemas(prop);
                        }
                    }
                } else {
                    objects_for_boolean_schemas(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(objects_for_boolean_schemas),
        _ => {}
    }
}

/// What clients see of a tool, and the permission it needs.
pub(crate) struct Decl {
    name: Text,
    title: Text,
    /// The operation name policies refer to (`security.allowed_operations`).
    operation: Text,
    kind: ToolKind,
    category: Category,
    level: Level,
    destructive: bool,
    idempotent: bool,
    description: Text,
    /// A rate class of its own; `None`: the one its level and kind give.
    rate_class: Option<RateClass>,
}

/// A text fixed at compile time.
type Text = &'static str;

impl Decl {
    /// A read tool: read level, idempotent.
    pub(crate) const fn read(name: Text, title: Text, operation: Text, category: Category) -> Self {
        Self::new(name, title, operation, (ToolKind::Read, category, Level::Read))
    }

    /// A change tool: write level, not destructive, idempotent (the same call twice ends in the same state).
    pub(crate) const fn change(name: Text, title: Text, operation: Text, category: Category) -> Self {
        Self::new(name, title, operation, (ToolKind::Change, category, Level::Write))
    }

    const fn new(
        name: Text,
        title: Text,
        operation: Text,
        (kind, category, level): (ToolKind, Category, Level),
    ) -> Self {
        Self {
            name,
            title,
            operation,
            kind,
            category,
            level,
            destructive: false,
            idempotent: true,
            description: "",
            rate_class: None,
        }
    }

    /// Needs the admin level (and counts in the admin rate class).
    pub(crate) const fn admin(self) -> Self {
        Self { level: Level::Admin, ..self }
    }

    /// May remove or undo something (MCP's destructive hint).
    pub(crate) const fn destructive(self) -> Self {
        Self { destructive: true, ..self }
    }

    /// The same call twice does not end in the same state.
    pub(crate) const fn not_idempotent(self) -> Self {
        Self { idempotent: false, ..self }
    }

    /// Counts its calls in `class` instead of the one its level and kind give.
    pub(crate) const fn rate(self, class: RateClass) -> Self {
        Self { rate_class: Some(class), ..self }
    }

    /// What a model reads to choose the tool.
    pub(crate) const fn about(self, description: Text) -> Self {
        Self { description, ..self }
    }
}

/// One tool, declared once: its metadata and access, what it takes, what it answers, and the work a call is.
pub(crate) trait Tool {
    /// The arguments: the input schema is made from this type, and calls are parsed into it.
    type Args: DeserializeOwned + JsonSchema + 'static;
    /// The answer: the output schema is made from this type, and the route's work returns it.
    type Output: Serialize + JsonSchema + 'static;
    const DECL: Decl;
    /// Validates the arguments into the work the call is.
    fn route(args: Self::Args, now: Timestamp) -> Result<Work<Self::Output>, CallError>;
}

fn route_of<T: Tool>(args: &Value, now: Timestamp) -> Result<WorkKind, CallError> {
    refuse_unknown_arguments(args, &input_schema_of::<T::Args>())?;
    Ok(T::route(parse_args(args)?, now)?.kind)
}

/// A key the tool does not declare is refused, never ignored: a misspelt `dry_run` must not apply a change.
fn refuse_unknown_arguments(args: &Value, schema: &Map<String, Value>) -> Result<(), CallError> {
    let Some(given) = args.as_object() else { return Ok(()) };
    let known = schema.get("properties").and_then(Value::as_object);
    let is_known = |key: &str| known.is_some_and(|k| k.contains_key(key));
    let Some(unknown) = given.keys().find(|key| !is_known(key)) else { return Ok(()) };
    let names: Vec<&str> = known.map(|k| k.keys().map(String::as_str).collect()).unwrap_or_default();
    let message = match closest(unknown, &names) {
        Some(name) => format!("unknown argument; did you mean `{name}`?"),
        None => "unknown argument".to_string(),
    };
    let hint = if names.is_empty() {
        "this tool takes no arguments".into()
    } else {
        format!("its arguments: {}", names.join(", "))
    };
    Err(CallError::from(portcullis_core::FieldError::new(unknown.as_str(), message)).with_hint(hint))
}

/// The known name an unknown one most likely means: the same letters but for case, `-` and `_` (`dryRun`,
/// `dry-run`, `dryrun`), or a small misspelling.
pub(crate) fn closest<'a>(unknown: &str, names: &[&'a str]) -> Option<&'a str> {
    let fold = |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    let wanted = fold(unknown);
    names
        .iter()
        .map(|name| (strsim::levenshtein(&wanted, &fold(name)), *name))
        .filter(|(distance, name)| *distance <= (name.len() / 4).max(1))
        .min()
        .map(|(_, name)| name)
}

/// The catalogue row of a tool. Admin-level tools share the admin rate class; other changes are sensitive.
pub(crate) fn row<T: Tool>() -> ToolDef {
    let d = T::DECL;
    let rate_class = match (d.rate_class, d.level, d.kind) {
        (Some(class), _, _) => class,
        (None, Level::Admin, _) => RateClass::Admin,
        (None, _, ToolKind::Change) => RateClass::Sensitive,
        (None, _, ToolKind::Read) => RateClass::Default,
    };
    ToolDef {
        name: d.name,
        title: d.title,
        description: d.description,
        operation: d.operation,
        kind: d.kind,
        requirement: Requirement { category: d.category, level: d.level },
        rate_class,
        destructive: d.destructive,
        idempotent: d.idempotent,
        input_schema: input_schema_of::<T::Args>(),
        output_schema: outline_of::<T>(),
        result_schema: schema_of::<T::Output>(Form::Shared),
        route: route_of::<T>,
    }
}

/// Every tool Portcullis offers, in catalogue order.
pub fn catalogue() -> Vec<ToolDef> {
    rows::rows()
}

/// The permission table of docs/PERMISSIONS.md, generated from the catalogue and the built-in roles.
pub fn permissions_markdown(roles: &portcullis_guard::Roles) -> String {
    let builtin = portcullis_guard::roles::BUILTIN_ROLES;
    let mut out = String::from(
        "# Permissions\n\n\
         Generated from the tool catalogue and the built-in roles by \
         `UPDATE_DOCS=1 cargo test -p portcullis-tools --test guardrails`; a test fails when this file and the \
         code disagree, and the role matrix test checks every tool against this table.\n\n\
         Levels: none < read < write < admin. Rate classes per principal and minute: default 100, sensitive 10, \
         admin 5 (config `security.rate_limits`).\n\n",
    );
    out.push_str("| tool | operation | category | level | rate class |");
    for r in builtin {
        out.push_str(&format!(" {r} |"));
    }
    out.push_str("\n|---|---|---|---|---|");
    out.push_str(&"---|".repeat(builtin.len()));
    out.push('\n');
    for t in catalogue() {
        let class =
            serde_json::to_value(t.rate_class).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} |",
            t.name,
            t.operation,
            t.requirement.category.as_str(),
            t.requirement.level,
            class
        ));
        for r in builtin {
            let allowed = roles.get(r).is_some_and(|role| role.allows(t.requirement));
            out.push_str(if allowed { " allow |" } else { " deny |" });
        }
        out.push('\n');
    }
    out
}

//! The catalogue as clients see it, compared with a snapshot: every tool's name, metadata, access and both JSON
//! schemas. Output schemas are what clients check results against, so a refactoring must leave them
//! byte-identical; a deliberate change regenerates the file with `UPDATE_SNAPSHOT=1` and shows up in review.

use portcullis_tools::catalogue;
use serde_json::{Value, json};

const SNAPSHOT: &str = "tests/snapshots/catalogue.json";

fn current() -> Value {
    let tools: Vec<Value> = catalogue()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "title": t.title,
                "description": t.description,
                "operation": t.operation,
                "read_only": t.kind == portcullis_tools::ToolKind::Read,
                "destructive": t.destructive,
                "idempotent": t.idempotent,
                "category": t.requirement.category.as_str(),
                "level": t.requirement.level.to_string(),
                "rate_class": t.rate_class,
                "input_schema": *t.input_schema,
                "output_schema": *t.output_schema,
                "result_schema": *t.result_schema,
            })
        })
        .collect();
    Value::Array(tools)
}

#[test]
fn the_catalogue_matches_its_snapshot_byte_for_byte() {
    let text = serde_json::to_string_pretty(&current()).expect("the catalogue serialises") + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOT);
    if std::env::var_os("UPDATE_SNAPSHOT").is_some() {
        std::fs::write(&path, &text).expect("snapshot written");
        return;
    }
    let saved = std::fs::read_to_string(&path).expect("the snapshot exists (UPDATE_SNAPSHOT=1 writes it)");
    let (now, before): (Value, Value) = (serde_json::from_str(&text).unwrap(), serde_json::from_str(&saved).unwrap());
    let (now, before) = (now.as_array().unwrap(), before.as_array().unwrap());
    let names = |v: &[Value]| v.iter().map(|t| t["name"].as_str().unwrap_or_default().to_string()).collect::<Vec<_>>();
    assert_eq!(names(now), names(before), "tools added, removed or reordered");
    for (a, b) in now.iter().zip(before) {
        for key in ["output_schema", "result_schema", "input_schema"] {
            let (x, y) = (serde_json::to_string(&a[key]).unwrap(), serde_json::to_string(&b[key]).unwrap());
            assert_eq!(x, y, "{} of {} differs from the snapshot", key, a["name"]);
        }
        assert_eq!(a, b, "metadata of {} differs from the snapshot", a["name"]);
    }
    assert_eq!(text, saved, "the snapshot file differs in layout");
}

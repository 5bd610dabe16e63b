//! Makes the generated OpenAPI document as strict as the service: every
//! status an operation can answer, the alphabets and lengths of ids, the
//! ranges of numeric parameters, array bounds and the media types bodies
//! are accepted in. Applied as a [`utoipa::Modify`] over the document's
//! JSON form, so the handlers' annotations stay as they are.

use serde_json::{Value, json};
use utoipa::Modify;

use xuefen_core::limits::{
    ACCOUNT_BYTES_MAX, CATEGORY_BYTES_MAX, COURSE_CODE_BYTES_MAX, EVENT_ID_BYTES_MAX, GROUP_COURSES_MAX,
    GROUP_ID_BYTES_MAX, SITE_ID_BYTES_MAX,
};

pub(crate) struct Strict;

/// The pattern of a path or query parameter named `name`, by the id type
/// the service parses it as.
fn id_schema(name: &str) -> Option<Value> {
    let (pattern, max) = match name {
        "site_id" | "site" => (format!("^[a-z0-9-]{{1,{SITE_ID_BYTES_MAX}}}$"), SITE_ID_BYTES_MAX),
        "event_id" => (
            format!("^[A-Za-z0-9._:-]{{1,{EVENT_ID_BYTES_MAX}}}$"),
            EVENT_ID_BYTES_MAX,
        ),
        "code" => (
            format!("^[A-Za-z0-9._:-]{{1,{COURSE_CODE_BYTES_MAX}}}$"),
            COURSE_CODE_BYTES_MAX,
        ),
        "group_id" => (
            format!("^[A-Za-z0-9._:-]{{1,{GROUP_ID_BYTES_MAX}}}$"),
            GROUP_ID_BYTES_MAX,
        ),
        "local_account" => (
            format!("^[A-Za-z0-9._@+-]{{1,{ACCOUNT_BYTES_MAX}}}$"),
            ACCOUNT_BYTES_MAX,
        ),
        "category" => (format!("^[a-z0-9_-]{{1,{CATEGORY_BYTES_MAX}}}$"), CATEGORY_BYTES_MAX),
        // The unified id (the admin) or a pseudonym (a site, the bank).
        "learner_id" => ("^(lrn|psn)_[0-9a-f]{32}$".to_owned(), 36),
        "key_id" => ("^key_[0-9a-f]{12}$".to_owned(), 16),
        _ => return None,
    };
    Some(json!({"type": "string", "pattern": pattern, "minLength": 1, "maxLength": max}))
}

/// The schema of a numeric query parameter of operation `op`.
fn range_schema(op: &str, name: &str) -> Option<Value> {
    let page = crate::PAGE_SIZE_MAX;
    Some(match (op, name) {
        ("get_transcript" | "get_my_transcript", "limit") => json!({"type": "integer", "minimum": 1, "maximum": page}),
        ("get_transcript" | "get_my_transcript", "year") => {
            json!({"type": "integer", "minimum": 1900, "maximum": 9999})
        }
        ("get_site_stats" | "list_stats", "year") => json!({"type": "integer", "minimum": 2000, "maximum": 2100}),
        ("list_deposits", "limit") => {
            json!({"type": "integer", "minimum": 1, "maximum": crate::bank::PAGE_DEPOSITS_MAX})
        }
        // The statement query clamps: 0 means the default, more than 500 means 500.
        (_, "limit") => json!({"type": "integer", "minimum": 0}),
        _ => return None,
    })
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

fn with_retry_after(mut response: Value, description: &str) -> Value {
    response["headers"] = json!({
        "Retry-After": {"description": description, "schema": {"type": "integer", "minimum": 1}}
    });
    response
}

/// Adds `status` to `responses` unless the operation documents it already.
fn add(responses: &mut serde_json::Map<String, Value>, status: &str, response: Value) {
    responses.entry(status.to_owned()).or_insert(response);
}

fn strict(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for op in item.values_mut() {
            if let Some(op) = op.as_object_mut() {
                strict_operation(path, op);
            }
        }
    }
}

/// What an operation takes, which decides the errors it can answer.
#[derive(Default)]
struct Takes {
    secured: bool,
    body: bool,
    /// Any parameter other than a header.
    param: bool,
    path_param: bool,
}

/// Tightens one operation's parameters and body and documents the errors
/// every operation of its shape can answer.
fn strict_operation(path: &str, op: &mut serde_json::Map<String, Value>) {
    // The browser pages answer their errors as HTML pages and document
    // those themselves.
    let page = op
        .get("tags")
        .and_then(Value::as_array)
        .is_some_and(|tags| tags.iter().any(|t| t == "pages"));
    if page {
        return;
    }
    let id = op
        .get("operationId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut takes = Takes {
        secured: op.get("security").is_some(),
        body: op.get("requestBody").is_some(),
        ..Takes::default()
    };
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        strict_params(&id, params, &mut takes);
    }
    if let Some(body) = op.get_mut("requestBody") {
        strict_body(&id, body);
    }
    if let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) {
        let versioned = path.starts_with("/v1/") || path.starts_with("/xapi/");
        add_errors(responses, &takes, versioned);
    }
}

/// Gives identifiers, ranges and integer path segments their bounds, and
/// notes in `takes` which kinds of parameter the operation has.
fn strict_params(id: &str, params: &mut [Value], takes: &mut Takes) {
    for p in params.iter_mut() {
        let name = p["name"].as_str().unwrap_or_default().to_owned();
        let place = p["in"].as_str().unwrap_or_default().to_owned();
        if place == "header" {
            continue;
        }
        takes.param = true;
        takes.path_param |= place == "path";
        if let Some(s) = id_schema(&name) {
            p["schema"] = s;
        } else if place == "query"
            && let Some(s) = range_schema(id, &name)
        {
            p["schema"] = s;
        } else if place == "path" && p["schema"]["type"] == "integer" {
            p["schema"] = json!({"type": "integer", "minimum": 0});
        }
    }
}

/// The error responses an operation that takes `takes` can answer, added
/// where it does not document them itself.
fn add_errors(responses: &mut serde_json::Map<String, Value>, takes: &Takes, versioned: bool) {
    if takes.param || takes.body || versioned {
        add(
            responses,
            "400",
            problem(
                "malformed request: bad encoding, U+0000, a repeated or unknown parameter, or a body that is not JSON",
            ),
        );
    }
    if takes.secured {
        add(
            responses,
            "401",
            problem("no API key, or one that is not valid or revoked"),
        );
        add(
            responses,
            "403",
            problem("the key's principal may not do this, or its site is suspended or its agreement ended"),
        );
        add(
            responses,
            "429",
            with_retry_after(
                problem("this API key is over its request rate"),
                "seconds until the key may call again",
            ),
        );
    }
    if takes.path_param {
        add(responses, "404", problem("no such resource"));
    }
    if takes.body {
        add(
            responses,
            "408",
            problem("the body did not arrive in full within body_read_timeout_ms"),
        );
        add(responses, "413", problem("the body is larger than body_bytes_max"));
        add(
            responses,
            "415",
            problem("the body's Content-Type is not one this operation accepts"),
        );
    }
    if takes.param || takes.body {
        add(
            responses,
            "422",
            problem("a field or parameter is not valid; `field` names it"),
        );
    }
    add(
        responses,
        "503",
        with_retry_after(
            problem("the database is unavailable, or the request was not answered within request_timeout_ms"),
            "seconds after which to retry",
        ),
    );
}

/// Body bounds and media types: the batch of `POST /v1/events` is at most
/// `batch_events_max` (default 1000) items, each any JSON value (an item
/// that is not a valid event gets its own `rejected` result), in JSON or
/// NDJSON.
fn strict_body(op: &str, body: &mut Value) {
    if op == "post_events" {
        let items = json!({
            "description": "an `EventIn`; an item that is not a valid event is answered with its own `rejected` result while the others are processed"
        });
        body["content"] = json!({
            "application/json": {"schema": {"type": "array", "minItems": 1, "maxItems": 1000, "items": items}},
            "application/x-ndjson": {"schema": {"type": "string", "description": "one `EventIn` per line, at most 1000 lines"}},
        });
        body["description"] = json!(
            "events, as a JSON array or NDJSON (`application/x-ndjson`); at most `batch_events_max` (default 1000)"
        );
    }
}

impl Modify for Strict {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Ok(mut doc) = serde_json::to_value(&*openapi) else {
            return;
        };
        strict(&mut doc);
        if let Some(courses) = doc.pointer_mut("/components/schemas/GroupIn/properties/courses") {
            courses["maxItems"] = json!(GROUP_COURSES_MAX);
        }
        // The document is built from the code alone, so a failed round trip
        // is a programming error that the OpenAPI tests must see, not a
        // contract silently left loose.
        match serde_json::from_value(doc) {
            Ok(strict) => *openapi = strict,
            Err(e) => panic!("the strict OpenAPI document does not read back: {e}"),
        }
        // An item of any JSON value does not survive the JSON round trip
        // above; it is built here.
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType};
        let batch = ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(SchemaType::AnyValue).description(Some(
                "an `EventIn`; an item that is not a valid event is answered with its own `rejected` result while the others are processed",
            )))
            .min_items(Some(1))
            .max_items(Some(1000))
            .build();
        if let Some(body) = openapi
            .paths
            .paths
            .get_mut("/v1/events")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut())
            && let Some(content) = body.content.get_mut("application/json")
        {
            content.schema = Some(utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Array(batch)));
        }
    }
}

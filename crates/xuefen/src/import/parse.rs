//! Reading the input: NDJSON (one object a line, with a `type`) or CSV (the
//! fixed columns of `docs/import.md`), both into the same records; a line that
//! cannot be read becomes a rejection of its own, never a stop.

use super::*;

pub(super) fn unreadable(number: usize, detail: impl Into<String>) -> Rejected {
    Rejected {
        line: number,
        event_id: None,
        status: "unreadable".into(),
        problem: json!({"detail": detail.into()}),
    }
}

/// A record from one JSON object with a `type`.
pub(super) fn record_of(mut obj: Map<String, Value>) -> Result<Record, String> {
    let kind = match obj.remove("type") {
        Some(Value::String(t)) => t,
        _ => return Err("`type` must be one of learner, link, event".into()),
    };
    match kind.as_str() {
        "learner" => Ok(Record::Learner(Value::Object(obj))),
        "link" => {
            let account = match obj.remove("local_account") {
                Some(Value::String(a)) if !a.is_empty() => a,
                _ => return Err("a link needs `local_account`".into()),
            };
            Ok(Record::Link {
                account,
                body: Value::Object(obj),
            })
        }
        "event" => match obj.get("event_id") {
            Some(Value::String(_)) => Ok(Record::Event(Value::Object(obj))),
            _ => Err("an event needs `event_id`".into()),
        },
        other => Err(format!("`type` `{other}` is not one of learner, link, event")),
    }
}

pub(super) fn parse_ndjson(bytes: &[u8]) -> (Vec<Line>, Vec<Rejected>) {
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        let number = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Object(obj)) => match record_of(obj) {
                Ok(record) => lines.push(Line { number, record }),
                Err(e) => bad.push(unreadable(number, e)),
            },
            Ok(_) => bad.push(unreadable(number, "is not a JSON object")),
            Err(e) => bad.push(unreadable(number, format!("is not JSON: {e}"))),
        }
    }
    (lines, bad)
}

/// The CSV columns, all optional but `type` (see `docs/import.md`).
pub(super) const CSV_COLUMNS: [&str; 15] = [
    "type",
    "local_account",
    "name",
    "document_kind",
    "document_number",
    "registered_at",
    "learner_id",
    "event_id",
    "kind",
    "course",
    "completed_at",
    "score",
    "hours",
    "target_event_id",
    "reason",
];

pub(super) fn parse_csv(bytes: &[u8]) -> anyhow::Result<(Vec<Line>, Vec<Rejected>)> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let headers = reader.headers().context("read the CSV header")?.clone();
    if let Some(h) = headers.iter().find(|h| !CSV_COLUMNS.contains(h)) {
        bail!("CSV column `{h}` is not one of {}", CSV_COLUMNS.join(", "));
    }
    if !headers.iter().any(|h| h == "type") {
        bail!("the CSV header has no `type` column");
    }
    let mut lines = Vec::new();
    let mut bad = Vec::new();
    for (i, row) in reader.records().enumerate() {
        // Line 1 is the header.
        let number = row
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(i + 2, |p| p.line() as usize);
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                bad.push(unreadable(number, format!("is not a CSV row: {e}")));
                continue;
            }
        };
        let cell = |name: &str| -> Option<String> {
            headers
                .iter()
                .position(|h| h == name)
                .and_then(|i| row.get(i))
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let mut obj = Map::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                obj.insert(k.to_owned(), Value::String(v));
            }
        };
        let kind = cell("type");
        put("type", kind.clone());
        match kind.as_deref() {
            Some("learner") => {
                put("name", cell("name"));
                put("local_account", cell("local_account"));
                put("registered_at", cell("registered_at"));
                obj.insert(
                    "document".into(),
                    json!({"kind": cell("document_kind"), "number": cell("document_number")}),
                );
            }
            Some("link") => {
                put("local_account", cell("local_account"));
                put("learner_id", cell("learner_id"));
                put("registered_at", cell("registered_at"));
            }
            Some("event") => {
                for k in [
                    "event_id",
                    "kind",
                    "course",
                    "completed_at",
                    "target_event_id",
                    "reason",
                ] {
                    put(k, cell(k));
                }
                // Amounts stay strings: the API takes exact decimals as strings.
                put("score", cell("score"));
                put("hours", cell("hours"));
                match (cell("local_account"), cell("learner_id")) {
                    (Some(a), _) => {
                        obj.insert("learner".into(), json!({"local_account": a}));
                    }
                    (None, Some(id)) => {
                        obj.insert("learner".into(), json!({"id": id}));
                    }
                    (None, None) => {}
                }
            }
            _ => {}
        }
        match record_of(obj) {
            Ok(record) => lines.push(Line { number, record }),
            Err(e) => bad.push(unreadable(number, e)),
        }
    }
    Ok((lines, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_and_csv_give_the_same_records() {
        let nd = br#"{"type":"learner","name":"N","document":{"kind":"resident_id","number":"X"},"local_account":"u1","registered_at":"2019-05-01T00:00:00Z"}
{"type":"event","event_id":"e1","kind":"completion","course":"C1","learner":{"local_account":"u1"},"completed_at":"2019-06-01T00:00:00Z","hours":"10"}
not json
"#;
        let csv = b"type,local_account,name,document_kind,document_number,registered_at,event_id,kind,course,completed_at,hours
learner,u1,N,resident_id,X,2019-05-01T00:00:00Z,,,,,
event,u1,,,,,e1,completion,C1,2019-06-01T00:00:00Z,10
";
        let (a, bad) = parse_ndjson(nd);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 3);
        let (b, bad) = parse_csv(csv).expect("csv");
        assert!(bad.is_empty());
        let body = |r: &Record| match r {
            Record::Learner(v) | Record::Event(v) => v.clone(),
            Record::Link { body, .. } => body.clone(),
        };
        assert_eq!(a.len(), 2);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(body(&x.record), body(&y.record));
        }
        assert_eq!(b[1].number, 3);
    }
}

//! Reading the input: NDJSON (one object a line, with a `type`) or CSV (the
//! fixed columns of `docs/import.md`), both into the same records; a line that
//! cannot be read becomes a rejection of its own, never a stop.

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};

use super::{Line, Record, Rejected};

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
    let headers = csv_headers(&mut reader)?;
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
        let row = CsvRow {
            headers: &headers,
            row: &row,
        };
        match record_of(row.object()) {
            Ok(record) => lines.push(Line { number, record }),
            Err(e) => bad.push(unreadable(number, e)),
        }
    }
    Ok((lines, bad))
}

/// The CSV header, refused unless every column is known and `type` is one of them.
fn csv_headers(reader: &mut csv::Reader<&[u8]>) -> anyhow::Result<csv::StringRecord> {
    let headers = reader.headers().context("read the CSV header")?.clone();
    if let Some(h) = headers.iter().find(|h| !CSV_COLUMNS.contains(h)) {
        bail!("CSV column `{h}` is not one of {}", CSV_COLUMNS.join(", "));
    }
    if !headers.iter().any(|h| h == "type") {
        bail!("the CSV header has no `type` column");
    }
    Ok(headers)
}

/// One CSV row with the header, to read its cells by column name.
struct CsvRow<'a> {
    headers: &'a csv::StringRecord,
    row: &'a csv::StringRecord,
}

impl CsvRow<'_> {
    /// The cell of the column `name`; `None` when there is no such column or the cell is empty.
    fn cell(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .position(|h| h == name)
            .and_then(|i| self.row.get(i))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// The JSON object of the row: its `type` and the columns that type uses.
    fn object(&self) -> Map<String, Value> {
        let mut obj = Map::new();
        let kind = self.cell("type");
        put(&mut obj, "type", kind.clone());
        match kind.as_deref() {
            Some("learner") => self.learner_fields(&mut obj),
            Some("link") => self.link_fields(&mut obj),
            Some("event") => self.event_fields(&mut obj),
            _ => {}
        }
        obj
    }

    /// Adds the fields of a learner: name, account, registration date and document.
    fn learner_fields(&self, obj: &mut Map<String, Value>) {
        put(obj, "name", self.cell("name"));
        put(obj, "local_account", self.cell("local_account"));
        put(obj, "registered_at", self.cell("registered_at"));
        obj.insert(
            "document".into(),
            json!({"kind": self.cell("document_kind"), "number": self.cell("document_number")}),
        );
    }

    /// Adds the fields of a link: the account, the learner and the registration date.
    fn link_fields(&self, obj: &mut Map<String, Value>) {
        put(obj, "local_account", self.cell("local_account"));
        put(obj, "learner_id", self.cell("learner_id"));
        put(obj, "registered_at", self.cell("registered_at"));
    }

    /// Adds the fields of an event, and its learner by account or by id.
    fn event_fields(&self, obj: &mut Map<String, Value>) {
        for k in [
            "event_id",
            "kind",
            "course",
            "completed_at",
            "target_event_id",
            "reason",
        ] {
            put(obj, k, self.cell(k));
        }
        // Amounts stay strings: the API takes exact decimals as strings.
        put(obj, "score", self.cell("score"));
        put(obj, "hours", self.cell("hours"));
        match (self.cell("local_account"), self.cell("learner_id")) {
            (Some(a), _) => {
                obj.insert("learner".into(), json!({"local_account": a}));
            }
            (None, Some(id)) => {
                obj.insert("learner".into(), json!({"id": id}));
            }
            (None, None) => {}
        }
    }
}

/// Sets `k` to the string `v` when there is one.
fn put(obj: &mut Map<String, Value>, k: &str, v: Option<String>) {
    if let Some(v) = v {
        obj.insert(k.to_owned(), Value::String(v));
    }
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

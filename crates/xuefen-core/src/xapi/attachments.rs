//! Statements with their attachments in one `multipart/mixed` request
//! (xAPI 1.0.3 Data 2.4.11, Communication 1.5.2), and signed statements
//! (Data 2.6).
//!
//! The first part is the statement (or the array of them) as
//! `application/json`; every other part is one attachment's bytes, named by
//! its `X-Experience-API-Hash` header (the hex SHA-256 of the bytes). Every
//! attachment of the statements without a `fileUrl` must have its part, and
//! every part must belong to an attachment and hash to its name.
//!
//! A signed statement has an attachment of usageType
//! [`SIGNATURE_USAGE`]: its part is a JWS (RFC 7515, compact
//! serialization) whose header names RS256, RS384 or RS512 and whose
//! payload is the statement as it was before the signature was attached.
//! The LRS checks that form and that payload; it cannot check the RSA
//! signature itself without the signer's key, which a statement need not
//! carry (the specification leaves that to the receiving system).

use base64::Engine as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::StatementError;

/// The usageType of a statement signature.
pub const SIGNATURE_USAGE: &str = "http://adlnet.gov/expapi/attachments/signature";

/// One attachment part: its hash header, media type and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub sha2: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

fn err(rule: &'static str, field: &str, detail: impl Into<String>) -> StatementError {
    StatementError::new(rule, field, detail)
}

/// The `boundary` parameter of a `multipart/mixed` media type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut it = content_type.split(';');
    let media = it.next()?.trim();
    if !media.eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    it.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
    .filter(|b| !b.is_empty())
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

/// One part of a multipart body: its headers (lower-case name, value) and
/// its content.
pub type RawPart = (Vec<(String, String)>, Vec<u8>);

/// The parts of a multipart body.
pub fn split(body: &[u8], boundary: &str) -> Result<Vec<RawPart>, StatementError> {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let malformed = |detail: &str| err("multipart_malformed", "Content-Type", detail.to_owned());
    let mut at = find(body, d, 0).ok_or_else(|| malformed("the body has no part with the declared boundary"))?;
    let mut parts = Vec::new();
    loop {
        let after = at + d.len();
        if body[after..].starts_with(b"--") {
            break;
        }
        let start = if body[after..].starts_with(b"\r\n") {
            after + 2
        } else if body[after..].starts_with(b"\n") {
            after + 1
        } else {
            return Err(malformed("a boundary line does not end with CRLF"));
        };
        let next = find(body, d, start).ok_or_else(|| malformed("the last part is not closed by the boundary"))?;
        let mut part = &body[start..next];
        if part.ends_with(b"\r\n") {
            part = &part[..part.len() - 2];
        } else if part.ends_with(b"\n") {
            part = &part[..part.len() - 1];
        }
        let (head, content) = match find(part, b"\r\n\r\n", 0) {
            Some(i) => (&part[..i], &part[i + 4..]),
            None if part.starts_with(b"\r\n") => (&part[..0], &part[2..]),
            None => return Err(malformed("a part has no blank line after its headers")),
        };
        let head = std::str::from_utf8(head).map_err(|_| malformed("part headers are not UTF-8"))?;
        let headers = head
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.split_once(':')
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .ok_or_else(|| malformed("a part header is not `Name: value`"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        parts.push((headers, content.to_vec()));
        at = next;
    }
    Ok(parts)
}

/// The statements' JSON and the attachment parts of a `multipart/mixed`
/// request, each part's hash checked.
pub fn parse(body: &[u8], boundary: &str) -> Result<(Vec<u8>, Vec<Part>), StatementError> {
    let mut parts = split(body, boundary)?.into_iter();
    let (headers, json) = parts
        .next()
        .ok_or_else(|| err("multipart_malformed", "Content-Type", "the body has no part"))?;
    let header = |hs: &[(String, String)], name: &str| hs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    if !header(&headers, "content-type").is_some_and(|t| super::documents::is_json_type(&t)) {
        return Err(err(
            "multipart_statement_not_json",
            "Content-Type",
            "the first part must be the statements as application/json",
        ));
    }
    let mut out = Vec::new();
    for (headers, content) in parts {
        let sha2 = header(&headers, "x-experience-api-hash")
            .ok_or_else(|| {
                err(
                    "attachment_hash_missing",
                    "X-Experience-API-Hash",
                    "every attachment part names its SHA-256",
                )
            })?
            .to_ascii_lowercase();
        if hex::encode(Sha256::digest(&content)) != sha2 {
            return Err(err(
                "attachment_hash_mismatch",
                "X-Experience-API-Hash",
                format!("the part named {sha2} does not hash to its name"),
            ));
        }
        if let Some(enc) = header(&headers, "content-transfer-encoding")
            && !enc.eq_ignore_ascii_case("binary")
        {
            return Err(err(
                "attachment_encoding_invalid",
                "Content-Transfer-Encoding",
                "attachment parts are sent binary",
            ));
        }
        out.push(Part {
            sha2,
            content_type: header(&headers, "content-type").unwrap_or_else(|| "application/octet-stream".into()),
            body: content,
        });
    }
    Ok((json, out))
}

/// Checks that the parts and the statements' attachments match, and each
/// signature; `statements` are the received statements (validated).
pub fn check(statements: &[Value], parts: &[Part]) -> Result<(), StatementError> {
    let mut wanted: Vec<&str> = Vec::new();
    for (i, s) in statements.iter().enumerate() {
        let field = |f: &str| {
            if statements.len() > 1 {
                format!("{i}/{f}")
            } else {
                f.to_owned()
            }
        };
        let Some(Value::Array(attachments)) = s.get("attachments") else {
            continue;
        };
        for (j, a) in attachments.iter().enumerate() {
            let sha2 = a.get("sha2").and_then(Value::as_str).unwrap_or_default();
            let usage = a.get("usageType").and_then(Value::as_str);
            let part = parts.iter().find(|p| p.sha2.eq_ignore_ascii_case(sha2));
            if usage == Some(SIGNATURE_USAGE) {
                if a.get("contentType").and_then(Value::as_str) != Some("application/octet-stream") {
                    return Err(err(
                        "signature_invalid",
                        &field(&format!("attachments/{j}/contentType")),
                        "a signature attachment is application/octet-stream",
                    ));
                }
                let part = part.ok_or_else(|| {
                    err(
                        "signature_invalid",
                        &field(&format!("attachments/{j}")),
                        "the signature attachment has no part",
                    )
                })?;
                check_signature(s, &part.body)
                    .map_err(|d| err("signature_invalid", &field(&format!("attachments/{j}")), d))?;
            }
            if a.get("fileUrl").is_none() && part.is_none() {
                return Err(err(
                    "attachment_part_missing",
                    &field(&format!("attachments/{j}/sha2")),
                    format!("no part carries the attachment {sha2} (and it has no fileUrl)"),
                ));
            }
            wanted.push(sha2);
        }
    }
    if let Some(p) = parts
        .iter()
        .find(|p| !wanted.iter().any(|w| w.eq_ignore_ascii_case(&p.sha2)))
    {
        return Err(err(
            "attachment_part_unreferenced",
            "X-Experience-API-Hash",
            format!("the part {} belongs to no attachment of the statements", p.sha2),
        ));
    }
    Ok(())
}

/// The statement's members that a signature covers: everything but its
/// attachments and what the LRS sets.
fn signed_view(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        for k in ["attachments", "authority", "stored", "version"] {
            m.remove(k);
        }
    }
    if let Some(result) = v.get_mut("result") {
        hundredths(result);
    }
    if let Some(inner) = v.get_mut("object").and_then(|o| o.get_mut("result")) {
        hundredths(inner);
    }
    v
}

/// Durations compare to the hundredth of a second (xAPI 2.0.0 §4.2.7):
/// `result.duration`'s seconds cut after two decimals.
fn hundredths(result: &mut Value) {
    let Some(Value::String(d)) = result.get_mut("duration") else {
        return;
    };
    if let Some(dot) = d.rfind('.')
        && d.ends_with('S')
        && d.len() - dot > 4
        && d[dot + 1..d.len() - 1].bytes().all(|b| b.is_ascii_digit())
    {
        *d = format!("{}S", &d[..dot + 3]);
    }
}

/// A JWS in compact form whose header names RS256, RS384 or RS512 and
/// whose payload is the statement.
fn check_signature(statement: &Value, jws: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(jws).map_err(|_| "the signature is not a JWS (not text)".to_owned())?;
    let segments: Vec<&str> = text.trim().split('.').collect();
    let [header, payload, signature] = segments.as_slice() else {
        return Err("the signature is not a JWS in compact serialization (three segments)".into());
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decode = |s: &str, what: &str| {
        b64.decode(s.trim_end_matches('='))
            .map_err(|_| format!("the JWS {what} is not base64url"))
    };
    let header: Value =
        serde_json::from_slice(&decode(header, "header")?).map_err(|_| "the JWS header is not JSON".to_owned())?;
    match header.get("alg").and_then(Value::as_str) {
        Some("RS256" | "RS384" | "RS512") => {}
        other => {
            return Err(format!(
                "the JWS algorithm must be RS256, RS384 or RS512, not {other:?}"
            ));
        }
    }
    if decode(signature, "signature")?.is_empty() {
        return Err("the JWS has no signature".into());
    }
    let payload: Value = serde_json::from_slice(&decode(payload, "payload")?)
        .map_err(|_| "the JWS payload is not a JSON serialization of the statement".to_owned())?;
    let mut signed = signed_view(&payload);
    let mut received = signed_view(statement);
    // A statement signed before the LRS gave it an id carries none.
    if let (Value::Object(s), Value::Object(r)) = (&mut signed, &mut received)
        && !s.contains_key("id")
    {
        r.remove("id");
    }
    if signed != received {
        return Err("the JWS payload is not the statement that carries it".into());
    }
    Ok(())
}

/// A `multipart/mixed` answer: the JSON, then each attachment part.
pub fn render(json: &str, parts: &[Part], boundary: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/json\r\n\r\n").as_bytes());
    out.extend_from_slice(json.as_bytes());
    for p in parts {
        out.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Transfer-Encoding: binary\r\nX-Experience-API-Hash: {}\r\n\r\n",
                p.content_type, p.sha2
            )
            .as_bytes(),
        );
        out.extend_from_slice(&p.body);
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> String {
        hex::encode(Sha256::digest(b))
    }

    fn jws(alg: &str, payload: &Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.{}",
            b64.encode(serde_json::json!({"alg": alg}).to_string()),
            b64.encode(payload.to_string()),
            b64.encode(b"sig")
        )
    }

    fn body(boundary: &str, json: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = format!("\r\n--{boundary}\r\nContent-Type:application/json\r\n\r\n{json}").into_bytes();
        for (hash, content) in parts {
            b.extend_from_slice(
                format!("\r\n--{boundary}\r\nContent-Type:text/plain\r\nContent-Transfer-Encoding:binary\r\nX-Experience-API-Hash:{hash}\r\n\r\n").as_bytes(),
            );
            b.extend_from_slice(content);
        }
        b.extend_from_slice(format!("\r\n--{boundary}--").as_bytes());
        b
    }

    #[test]
    fn multipart_attachments_are_matched_by_their_sha2() {
        assert_eq!(boundary("multipart/mixed; boundary=\"abc\"").as_deref(), Some("abc"));
        assert_eq!(boundary("multipart/form-data; boundary=abc"), None);
        let text = b"here is a simple attachment";
        let s = serde_json::json!({"attachments": [{"usageType": "http://x.example/u", "contentType": "text/plain",
            "length": text.len(), "sha2": sha(text), "display": {"en-US": "a"}}]});
        let raw = body("b1", &s.to_string(), &[(&sha(text), text)]);
        let (json, parts) = parse(&raw, "b1").expect("parses");
        assert_eq!(serde_json::from_slice::<Value>(&json).expect("json"), s);
        assert_eq!(parts[0].body, text);
        assert_eq!(check(std::slice::from_ref(&s), &parts), Ok(()));
        assert_eq!(
            check(std::slice::from_ref(&s), &[]).map_err(|e| e.rule),
            Err("attachment_part_missing")
        );
        let stray = Part {
            sha2: sha(b"x"),
            content_type: "text/plain".into(),
            body: b"x".to_vec(),
        };
        assert_eq!(
            check(std::slice::from_ref(&s), &[parts[0].clone(), stray]).map_err(|e| e.rule),
            Err("attachment_part_unreferenced")
        );
        let lying = body("b1", &s.to_string(), &[(&sha(b"other"), text)]);
        assert_eq!(parse(&lying, "b1").map_err(|e| e.rule), Err("attachment_hash_mismatch"));
    }

    #[test]
    fn signed_statements_carry_an_rs_jws_of_themselves() {
        let statement = serde_json::json!({"id": "a", "actor": {"mbox": "mailto:a@example.com"}, "verb": {"id": "http://v.example/1"},
            "object": {"id": "http://x.example/a"}});
        let with = |sig: &str, content_type: &str| {
            let mut s = statement.clone();
            s["attachments"] = serde_json::json!([{"usageType": SIGNATURE_USAGE, "contentType": content_type,
                "length": sig.len(), "sha2": sha(sig.as_bytes()), "display": {"en-US": "sig"}}]);
            let part = Part {
                sha2: sha(sig.as_bytes()),
                content_type: content_type.into(),
                body: sig.as_bytes().to_vec(),
            };
            check(&[s], &[part]).map_err(|e| e.rule)
        };
        for alg in ["RS256", "RS384", "RS512"] {
            assert_eq!(with(&jws(alg, &statement), "application/octet-stream"), Ok(()), "{alg}");
        }
        assert_eq!(
            with(&jws("HS256", &statement), "application/octet-stream"),
            Err("signature_invalid")
        );
        assert_eq!(
            with(&jws("RS256", &statement), "text/plain; charset=ascii"),
            Err("signature_invalid")
        );
        assert_eq!(with("not.a-jws", "application/octet-stream"), Err("signature_invalid"));
        let mut precise = statement.clone();
        precise["result"] = serde_json::json!({"duration": "P1DT12H36M0.12S"});
        let mut signed = precise.clone();
        signed["result"]["duration"] = "P1DT12H36M0.1237S".into();
        let sig = jws("RS256", &signed);
        precise["attachments"] = serde_json::json!([{"usageType": SIGNATURE_USAGE, "contentType": "application/octet-stream",
            "length": sig.len(), "sha2": sha(sig.as_bytes()), "display": {"en-US": "sig"}}]);
        let part = Part {
            sha2: sha(sig.as_bytes()),
            content_type: "application/octet-stream".into(),
            body: sig.into_bytes(),
        };
        assert_eq!(check(&[precise], &[part]), Ok(()), "durations compare to the hundredth");
        let mut other = statement.clone();
        other["verb"]["id"] = "http://v.example/2".into();
        assert_eq!(
            with(&jws("RS256", &other), "application/octet-stream"),
            Err("signature_invalid")
        );
    }
}

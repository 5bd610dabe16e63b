//! The JSON Canonicalization Scheme (RFC 8785) over `serde_json` values, and
//! the `eddsa-jcs-2022` Data Integrity cryptosuite (W3C VC Data Integrity
//! EdDSA Cryptosuites v1.0, section 3.3.x) that hashes with it.
//!
//! JCS: object members sorted by the UTF-16 code units of their names,
//! no whitespace, strings escaped with the short forms (`\b \t \n \f \r
//! \" \\`) and `\u00xx` (lowercase hex) for the other control characters,
//! nothing else escaped; numbers as ECMAScript prints them. The record holds
//! only integers; a number ECMAScript would print with an exponent is
//! refused rather than guessed.

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Why a value cannot be canonicalised.
#[derive(Debug, thiserror::Error)]
#[error("JCS: the number {0} is not supported (only integers and plain decimals)")]
pub struct JcsError(String);

/// The RFC 8785 canonical form of `value`.
pub fn canonicalize(value: &Value) -> Result<String, JcsError> {
    let mut out = String::new();
    write_value(&mut out, value)?;
    Ok(out)
}

fn write_value(out: &mut String, value: &Value) -> Result<(), JcsError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map)?,
    }
    Ok(())
}

fn write_object(out: &mut String, map: &Map<String, Value>) -> Result<(), JcsError> {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.push('{');
    for (i, (name, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, name);
        out.push(':');
        write_value(out, value)?;
    }
    out.push('}');
    Ok(())
}

fn write_number(out: &mut String, n: &serde_json::Number) -> Result<(), JcsError> {
    // Integers within ±2^53 print exactly as ECMAScript prints them.
    const SAFE: u64 = 1 << 53;
    if let Some(u) = n.as_u64() {
        if u <= SAFE {
            let _ = write!(out, "{u}");
            return Ok(());
        }
    } else if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= SAFE {
            let _ = write!(out, "{i}");
            return Ok(());
        }
    } else if let Some(f) = n.as_f64() {
        // A float with an integral value prints without a fraction in
        // ECMAScript; ryu's shortest form is ECMAScript's for plain decimals.
        if f.is_finite() && f.fract() == 0.0 && f.abs() <= SAFE as f64 {
            let _ = write!(out, "{}", f as i64);
            return Ok(());
        }
        let s = n.to_string();
        if f.is_finite() && !s.contains(['e', 'E']) && f.abs() >= 1e-6 {
            out.push_str(&s);
            return Ok(());
        }
    }
    Err(JcsError(n.to_string()))
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::canonicalize;
    use serde_json::json;

    #[test]
    fn rfc8785_shapes() {
        let v = json!({"b": [1, "x\u{1}\n\"é€"], "a": {"z": null, "A": true}, "\u{20ac}": 0, "\u{1f600}": 1, "\u{ff61}": 2});
        // U+1F600 is the surrogate pair D83D DE00, which sorts before U+FF61.
        assert_eq!(
            canonicalize(&v).unwrap(),
            "{\"a\":{\"A\":true,\"z\":null},\"b\":[1,\"x\\u0001\\n\\\"é€\"],\"€\":0,\"\u{1f600}\":1,\"\u{ff61}\":2}"
        );
        assert!(canonicalize(&json!(1e300)).is_err());
        assert_eq!(canonicalize(&json!(2.5)).unwrap(), "2.5");
        assert_eq!(canonicalize(&json!(-0.0)).unwrap(), "0");
    }
}

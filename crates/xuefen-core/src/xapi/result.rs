//! The result of a statement: score, success, completion, duration.

use super::R;
use super::StatementError;
use super::check::extensions;
use super::check::join;
use super::check::known_keys;
use super::check::object;
use super::check::string;
use rust_decimal::Decimal;
use serde_json::{Map, Value};

pub(super) fn result(v: &Value) -> R<Option<Decimal>> {
    let m = object(v, "result")?;
    known_keys(
        m,
        &["score", "success", "completion", "response", "duration", "extensions"],
        "result",
    )?;
    for k in ["success", "completion"] {
        if let Some(x) = m.get(k)
            && !x.is_boolean()
        {
            return Err(StatementError::new(
                "not_a_boolean",
                join("result", k),
                "must be true or false",
            ));
        }
    }
    if let Some(x) = m.get("response") {
        string(x, "result/response")?;
    }
    if let Some(x) = m.get("duration") {
        let s = string(x, "result/duration")?;
        if !is_duration(s) {
            return Err(StatementError::new(
                "duration_invalid",
                "result/duration",
                format!("`{s}` is not an ISO 8601 duration such as PT1H30M"),
            ));
        }
    }
    if let Some(x) = m.get("extensions") {
        extensions(x, "result/extensions")?;
    }
    match m.get("score") {
        Some(s) => score(s),
        None => Ok(None),
    }
}

pub(super) fn number(m: &Map<String, Value>, k: &str) -> R<Option<Decimal>> {
    let Some(v) = m.get(k) else { return Ok(None) };
    let f = join("result/score", k);
    let n = v
        .as_number()
        .ok_or_else(|| StatementError::new("not_a_number", f.clone(), "must be a number"))?;
    let text = n.to_string();
    text.parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(&text))
        .map(Some)
        .map_err(|_| StatementError::new("not_a_number", f, format!("{text} is out of range")))
}

pub(super) fn score(v: &Value) -> R<Option<Decimal>> {
    let m = object(v, "result/score")?;
    known_keys(m, &["scaled", "raw", "min", "max"], "result/score")?;
    let (scaled, raw, min, max) = (
        number(m, "scaled")?,
        number(m, "raw")?,
        number(m, "min")?,
        number(m, "max")?,
    );
    let bad = |k: &str, d: &str| {
        Err(StatementError::new(
            "score_invalid",
            join("result/score", k),
            d.to_owned(),
        ))
    };
    if let Some(s) = scaled
        && !(-Decimal::ONE..=Decimal::ONE).contains(&s)
    {
        return bad("scaled", "must lie between -1 and 1");
    }
    if let (Some(lo), Some(hi)) = (min, max)
        && lo >= hi
    {
        return bad("max", "must be greater than min");
    }
    if let Some(r) = raw {
        if min.is_some_and(|lo| r < lo) {
            return bad("raw", "must not be less than min");
        }
        if max.is_some_and(|hi| r > hi) {
            return bad("raw", "must not be greater than max");
        }
    }
    let percent = match (scaled, raw, min, max) {
        (Some(s), ..) => Some(s.max(Decimal::ZERO) * Decimal::ONE_HUNDRED),
        (None, Some(r), Some(lo), Some(hi)) => (r - lo)
            .checked_mul(Decimal::ONE_HUNDRED)
            .and_then(|x| x.checked_div(hi - lo)),
        _ => None,
    };
    Ok(percent.map(|p| p.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::ToZero)))
}

/// ISO 8601 durations as xAPI uses them: `P[nY][nM][nD][T[nH][nM][n[.n]S]]` or `PnW`.
pub(super) fn is_duration(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('P') else { return false };
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    fn parts(text: &str, units: &[u8], fraction_last: bool) -> Option<usize> {
        let mut count = 0;
        let mut number = String::new();
        let mut next_unit = 0;
        for c in text.chars() {
            if c.is_ascii_digit() || (c == '.' && fraction_last) {
                number.push(c);
                continue;
            }
            let at = units[next_unit..].iter().position(|u| *u as char == c)? + next_unit;
            if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
                return None;
            }
            if number.contains('.') && (at != units.len() - 1 || number.matches('.').count() > 1) {
                return None;
            }
            number.clear();
            next_unit = at + 1;
            count += 1;
        }
        number.is_empty().then_some(count)
    }
    // The week form stands alone (`PnW`): ISO 8601 has no `P4W1D` nor `P1WT1H`.
    if date.contains('W')
        && (time.is_some() || !date.ends_with('W') || !date[..date.len() - 1].bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let Some(d) = parts(date, b"YMWD", false) else {
        return false;
    };
    match time {
        None => d > 0,
        Some(t) => parts(t, b"HMS", true).is_some_and(|n| n > 0),
    }
}

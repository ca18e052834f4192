//! How long a model stays loaded after a request: Ollama's `keep_alive` forms.

use std::time::Duration;

/// How long a model stays loaded after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    For(Duration),
    Forever,
}

impl KeepAlive {
    /// Ollama's forms: a number of seconds, or a duration string like `"5m"`, `"1h30m"`,
    /// `"0"`, `"-1"`; negative keeps the model loaded.
    pub fn parse(value: &serde_json::Value) -> Result<Self, String> {
        let seconds = match value {
            serde_json::Value::Number(n) => n.as_f64().ok_or("keep_alive is not a number")?,
            serde_json::Value::String(text) => parse_duration(text)?,
            other => return Err(format!("keep_alive must be a duration like \"5m\" or seconds, got {other}")),
        };
        if seconds < 0.0 {
            Ok(Self::Forever)
        } else {
            Ok(Self::For(Duration::from_secs_f64(seconds.min(1e9))))
        }
    }
}

/// `"1h2m3.5s"`, `"300ms"`, `"5m"`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<f64, String> {
    let invalid = || format!("keep_alive: '{text}' is not a duration like \"5m\" or \"1h30m\"");
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Ok(seconds);
    }
    let (sign, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text),
    };
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(invalid)?;
        let number: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(invalid()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Ok(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keep_alive_takes_ollamas_forms() {
        let secs = |v| match KeepAlive::parse(&v).unwrap() {
            KeepAlive::For(d) => d.as_secs_f64(),
            KeepAlive::Forever => -1.0,
        };
        assert_eq!(secs(json!("5m")), 300.0);
        assert_eq!(secs(json!("1h30m")), 5400.0);
        assert_eq!(secs(json!("1.5s")), 1.5);
        assert_eq!(secs(json!("300ms")), 0.3);
        assert_eq!(secs(json!(0)), 0.0);
        assert_eq!(secs(json!("0")), 0.0);
        assert_eq!(secs(json!(30)), 30.0);
        assert_eq!(secs(json!(-1)), -1.0);
        assert_eq!(secs(json!("-1m")), -1.0);
        assert!(KeepAlive::parse(&json!("soon")).unwrap_err().contains("not a duration"));
        assert!(KeepAlive::parse(&json!("5x")).is_err());
        assert!(KeepAlive::parse(&json!(true)).is_err());
    }
}

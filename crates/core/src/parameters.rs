//! Ollama's sampling parameter names (`temperature`, `top_k`, `num_predict`, `stop`, ...)
//! mapped onto `SamplingParams`, in one place for every way a parameter arrives: typed at the
//! chat's `/set parameter`, or stored with a model by its Modelfile.

use crate::SamplingParams;

#[derive(Debug, PartialEq, Eq)]
pub enum ParameterError {
    /// Not a sampling parameter (it may be an engine setting such as `num_ctx`).
    Unknown,
    Invalid(String),
}

/// Sets `name` from its text value(s); several values only for `stop`. The result is not yet
/// validated as a whole (`SamplingParams::validate`).
pub fn apply(params: &mut SamplingParams, name: &str, values: &[String]) -> Result<(), ParameterError> {
    let value = values.first().ok_or_else(|| ParameterError::Invalid(format!("{name} needs a value")))?;
    fn num<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ParameterError> {
        value.parse().map_err(|_| ParameterError::Invalid(format!("'{value}' is not a valid value for {name}")))
    }
    match name {
        "seed" => params.seed = Some(num(name, value)?),
        "num_predict" => {
            let n: i64 = num(name, value)?;
            params.max_tokens = if n < 0 {
                None
            } else {
                Some(u32::try_from(n).map_err(|_| ParameterError::Invalid(format!("num_predict {n} is too large")))?)
            };
        }
        "temperature" => params.temperature = num(name, value)?,
        "top_k" => params.top_k = num(name, value)?,
        "top_p" => params.top_p = num(name, value)?,
        "min_p" => params.min_p = num(name, value)?,
        "repeat_penalty" => params.repeat_penalty = num(name, value)?,
        "repeat_last_n" => params.repeat_last_n = num(name, value)?,
        "stop" => params.stop = values.to_vec(),
        _ => return Err(ParameterError::Unknown),
    }
    Ok(())
}

/// Sampling parameters a model was stored with (`PARAMETER temperature 0.2`, ...) over the
/// defaults. Keys that are not sampling parameters (engine settings such as `num_ctx`) are
/// skipped; the messages of values that do not parse come back for the caller to report.
pub fn stored_sampling(stored: &serde_json::Map<String, serde_json::Value>) -> (SamplingParams, Vec<String>) {
    let mut params = SamplingParams::default();
    let mut ignored = Vec::new();
    for (name, value) in stored {
        if let Err(ParameterError::Invalid(message)) = apply(&mut params, name, &texts(value)) {
            ignored.push(message);
        }
    }
    (params, ignored)
}

/// A stored whole-number setting (`num_ctx`, `num_thread`, `num_batch`), if it is one.
pub fn stored_u32(stored: &serde_json::Map<String, serde_json::Value>, name: &str) -> Option<u32> {
    stored.get(name).and_then(serde_json::Value::as_u64).and_then(|n| u32::try_from(n).ok())
}

/// The text form of a stored JSON parameter value; a list gives one text per item.
pub fn texts(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::Array(items) => items.iter().flat_map(texts).collect(),
        serde_json::Value::String(s) => vec![s.clone()],
        other => vec![other.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_name_lands_in_its_field() {
        let mut p = SamplingParams::default();
        for (name, value) in [
            ("seed", "7"),
            ("num_predict", "16"),
            ("temperature", "0.25"),
            ("top_k", "5"),
            ("top_p", "0.5"),
            ("min_p", "0.05"),
            ("repeat_penalty", "1.3"),
            ("repeat_last_n", "32"),
        ] {
            apply(&mut p, name, &strings(&[value])).unwrap();
        }
        apply(&mut p, "stop", &strings(&["END", "User:"])).unwrap();
        assert_eq!(p.seed, Some(7));
        assert_eq!(p.max_tokens, Some(16));
        assert_eq!((p.temperature, p.top_k, p.top_p, p.min_p), (0.25, 5, 0.5, 0.05));
        assert_eq!((p.repeat_penalty, p.repeat_last_n), (1.3, 32));
        assert_eq!(p.stop, ["END", "User:"]);
        apply(&mut p, "num_predict", &strings(&["-1"])).unwrap();
        assert_eq!(p.max_tokens, None);
    }

    #[test]
    fn unknown_and_invalid_are_told_apart() {
        let mut p = SamplingParams::default();
        assert_eq!(apply(&mut p, "num_ctx", &strings(&["2048"])), Err(ParameterError::Unknown));
        assert!(matches!(apply(&mut p, "top_k", &strings(&["lots"])), Err(ParameterError::Invalid(_))));
        assert!(matches!(apply(&mut p, "seed", &[]), Err(ParameterError::Invalid(_))));
        assert_eq!(p, SamplingParams::default());
    }

    #[test]
    fn stored_json_values_become_texts() {
        assert_eq!(texts(&serde_json::json!(0.2)), ["0.2"]);
        assert_eq!(texts(&serde_json::json!(24)), ["24"]);
        assert_eq!(texts(&serde_json::json!(["a", "b"])), ["a", "b"]);
    }
}

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
        "seed" => {
            // Ollama's -1 (any negative) asks for a random seed.
            let n: i64 = num(name, value)?;
            params.seed = if n < 0 {
                None
            } else {
                Some(u32::try_from(n).map_err(|_| ParameterError::Invalid(format!("seed {n} is too large")))?)
            };
        }
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
fn stored_sampling(stored: &serde_json::Map<String, serde_json::Value>) -> (SamplingParams, Vec<String>) {
    let mut params = SamplingParams::default();
    let mut ignored = Vec::new();
    for (name, value) in stored {
        if let Err(ParameterError::Invalid(message)) = apply(&mut params, name, &texts(value)) {
            ignored.push(message);
        }
    }
    (params, ignored)
}

/// Engine settings a model is stored with, by Ollama's names. They take effect when the
/// model loads; their bounds are the engine's to check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredSettings {
    pub num_ctx: Option<u32>,
    pub num_batch: Option<u32>,
    pub num_thread: Option<u32>,
    /// hearth's: the KV cache's type, for keys and values (`f16`, `q8_0`, `q4_0`).
    pub kv_cache_type: Option<crate::KvType>,
    /// hearth's: flash attention (`auto`, `on`, `off`).
    pub flash_attn: Option<crate::FlashAttention>,
    /// hearth's: speculative decoding by prompt lookup.
    pub lookup: Option<bool>,
    /// hearth's: the most tokens drafted per step.
    pub draft_max: Option<u32>,
}

/// Settings that take effect when a model loads. Ollama's names that hearth does not use
/// (GPU placement, memory mapping) are accepted and have no effect.
pub const LOAD_SETTINGS: &[&str] = &[
    "num_ctx",
    "num_batch",
    "num_thread",
    "kv_cache_type",
    "flash_attn",
    "lookup",
    "draft_max",
    "num_gpu",
    "main_gpu",
    "use_mmap",
    "numa",
];

/// The engine settings in a model's stored parameters. A value that is not a whole number
/// from 0 to 2^32-1 is an error, not a setting silently left at its default.
fn stored_settings(stored: &serde_json::Map<String, serde_json::Value>) -> Result<StoredSettings, String> {
    let whole = |name: &str| -> Result<Option<u32>, String> {
        match stored.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| format!("{name} must be a whole number, got {value}")),
        }
    };
    fn named<T: std::str::FromStr<Err = String>>(
        stored: &serde_json::Map<String, serde_json::Value>,
        name: &str,
    ) -> Result<Option<T>, String> {
        match stored.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(text)) => text.parse().map(Some).map_err(|e| format!("{name}: {e}")),
            Some(value) => Err(format!("{name} must be a name, got {value}")),
        }
    }
    let switch = |name: &str| -> Result<Option<bool>, String> {
        match stored.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Bool(on)) => Ok(Some(*on)),
            Some(value) => Err(format!("{name} must be true or false, got {value}")),
        }
    };
    Ok(StoredSettings {
        num_ctx: whole("num_ctx")?,
        num_batch: whole("num_batch")?,
        num_thread: whole("num_thread")?,
        kv_cache_type: named(stored, "kv_cache_type")?,
        flash_attn: named(stored, "flash_attn")?,
        lookup: switch("lookup")?,
        draft_max: whole("draft_max")?,
    })
}

/// Checks parameters about to be stored with a model: every name known, every value of
/// its type and range, so a model never goes into the store with settings that fail
/// later.
pub fn check_stored(stored: &serde_json::Map<String, serde_json::Value>) -> Result<StoredSettings, String> {
    let mut params = SamplingParams::default();
    apply_all(&mut params, stored, Unknown::Refuse)?;
    params.validate()?;
    stored_settings(stored)
}

/// A model's stored parameters, read once when its spec is: the sampling defaults every
/// request starts from, the settings its engine loads with, and the values as stored (for
/// `show` and the Modelfile). The fields are private so the three never disagree.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredParameters {
    values: serde_json::Map<String, serde_json::Value>,
    sampling: SamplingParams,
    ignored: Vec<String>,
    /// A bad load setting fails the model's load with this message, not the reading of it.
    settings: Result<StoredSettings, String>,
}

impl StoredParameters {
    pub fn read(values: serde_json::Map<String, serde_json::Value>) -> Self {
        let (sampling, ignored) = stored_sampling(&values);
        let settings = stored_settings(&values);
        Self { values, sampling, ignored, settings }
    }

    /// The values as stored, by Ollama's names.
    pub fn values(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.values
    }

    /// The stored sampling parameters over the defaults, and the messages of stored values
    /// that did not parse and were skipped (for the caller to report).
    pub fn sampling(&self) -> (&SamplingParams, &[String]) {
        (&self.sampling, &self.ignored)
    }

    /// The engine settings stored with the model.
    pub fn settings(&self) -> Result<StoredSettings, String> {
        self.settings.clone()
    }
}

impl Default for StoredParameters {
    fn default() -> Self {
        Self::read(serde_json::Map::new())
    }
}

/// What [`apply_all`] does with a name that is neither a sampling parameter nor a load
/// setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// A request's options: Ollama ignores those it does not know, and so do we (the names
    /// come back for the caller to log).
    Ignore,
    /// Parameters about to be stored: a misspelt name is an error.
    Refuse,
}

/// Sets every sampling parameter in `values` (JSON, Ollama's names) on `params`; load
/// settings are left for the engine. Returns the names ignored. The result is not yet
/// validated as a whole.
pub fn apply_all<'a>(
    params: &mut SamplingParams,
    values: &'a serde_json::Map<String, serde_json::Value>,
    unknown: Unknown,
) -> Result<Vec<&'a str>, String> {
    let mut ignored = Vec::new();
    for (name, value) in values {
        if value.is_null() {
            continue;
        }
        if value.is_object() || (value.is_array() && name != "stop") {
            return Err(format!("{name} has the wrong type: {value}"));
        }
        match apply(params, name, &texts(value)) {
            Ok(()) => {}
            Err(ParameterError::Invalid(message)) => return Err(message),
            Err(ParameterError::Unknown) if LOAD_SETTINGS.contains(&name.as_str()) => {}
            // hearth's `draft` option: a request's draft model, read where the model is leased
            // (a stored model's is its Modelfile's DRAFT line, not a parameter).
            Err(ParameterError::Unknown) if unknown == Unknown::Ignore && name == "draft" => {}
            Err(ParameterError::Unknown) if unknown == Unknown::Ignore => ignored.push(name.as_str()),
            Err(ParameterError::Unknown) => return Err(format!("unknown parameter '{name}'")),
        }
    }
    Ok(ignored)
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
        apply(&mut p, "seed", &strings(&["-1"])).unwrap();
        assert_eq!(p.seed, None, "Ollama's -1 is a random seed");
        assert!(matches!(apply(&mut p, "seed", &strings(&["99999999999"])), Err(ParameterError::Invalid(_))));
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
    fn stored_parameters_are_checked_before_they_are_stored() {
        let map = |v: serde_json::Value| v.as_object().unwrap().clone();
        let settings = check_stored(&map(serde_json::json!({"num_ctx": 2048, "temperature": 0.2, "num_gpu": 0})));
        assert_eq!(settings.unwrap().num_ctx, Some(2048));
        for (bad, why) in [
            (serde_json::json!({"num_ctx": -1}), "whole number"),
            (serde_json::json!({"num_thread": 1e12}), "whole number"),
            (serde_json::json!({"num_batch": "lots"}), "whole number"),
            (serde_json::json!({"temperature": -2}), "temperature"),
            (serde_json::json!({"temprature": 1}), "unknown parameter 'temprature'"),
            (serde_json::json!({"top_k": {"a": 1}}), "wrong type"),
        ] {
            let err = check_stored(&map(bad.clone())).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn stored_json_values_become_texts() {
        assert_eq!(texts(&serde_json::json!(0.2)), ["0.2"]);
        assert_eq!(texts(&serde_json::json!(24)), ["24"]);
        assert_eq!(texts(&serde_json::json!(["a", "b"])), ["a", "b"]);
    }

    #[test]
    fn a_stored_model_s_parameters_are_read_once_into_sampling_and_settings() {
        let values = serde_json::json!({"temperature": 0.2, "top_k": "many", "num_ctx": 2048, "stop": ["a"]});
        let stored = StoredParameters::read(values.as_object().unwrap().clone());
        let (sampling, ignored) = stored.sampling();
        assert_eq!(
            (sampling.temperature, sampling.top_k, sampling.stop.as_slice()),
            (0.2, 40, ["a".to_string()].as_slice())
        );
        assert_eq!(ignored.len(), 1, "{ignored:?}");
        assert!(ignored[0].contains("top_k"), "{ignored:?}");
        assert_eq!(stored.settings().unwrap().num_ctx, Some(2048));
        assert_eq!(stored.values()["num_ctx"], 2048);
        let bad = StoredParameters::read(serde_json::json!({"num_batch": -4}).as_object().unwrap().clone());
        assert!(bad.settings().unwrap_err().contains("num_batch"));
    }
}

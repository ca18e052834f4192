//! Predicted speed and energy of a model on this machine, from its shape (what one token
//! reads and computes) and the machine's measured bandwidth and compute throughput, scaled
//! by how this machine's own benchmarks came out against the same prediction.

use crate::history::BenchRecord;
use hearth_engine::gguf::MetaValue;
use hearth_engine::GgufHeader;
use serde::Serialize;

/// Of the measured read bandwidth, the share generation reaches on large weights, and the
/// fixed cost of each layer of each token (threads meeting, the graph's small operations).
/// Fitted to `hearth bench` of the two test models on a 2-core x86 server; every machine's
/// own bench history replaces them through [`Calibration`].
const BANDWIDTH_SHARE: f64 = 0.6;
const SECONDS_PER_LAYER: f64 = 100e-6;
/// Of the measured multiply-add throughput, the share prompt processing reaches (quantized
/// weights are unpacked first; the attention and the norms cost it too).
const COMPUTE_SHARE: f64 = 0.4;

/// What one token costs a model, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ModelShape {
    pub layers: u64,
    /// Weight bytes read to generate one token: all of them but the token embeddings, of
    /// which one row is read, unless the output layer shares them (then all are read).
    pub bytes_per_token: u64,
    /// Multiply-adds ×2 of a prompt token: the weights but the embeddings and the output
    /// layer, which a prompt runs for its last token only.
    pub flops_per_token: f64,
}

impl ModelShape {
    pub fn of(header: &GgufHeader) -> Self {
        let tensor = |name: &str| header.tensors.iter().find(|t| t.name == name);
        let weight_bytes = header.file_size.saturating_sub(header.data_offset);
        let embeddings = tensor("token_embd.weight");
        let output = tensor("output.weight");
        let bytes_per_token = match (embeddings.and_then(|t| t.byte_size()), output) {
            (Some(embedding_bytes), Some(_)) => weight_bytes.saturating_sub(embedding_bytes),
            _ => weight_bytes,
        };
        let outside = embeddings.map_or(0, |t| t.elements()) + output.map_or(0, |t| t.elements());
        let layers = header.arch_value("block_count").and_then(MetaValue::as_u64).unwrap_or(0);
        Self { layers, bytes_per_token, flops_per_token: 2.0 * header.parameter_count().saturating_sub(outside) as f64 }
    }
}

/// The machine's measured throughputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    pub bandwidth_gb_s: f64,
    pub compute_gflops: f64,
}

/// Tokens per second before calibration.
fn generation_uncalibrated(shape: &ModelShape, machine: Throughput) -> f64 {
    let seconds = shape.bytes_per_token as f64 / (machine.bandwidth_gb_s * 1e9 * BANDWIDTH_SHARE)
        + shape.layers as f64 * SECONDS_PER_LAYER;
    1.0 / seconds.max(1e-9)
}

fn prompt_uncalibrated(shape: &ModelShape, machine: Throughput) -> f64 {
    machine.compute_gflops * 1e9 * COMPUTE_SHARE / shape.flops_per_token.max(1.0)
}

/// Measured over predicted, for generation and prompts, from this machine's bench history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// The median ratios, for people.
    pub generation: f64,
    pub prompt: f64,
    /// Average power while generating, W, and whether it was measured or estimated.
    pub watts: Option<(f64, String)>,
    /// The records it rests on.
    pub records: usize,
    /// Their models.
    pub models: Vec<String>,
    /// Each record's throughputs with its two ratios: a calibrated prediction is made at
    /// each record's own bandwidth and compute, measured in the same run as its speeds, so
    /// the noise of today's probe does not move it.
    #[serde(skip)]
    points: Vec<Point>,
}

/// One bench record as calibration: its throughputs, its two ratios, its quantization.
#[derive(Debug, Clone, PartialEq)]
struct Point {
    machine: Throughput,
    generation: f64,
    prompt: f64,
    quantization: String,
}

impl Calibration {
    /// From the records of other models run with `threads` (or, when there are none, any
    /// other models'). `None` without records. The model being predicted is left out, so a
    /// check of a prediction against a bench run is never a check of the bench against itself.
    pub fn from_history(
        records: &[BenchRecord],
        threads: u32,
        leave_out: impl Fn(&BenchRecord) -> bool,
    ) -> Option<Self> {
        let usable: Vec<&BenchRecord> = records
            .iter()
            .filter(|r| {
                !leave_out(r) && r.bytes_per_token > 0 && r.bandwidth_gb_s.is_some() && r.compute_gflops.is_some()
            })
            .collect();
        let same_threads: Vec<&BenchRecord> = usable.iter().copied().filter(|r| r.threads == threads).collect();
        let chosen = if same_threads.is_empty() { usable } else { same_threads };
        if chosen.is_empty() {
            return None;
        }
        let points: Vec<Point> = chosen
            .iter()
            .map(|r| {
                let shape = ModelShape {
                    layers: r.layers,
                    bytes_per_token: r.bytes_per_token,
                    flops_per_token: r.flops_per_token,
                };
                let machine = Throughput {
                    bandwidth_gb_s: r.bandwidth_gb_s.unwrap_or(1.0),
                    compute_gflops: r.compute_gflops.unwrap_or(1.0),
                };
                Point {
                    machine,
                    generation: r.generation_tokens_per_second / generation_uncalibrated(&shape, machine),
                    prompt: r.prompt_tokens_per_second / prompt_uncalibrated(&shape, machine),
                    quantization: r.quantization.clone(),
                }
            })
            .collect();
        let watts: Vec<&BenchRecord> = chosen.iter().copied().filter(|r| r.watts.is_some()).collect();
        let source =
            if watts.iter().all(|r| r.energy_source.as_deref() == Some("measured")) { "measured" } else { "estimated" };
        let mut models: Vec<String> = chosen.iter().map(|r| r.model.clone()).collect();
        models.sort();
        models.dedup();
        Some(Self {
            generation: median(points.iter().map(|p| p.generation)),
            prompt: median(points.iter().map(|p| p.prompt)),
            watts: (!watts.is_empty()).then(|| (median(watts.iter().filter_map(|r| r.watts)), source.to_string())),
            records: chosen.len(),
            models,
            points,
        })
    }

    /// Generation and prompt tokens per second of `shape`: the median over the records of
    /// each one's ratio applied at its own throughputs. Prompt speed depends on the kernels
    /// a quantization type gets, so records of `quantization` alone calibrate it where there
    /// are any; the second value says how many there were.
    fn predict(&self, shape: &ModelShape, quantization: &str) -> (f64, f64, usize) {
        let same: Vec<&Point> =
            self.points.iter().filter(|p| p.quantization.eq_ignore_ascii_case(quantization)).collect();
        let for_prompt = if same.is_empty() { self.points.iter().collect() } else { same.clone() };
        (
            median(self.points.iter().map(|p| p.generation * generation_uncalibrated(shape, p.machine))),
            median(for_prompt.iter().map(|p| p.prompt * prompt_uncalibrated(shape, p.machine))),
            same.len(),
        )
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.filter(|v| v.is_finite()).collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 1.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// A model's predicted speed and energy on this machine; every figure is a prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Speed {
    pub prompt_tokens_per_second: f64,
    pub generation_tokens_per_second: f64,
    pub joules_per_token: f64,
    /// `measured` when the power behind the figure was measured by a meter, else `estimated`.
    pub energy_source: String,
    /// How the figures were reached, for people.
    pub basis: String,
}

/// Predicts `shape`, of `quantization`, on `machine`; `fallback_watts` is the power to
/// assume (an estimate) when the history has none.
pub fn speed(
    shape: &ModelShape,
    quantization: &str,
    machine: Throughput,
    calibration: Option<&Calibration>,
    fallback_watts: f64,
) -> Speed {
    let (generation, prompt, same_quantization) = match calibration {
        Some(c) => c.predict(shape, quantization),
        None => (generation_uncalibrated(shape, machine), prompt_uncalibrated(shape, machine), 0),
    };
    let (watts, source) =
        calibration.and_then(|c| c.watts.clone()).unwrap_or_else(|| (fallback_watts, "estimated".to_string()));
    let measured = format!(
        "{:.1} GB/s read, {:.1} GFLOP/s multiply-add, measured now",
        machine.bandwidth_gb_s, machine.compute_gflops
    );
    let basis = match calibration {
        Some(c) => format!(
            "this machine's bench history ({} run{} of {}: measured over predicted, generation ×{:.2}, prompt ×{:.2}, at the bandwidth and compute measured in those runs; prompt speed from {}); {watts:.1} W from that history ({source})",
            c.records,
            if c.records == 1 { "" } else { "s" },
            c.models.join(", "),
            c.generation,
            c.prompt,
            if same_quantization > 0 {
                format!("the {same_quantization} of {quantization}")
            } else {
                format!("all of them, none being {quantization}")
            }
        ),
        None => format!(
            "{measured}; no bench history of another model here, so hearth's default shares of them; {watts:.1} W assumed (estimated); `hearth bench MODEL` calibrates"
        ),
    };
    Speed {
        prompt_tokens_per_second: prompt,
        generation_tokens_per_second: generation,
        joules_per_token: watts / generation.max(1e-9),
        energy_source: source,
        basis,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(model: &str, threads: u32, generation: f64, prompt: f64, watts: Option<f64>) -> BenchRecord {
        BenchRecord {
            at: 0,
            model: model.into(),
            architecture: "llama".into(),
            quantization: "Q4_1".into(),
            parameters: 1,
            file_bytes: 1,
            threads,
            layers: 10,
            bytes_per_token: 1_000_000_000,
            flops_per_token: 2e9,
            context: 648,
            batch_size: 512,
            kv_cache_type: "f16".into(),
            bandwidth_gb_s: Some(10.0),
            compute_gflops: Some(20.0),
            prompt_tokens_per_second: prompt,
            generation_tokens_per_second: generation,
            joules_per_token: None,
            watts,
            energy_source: Some("estimated".into()),
            peak_rss_bytes: None,
        }
    }

    fn quantized(record: BenchRecord, quantization: &str) -> BenchRecord {
        BenchRecord { quantization: quantization.into(), ..record }
    }

    #[test]
    fn generation_is_bandwidth_over_bytes_plus_each_layer_s_cost() {
        let shape = ModelShape { layers: 10, bytes_per_token: 1_000_000_000, flops_per_token: 2e9 };
        let machine = Throughput { bandwidth_gb_s: 10.0, compute_gflops: 20.0 };
        // 1 GB at 6 GB/s (60% of 10) is 1/6 s, plus 10 layers × 100 µs.
        let expected = 1.0 / (1.0 / 6.0 + 0.001);
        let predicted = speed(&shape, "Q4_1", machine, None, 16.0);
        assert!((predicted.generation_tokens_per_second - expected).abs() < 1e-9);
        // 20 GFLOP/s × 0.4 over 2 GFLOP a token.
        assert!((predicted.prompt_tokens_per_second - 4.0).abs() < 1e-9);
        assert!((predicted.joules_per_token - 16.0 / expected).abs() < 1e-9);
        assert_eq!(predicted.energy_source, "estimated");
        assert!(predicted.basis.contains("no bench history"), "{}", predicted.basis);
    }

    #[test]
    fn calibration_is_the_median_ratio_of_other_models_at_the_same_threads() {
        let uncalibrated = 1.0 / (1.0 / 6.0 + 0.001);
        let records = [
            record("a", 2, uncalibrated * 0.5, 2.0, Some(10.0)),
            record("b", 2, uncalibrated * 0.7, 4.0, Some(20.0)),
            record("c", 2, uncalibrated * 0.9, 8.0, Some(30.0)),
            // Another thread count is ignored while records at this one exist.
            record("d", 8, uncalibrated * 5.0, 300.0, Some(90.0)),
            // The model predicted is left out.
            record("me", 2, uncalibrated * 9.0, 900.0, Some(90.0)),
        ];
        let c = Calibration::from_history(&records, 2, |r| r.model == "me").unwrap();
        assert!((c.generation - 0.7).abs() < 1e-9, "{c:?}");
        assert!((c.prompt - 1.0).abs() < 1e-9, "{c:?}");
        assert_eq!(c.watts, Some((20.0, "estimated".to_string())));
        assert_eq!((c.records, c.models.as_slice()), (3, ["a", "b", "c"].map(String::from).as_slice()));
        // Calibrated, a prediction rests on the records' own throughputs, not today's probe.
        let shape = ModelShape { layers: 10, bytes_per_token: 1_000_000_000, flops_per_token: 2e9 };
        let today = |gb_s| Throughput { bandwidth_gb_s: gb_s, compute_gflops: 20.0 };
        let (slow, fast) =
            (speed(&shape, "Q8_0", today(5.0), Some(&c), 16.0), speed(&shape, "Q8_0", today(50.0), Some(&c), 16.0));
        assert_eq!(slow.generation_tokens_per_second, fast.generation_tokens_per_second);
        assert!((slow.generation_tokens_per_second - 0.7 * uncalibrated).abs() < 1e-9);
        assert_eq!(slow.joules_per_token, 20.0 / slow.generation_tokens_per_second);
        // Prompt speed: the median of all records' ratios, or of those of the same type alone.
        assert!((slow.prompt_tokens_per_second - 4.0).abs() < 1e-9, "{slow:?}");
        assert!(slow.basis.contains("none being Q8_0"), "{}", slow.basis);
        let one_type =
            Calibration::from_history(&[records[0].clone(), quantized(records[2].clone(), "Q8_0")], 2, |_| false)
                .unwrap();
        let predicted = speed(&shape, "Q8_0", today(5.0), Some(&one_type), 16.0);
        assert!((predicted.prompt_tokens_per_second - 8.0).abs() < 1e-9, "{predicted:?}");
        assert!(predicted.basis.contains("the 1 of Q8_0"), "{}", predicted.basis);
        // Only another thread count: it is used.
        let c = Calibration::from_history(&records, 4, |r| r.model == "me").unwrap();
        assert_eq!(c.records, 4);
        assert!((c.generation - 0.8).abs() < 1e-9, "{c:?}");
        assert!(Calibration::from_history(&records[..1], 2, |r| r.model == "a").is_none());
    }
}

//! A benchmark report as people read it (terminal tables, Markdown) and as programs do
//! (CSV; JSON comes straight from the report's fields): one table per workload, and one for
//! quality.

use super::meter::Energy;
use super::stats::{Latencies, Spread};
use super::{Report, TargetResult};

/// One table: a title, its columns and rows of cells.
struct Section {
    title: String,
    columns: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

fn spread(s: &Spread, decimals: usize) -> String {
    format!("{:.decimals$} ({:.decimals$}-{:.decimals$})", s.median, s.min, s.max)
}

fn latencies(l: &Latencies) -> String {
    format!("{:.1}/{:.1}/{:.1}", l.p50, l.p95, l.p99)
}

fn joules(energy: Option<&Energy>) -> String {
    energy.map_or("-".to_string(), |e| {
        let mark = if e.source == "estimated" { " est." } else { "" };
        format!("{:.3}{mark}", e.joules_per_generated_token.median)
    })
}

fn quantization(t: &TargetResult) -> String {
    t.model.as_ref().map_or("-".to_string(), |m| m.quantization.clone())
}

fn sections(report: &Report) -> Vec<Section> {
    let mut sections = Vec::new();
    let fixed: Vec<_> = report.targets.iter().filter_map(|t| Some((t, t.fixed.as_ref()?))).collect();
    if !fixed.is_empty() {
        let depth = if report.depth > 0 { format!(" at depth {}", report.depth) } else { String::new() };
        sections.push(Section {
            title: format!(
                "fixed: {} prompt tokens, {} generated{depth}",
                report.prompt_tokens, report.generated_tokens
            ),
            columns: vec![
                "target",
                "quant",
                "pp tok/s",
                "tg tok/s",
                "TTFT ms",
                "warm TTFT ms",
                "ITL p50/p95/p99 ms",
                "J/tok",
                "peak MiB",
            ],
            rows: fixed
                .iter()
                .map(|(t, f)| {
                    vec![
                        t.name.clone(),
                        quantization(t),
                        spread(&f.prompt_tokens_per_second, 1),
                        spread(&f.generation_tokens_per_second, 1),
                        format!("{:.0}", f.ttft_ms.median),
                        format!("{:.1}", f.warm_ttft_ms.median),
                        latencies(&f.inter_token_ms),
                        joules(f.energy.as_ref()),
                        t.peak_rss_mib.map_or("-".to_string(), |r| format!("{r:.0}")),
                    ]
                })
                .collect(),
        });
    }
    let real: Vec<_> = report.targets.iter().filter_map(|t| Some((t, t.prompts.as_ref()?))).collect();
    if let Some((_, first)) = real.first() {
        sections.push(Section {
            title: format!(
                "prompts: {} ({} requests each, up to {} tokens)",
                first.prompts, first.requests, report.generated_tokens
            ),
            columns: vec!["target", "TTFT ms", "warm TTFT ms", "e2e ms", "tg tok/s", "ITL p50/p95/p99 ms", "J/tok"],
            rows: real
                .iter()
                .map(|(t, r)| {
                    vec![
                        t.name.clone(),
                        spread(&r.ttft_ms, 0),
                        format!("{:.1}", r.warm_ttft_ms.median),
                        spread(&r.e2e_ms, 0),
                        spread(&r.generation_tokens_per_second, 1),
                        latencies(&r.inter_token_ms),
                        joules(r.energy.as_ref()),
                    ]
                })
                .collect(),
        });
    }
    let levels: Vec<_> = report.targets.iter().flat_map(|t| t.load.iter().map(move |l| (t, l))).collect();
    if !levels.is_empty() {
        sections.push(Section {
            title: "load: real prompts, each request cold".to_string(),
            columns: vec![
                "target",
                "level",
                "done (failed)",
                "tok/s all",
                "req/s",
                "TTFT p50/p95 ms",
                "ITL p50/p95/p99 ms",
                "e2e p50/p95 ms",
                "J/tok",
            ],
            rows: levels
                .iter()
                .map(|(t, l)| {
                    let level = match (l.concurrency, l.rate) {
                        (Some(c), _) => format!("{c} clients"),
                        (_, Some(r)) => format!("{r} req/s"),
                        _ => "-".to_string(),
                    };
                    vec![
                        t.name.clone(),
                        level,
                        format!("{} ({})", l.requests, l.failed),
                        format!("{:.1}", l.generation_tokens_per_second),
                        format!("{:.2}", l.requests_per_second),
                        format!("{:.0}/{:.0}", l.ttft_ms.p50, l.ttft_ms.p95),
                        latencies(&l.inter_token_ms),
                        format!("{:.0}/{:.0}", l.e2e_ms.p50, l.e2e_ms.p95),
                        joules(l.energy.as_ref()),
                    ]
                })
                .collect(),
        });
    }
    let scored: Vec<_> = report.targets.iter().filter(|t| t.perplexity.is_some()).collect();
    if let Some(first) = scored.first() {
        let chunks = first.perplexity.as_ref().map_or(0, |p| p.chunks);
        let reference = first.divergence.as_ref().map(|d| format!(", KL from {}", d.reference)).unwrap_or_default();
        sections.push(Section {
            title: format!("quality: {chunks} chunks of 512 tokens{reference}"),
            columns: vec!["target", "quant", "MiB", "perplexity", "KL mean", "KL max", "same top"],
            rows: scored
                .iter()
                .map(|t| {
                    let kl = t.divergence.as_ref();
                    vec![
                        t.name.clone(),
                        quantization(t),
                        t.model.as_ref().map_or("-".to_string(), |m| format!("{:.0}", m.file_mib)),
                        t.perplexity.as_ref().map_or("-".into(), |p| format!("{:.3} ± {:.3}", p.value, p.uncertainty)),
                        kl.map_or("-".into(), |d| format!("{:.5} ± {:.5}", d.kl_mean, d.kl_uncertainty)),
                        kl.map_or("-".into(), |d| format!("{:.3}", d.kl_max)),
                        kl.map_or("-".into(), |d| format!("{:.1}%", d.same_top_token * 100.0)),
                    ]
                })
                .collect(),
        });
    }
    sections
}

fn header(report: &Report) -> String {
    let m = &report.machine;
    let bandwidth = m.memory_bandwidth_gb_s.map(|b| format!(", {b:.1} GB/s read")).unwrap_or_default();
    format!(
        "{} ({} cores, {} threads), {} GiB{bandwidth}, {}; hearth {}, {}\n-r {}, batch {}, KV cache {}, flash attention {}\n",
        m.cpu,
        m.physical_cores,
        report.threads,
        m.memory_gib,
        m.os,
        m.hearth,
        m.llama_cpp,
        report.repetitions,
        report.batch_size,
        report.kv_cache_type,
        report.flash_attention
    )
}

/// Aligned columns for the terminal: medians with (min-max) over the repetitions.
pub fn table(report: &Report) -> String {
    let mut out = header(report);
    for section in sections(report) {
        let widths: Vec<usize> = (0..section.columns.len())
            .map(|i| {
                let widest = section.rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
                widest.max(section.columns[i].len())
            })
            .collect();
        let line = |values: Vec<&str>| {
            let cells: Vec<String> = values.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
            cells.join("  ").trim_end().to_string() + "\n"
        };
        out.push_str(&format!("\n{}\n", section.title));
        out.push_str(&line(section.columns.clone()));
        for row in &section.rows {
            out.push_str(&line(row.iter().map(String::as_str).collect()));
        }
    }
    out
}

pub fn markdown(report: &Report) -> String {
    let mut out = header(report).lines().map(|l| format!("{l}  \n")).collect::<String>();
    for section in sections(report) {
        out.push_str(&format!("\n**{}**\n\n", section.title));
        out.push_str(&format!("| {} |\n|{}\n", section.columns.join(" | "), "---|".repeat(section.columns.len())));
        for row in &section.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
    }
    out
}

const CSV_COLUMNS: [&str; 34] = [
    "target",
    "kind",
    "quantization",
    "workload",
    "concurrency",
    "rate",
    "requests",
    "pp_tok_s",
    "pp_min",
    "pp_max",
    "tg_tok_s",
    "tg_min",
    "tg_max",
    "ttft_ms",
    "warm_ttft_ms",
    "e2e_ms",
    "itl_p50_ms",
    "itl_p95_ms",
    "itl_p99_ms",
    "j_per_token",
    "net_j_per_token",
    "wh_per_1000_tokens",
    "watts",
    "energy_source",
    "peak_rss_mib",
    "perplexity",
    "perplexity_uncertainty",
    "kl_mean",
    "same_top_token",
    "threads",
    "prompt_tokens",
    "generated_tokens",
    "depth",
    "repetitions",
];

/// A CSV row filled by column name.
struct Row([String; CSV_COLUMNS.len()]);

impl Row {
    /// A new row of `workload` at the end of `rows`.
    fn add<'a>(rows: &'a mut Vec<Row>, workload: &str) -> &'a mut Row {
        rows.push(Row(std::array::from_fn(|_| String::new())));
        let row = rows.last_mut().expect("just pushed");
        row.set("workload", workload);
        row
    }

    fn set(&mut self, column: &str, value: impl ToString) -> &mut Self {
        let index = CSV_COLUMNS.iter().position(|c| *c == column).expect("a known column");
        self.0[index] = value.to_string();
        self
    }

    fn spread(&mut self, prefix: &str, s: &Spread) -> &mut Self {
        self.set(&format!("{prefix}_tok_s"), format!("{:.2}", s.median))
            .set(&format!("{prefix}_min"), format!("{:.2}", s.min))
            .set(&format!("{prefix}_max"), format!("{:.2}", s.max))
    }

    fn latencies(&mut self, l: &Latencies) -> &mut Self {
        self.set("itl_p50_ms", format!("{:.2}", l.p50))
            .set("itl_p95_ms", format!("{:.2}", l.p95))
            .set("itl_p99_ms", format!("{:.2}", l.p99))
    }

    fn energy(&mut self, energy: Option<&Energy>) -> &mut Self {
        if let Some(e) = energy {
            self.set("j_per_token", format!("{:.5}", e.joules_per_generated_token.median))
                .set("wh_per_1000_tokens", format!("{:.5}", e.wh_per_1000_tokens.median))
                .set("watts", format!("{:.2}", e.watts.median))
                .set("energy_source", e.source);
            if let Some(net) = e.net_joules_per_generated_token {
                self.set("net_j_per_token", format!("{:.5}", net.median));
            }
        }
        self
    }
}

/// One row per target and workload (and load level), every figure in its own column, no
/// units in the cells: medians where a workload has spreads, p50 where it has percentiles;
/// load rows carry the aggregate throughput as tg_tok_s. Quality repeats on each of a
/// target's rows.
pub fn csv(report: &Report) -> String {
    let mut out = CSV_COLUMNS.join(",") + "\n";
    for t in &report.targets {
        let mut rows: Vec<Row> = Vec::new();
        if let Some(f) = &t.fixed {
            Row::add(&mut rows, "fixed")
                .spread("pp", &f.prompt_tokens_per_second)
                .spread("tg", &f.generation_tokens_per_second)
                .set("ttft_ms", format!("{:.1}", f.ttft_ms.median))
                .set("warm_ttft_ms", format!("{:.1}", f.warm_ttft_ms.median))
                .latencies(&f.inter_token_ms)
                .energy(f.energy.as_ref());
        }
        if let Some(r) = &t.prompts {
            Row::add(&mut rows, "prompts")
                .set("requests", r.requests)
                .spread("pp", &r.prompt_tokens_per_second)
                .spread("tg", &r.generation_tokens_per_second)
                .set("ttft_ms", format!("{:.1}", r.ttft_ms.median))
                .set("warm_ttft_ms", format!("{:.1}", r.warm_ttft_ms.median))
                .set("e2e_ms", format!("{:.1}", r.e2e_ms.median))
                .latencies(&r.inter_token_ms)
                .energy(r.energy.as_ref());
        }
        for level in &t.load {
            let row = Row::add(&mut rows, "load");
            row.set("requests", level.requests)
                .set("tg_tok_s", format!("{:.2}", level.generation_tokens_per_second))
                .set("ttft_ms", format!("{:.1}", level.ttft_ms.p50))
                .set("e2e_ms", format!("{:.1}", level.e2e_ms.p50))
                .latencies(&level.inter_token_ms)
                .energy(level.energy.as_ref());
            if let Some(c) = level.concurrency {
                row.set("concurrency", c);
            }
            if let Some(r) = level.rate {
                row.set("rate", r);
            }
        }
        if rows.is_empty() {
            Row::add(&mut rows, "quality");
        }
        for mut row in rows {
            row.set("target", quote(&t.name)).set("kind", t.kind).set("quantization", quantization(t));
            if let Some(r) = t.peak_rss_mib {
                row.set("peak_rss_mib", format!("{r:.1}"));
            }
            if let Some(p) = &t.perplexity {
                row.set("perplexity", format!("{:.4}", p.value))
                    .set("perplexity_uncertainty", format!("{:.4}", p.uncertainty));
            }
            if let Some(d) = &t.divergence {
                row.set("kl_mean", format!("{:.6}", d.kl_mean))
                    .set("same_top_token", format!("{:.4}", d.same_top_token));
            }
            row.set("threads", report.threads)
                .set("prompt_tokens", report.prompt_tokens)
                .set("generated_tokens", report.generated_tokens)
                .set("depth", report.depth)
                .set("repetitions", report.repetitions);
            out.push_str(&row.0.join(","));
            out.push('\n');
        }
    }
    out
}

/// A CSV field, quoted when it holds a comma or a quote.
fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

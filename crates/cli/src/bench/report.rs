//! A benchmark report as people read it (a terminal table, Markdown) and as programs do
//! (CSV; JSON comes straight from the report's fields).

use super::stats::Spread;
use super::{ModelResult, Report};

const COLUMNS: [&str; 9] =
    ["model", "quant", "pp tok/s", "tg tok/s", "TTFT ms", "ITL p50/p95/p99 ms", "J/tok", "peak MiB", "ppl"];

fn spread(s: &Spread, decimals: usize) -> String {
    format!("{:.decimals$} ({:.decimals$}-{:.decimals$})", s.median, s.min, s.max)
}

fn cells(m: &ModelResult) -> [String; 9] {
    let energy = m.energy.as_ref().map_or("-".to_string(), |e| {
        let mark = if e.source == "estimated" { " est." } else { "" };
        format!("{:.3}{mark}", e.joules_per_generated_token.median)
    });
    [
        m.model.clone(),
        m.quantization.clone(),
        spread(&m.prompt_tokens_per_second, 1),
        spread(&m.generation_tokens_per_second, 1),
        format!("{:.0}", m.ttft_ms.median),
        format!("{:.1}/{:.1}/{:.1}", m.inter_token_ms.p50, m.inter_token_ms.p95, m.inter_token_ms.p99),
        energy,
        m.peak_rss_mib.map_or("-".to_string(), |r| format!("{r:.0}")),
        m.perplexity.as_ref().map_or("-".to_string(), |p| format!("{:.2} ± {:.2}", p.value, p.uncertainty)),
    ]
}

fn header(report: &Report) -> String {
    let m = &report.machine;
    format!(
        "{} ({} cores, {} threads), {} GiB, {}; hearth {}, {}\n-p {} -n {} -r {}, batch {}, KV cache {}\n",
        m.cpu,
        m.physical_cores,
        report.threads,
        m.memory_gib,
        m.os,
        m.hearth,
        m.llama_cpp,
        report.prompt_tokens,
        report.generated_tokens,
        report.repetitions,
        report.batch_size,
        report.kv_cache_type
    )
}

/// Aligned columns for the terminal: medians with (min-max) over the repetitions.
pub fn table(report: &Report) -> String {
    let rows: Vec<[String; 9]> = report.models.iter().map(cells).collect();
    let widths: Vec<usize> = (0..COLUMNS.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([COLUMNS[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |values: Vec<&str>| {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = header(report);
    out.push_str(&line(COLUMNS.to_vec()));
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

pub fn markdown(report: &Report) -> String {
    let mut out = header(report).lines().map(|l| format!("{l}  \n")).collect::<String>();
    out.push_str(&format!("\n| {} |\n|{}\n", COLUMNS.join(" | "), "---|".repeat(COLUMNS.len())));
    for m in &report.models {
        out.push_str(&format!("| {} |\n", cells(m).join(" | ")));
    }
    out
}

/// One row per model, every figure in its own column, no units in the cells.
pub fn csv(report: &Report) -> String {
    let mut out = String::from(
        "model,architecture,quantization,parameters,file_mib,load_s,pp_tok_s,pp_min,pp_max,tg_tok_s,tg_min,tg_max,\
         ttft_ms,itl_p50_ms,itl_p95_ms,itl_p99_ms,peak_rss_mib,j_per_token,wh_per_1000_tokens,watts,energy_source,\
         perplexity,perplexity_uncertainty,threads,prompt_tokens,generated_tokens,repetitions\n",
    );
    for m in &report.models {
        let energy = m.energy.as_ref();
        let fields = [
            quote(&m.model),
            m.architecture.clone(),
            m.quantization.clone(),
            m.parameters.clone(),
            format!("{:.1}", m.file_mib),
            format!("{:.3}", m.load_seconds),
            format!("{:.2}", m.prompt_tokens_per_second.median),
            format!("{:.2}", m.prompt_tokens_per_second.min),
            format!("{:.2}", m.prompt_tokens_per_second.max),
            format!("{:.2}", m.generation_tokens_per_second.median),
            format!("{:.2}", m.generation_tokens_per_second.min),
            format!("{:.2}", m.generation_tokens_per_second.max),
            format!("{:.1}", m.ttft_ms.median),
            format!("{:.2}", m.inter_token_ms.p50),
            format!("{:.2}", m.inter_token_ms.p95),
            format!("{:.2}", m.inter_token_ms.p99),
            m.peak_rss_mib.map_or(String::new(), |r| format!("{r:.1}")),
            energy.map_or(String::new(), |e| format!("{:.5}", e.joules_per_generated_token.median)),
            energy.map_or(String::new(), |e| format!("{:.5}", e.wh_per_1000_tokens.median)),
            energy.map_or(String::new(), |e| format!("{:.2}", e.watts.median)),
            energy.map_or(String::new(), |e| e.source.to_string()),
            m.perplexity.as_ref().map_or(String::new(), |p| format!("{:.4}", p.value)),
            m.perplexity.as_ref().map_or(String::new(), |p| format!("{:.4}", p.uncertainty)),
            report.threads.to_string(),
            report.prompt_tokens.to_string(),
            report.generated_tokens.to_string(),
            report.repetitions.to_string(),
        ];
        out.push_str(&fields.join(","));
        out.push('\n');
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

//! The machine a benchmark ran on, so a result can be reproduced and compared: CPU, cores,
//! memory and its measured read bandwidth, OS, and hearth's and llama.cpp's versions.

use serde::{Deserialize, Serialize};
use std::time::Instant;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub physical_cores: u32,
    pub logical_cores: usize,
    pub memory_gib: f64,
    /// Main memory read with the benchmark's threads, GB/s: what bounds generation on a CPU,
    /// where every token reads all the weights.
    pub memory_bandwidth_gb_s: Option<f64>,
    /// f32 multiply-adds with the benchmark's threads, GFLOP/s (portable code, so a measure
    /// of this machine against others, not of llama.cpp's kernels).
    #[serde(default)]
    pub compute_gflops: Option<f64>,
    /// The vector instruction sets ggml's kernels use, where the CPU has them.
    #[serde(default)]
    pub simd: Vec<String>,
    pub os: String,
    pub hearth: String,
    pub llama_cpp: String,
}

impl Machine {
    pub fn this(threads: u32) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|rest| rest.split_once(':')).map(|(_, v)| v.trim()))
            .unwrap_or(std::env::consts::ARCH)
            .to_string();
        let memory = hearth_engine::total_memory().unwrap_or(0) as f64;
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Self {
            cpu,
            physical_cores: hearth_engine::physical_cores(),
            logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: (memory / f64::from(1u32 << 30) * 10.0).round() / 10.0,
            memory_bandwidth_gb_s: memory_bandwidth(threads, memory),
            compute_gflops: Some(compute_gflops(threads)),
            simd: simd_features(&cpuinfo),
            os: format!("{} {}", std::env::consts::OS, release.trim()).trim().to_string(),
            hearth: env!("CARGO_PKG_VERSION").to_string(),
            llama_cpp: hearth_engine::LLAMA_CPP_CRATE.to_string(),
        }
    }
}

/// Read bandwidth in GB/s: `threads` threads each summing its share of a buffer of up to
/// 512 MiB (an eighth of memory at most), best of three passes.
pub fn memory_bandwidth(threads: u32, memory_bytes: f64) -> Option<f64> {
    let bytes = (512u64 << 20).min((memory_bytes / 8.0) as u64);
    let words = usize::try_from(bytes / 8).ok()?;
    if words < 1 << 16 {
        return None;
    }
    // Written once, so every page is really there before anything is timed.
    let buffer: Vec<u64> = (0..words as u64).collect();
    let share = words.div_ceil(threads.max(1) as usize);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for part in buffer.chunks(share) {
                scope.spawn(move || std::hint::black_box(part.iter().fold(0u64, |sum, w| sum.wrapping_add(*w))));
            }
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    Some((words * 8) as f64 / best / 1e9)
}

/// Multiply-add throughput in GFLOP/s: `threads` threads each updating 64 independent f32
/// lanes (registers, no memory traffic), best of three passes of about 30 ms each (long
/// beside starting the threads, which a shorter pass mostly measured).
pub fn compute_gflops(threads: u32) -> f64 {
    const LANES: usize = 64;
    const ROUNDS: usize = 10_000_000;
    let threads = threads.max(1);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let (scale, shift) = (std::hint::black_box(0.999_f32), std::hint::black_box(0.001_f32));
                    let mut lanes = [1.0_f32; LANES];
                    for _ in 0..ROUNDS {
                        for lane in &mut lanes {
                            *lane = *lane * scale + shift;
                        }
                    }
                    std::hint::black_box(lanes);
                });
            }
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    f64::from(threads) * (ROUNDS * LANES * 2) as f64 / best / 1e9
}

/// The vector extensions in /proc/cpuinfo's flags (x86) or features (Arm) that ggml uses.
pub fn simd_features(cpuinfo: &str) -> Vec<String> {
    const KNOWN: [&str; 10] =
        ["avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "avx2", "fma", "f16c", "asimd", "sve", "i8mm"];
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect())
        .unwrap_or_default();
    KNOWN.iter().filter(|k| flags.contains(k)).map(|k| k.to_string()).collect()
}

#[cfg(test)]
mod tests {
    /// Three probes in a row agree within 20% (`hearth fit` predicts from one). Other tests
    /// of this binary run beside it, so one disturbed set of three is tried again, twice.
    #[test]
    fn the_bandwidth_probe_is_stable_across_runs() {
        let memory = 8.0 * f64::from(1u32 << 30);
        let mut spreads = Vec::new();
        for _ in 0..3 {
            let runs: Vec<f64> = (0..3).map(|_| super::memory_bandwidth(1, memory).unwrap()).collect();
            let (low, high) = runs.iter().fold((f64::MAX, 0.0_f64), |(l, h), &r| (l.min(r), h.max(r)));
            spreads.push((high - low) / high);
            if (high - low) / high <= 0.2 {
                return;
            }
        }
        panic!("three runs of the probe spread by {spreads:?}");
    }

    #[test]
    fn bandwidth_is_measured_and_plausible() {
        let gb_s = super::memory_bandwidth(1, 8.0 * f64::from(1u32 << 30)).unwrap();
        assert!(gb_s > 0.1 && gb_s < 10_000.0, "{gb_s}");
        assert!(super::memory_bandwidth(1, 1024.0).is_none(), "too little memory to measure");
        let gflops = super::compute_gflops(1);
        assert!(gflops > 0.1 && gflops < 100_000.0, "{gflops}");
        let simd = super::simd_features("processor: 0\nflags\t\t: fpu sse2 avx2 fma f16c\n");
        assert_eq!(simd, ["avx2", "fma", "f16c"]);
    }
}

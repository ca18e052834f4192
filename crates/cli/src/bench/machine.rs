//! The machine a benchmark ran on, so a result can be reproduced and compared: CPU, cores,
//! memory, OS, and hearth's and llama.cpp's versions.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub physical_cores: u32,
    pub logical_cores: usize,
    pub memory_gib: f64,
    pub os: String,
    pub hearth: String,
    pub llama_cpp: String,
}

impl Machine {
    pub fn this() -> Self {
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
            os: format!("{} {}", std::env::consts::OS, release.trim()).trim().to_string(),
            hearth: env!("CARGO_PKG_VERSION").to_string(),
            llama_cpp: hearth_engine::LLAMA_CPP_CRATE.to_string(),
        }
    }
}

//! hearth's energy meters: cumulative joules from RAPL (powercap), from a laptop battery
//! while it discharges, from NVIDIA GPUs (NVML, feature `nvml`), from macOS's powermetrics,
//! or, when nothing can be read, an estimate from the process's CPU time that says it is
//! one. Every reader takes its sysfs or procfs root as an argument, so tests run on fixture
//! trees.

mod battery;
mod detect;
mod error;
mod estimate;
mod gpu;
pub mod powermetrics;
mod rapl;

pub use battery::BatteryMeter;
pub use detect::{detect, detect_scoped, Detected, Roots};
pub use error::EnergyError;
pub use estimate::{default_watts_per_core, CpuTimeEstimate, EstimateScope};
#[cfg(feature = "nvml")]
pub use gpu::NvmlCounters;
pub use gpu::{CombinedMeter, GpuCounters, GpuMeter};
pub use rapl::{RaplMeter, RaplZone};

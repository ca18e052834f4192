//! hearth's energy meters: cumulative joules from RAPL (powercap), from a laptop battery
//! while it discharges, or, when nothing can be read, an estimate from the process's CPU
//! time that says it is one. Every reader takes its sysfs or procfs root as an argument, so
//! tests run on fixture trees.

mod battery;
mod detect;
mod error;
mod estimate;
mod rapl;

pub use battery::BatteryMeter;
pub use detect::{detect, Detected, Roots};
pub use error::EnergyError;
pub use estimate::{default_watts_per_core, CpuTimeEstimate};
pub use rapl::{RaplMeter, RaplZone};

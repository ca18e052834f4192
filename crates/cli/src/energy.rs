//! `hearth energy`: which energy meters this machine has, what they read now, and which one
//! hearth uses; `--watch` prints the power once an interval.

use anyhow::{bail, Result};
use hearth_energy::{BatteryMeter, EnergyError, RaplMeter, Roots};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct EnergyArgs {
    /// Print the power once an interval until Ctrl-C
    #[arg(long)]
    watch: bool,
    /// Sampling interval in milliseconds
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// With --watch, stop after this many lines
    #[arg(long)]
    count: Option<u64>,
}

/// `HEARTH_SYSFS_ROOT` points at sysfs mounted elsewhere than `/sys` (and at fixtures in tests).
pub fn roots() -> Roots {
    let mut roots = Roots::default();
    if let Some(sys) = std::env::var_os("HEARTH_SYSFS_ROOT") {
        roots.sys = sys.into();
    }
    roots
}

pub fn watts_per_core_override() -> Option<f64> {
    std::env::var("HEARTH_WATTS_PER_CORE").ok().and_then(|w| w.parse().ok())
}

pub fn run(args: EnergyArgs) -> Result<ExitCode> {
    if args.interval_ms == 0 {
        bail!("--interval-ms must be at least 1");
    }
    let interval = Duration::from_millis(args.interval_ms);
    let roots = roots();
    if args.watch {
        watch(&roots, interval, args.count)
    } else {
        list(&roots, interval)
    }
}

/// One line per meter kind, then the one hearth uses.
fn list(roots: &Roots, interval: Duration) -> Result<ExitCode> {
    match RaplMeter::open(&roots.sys) {
        Ok(mut rapl) => {
            let watts = sample_zones(&mut rapl, interval)?;
            let domains: Vec<String> = watts.iter().map(|(name, w)| format!("{name} {w:.1} W")).collect();
            println!("RAPL      measured   {}", domains.join(", "));
            println!("          idle baseline {:.1} W (packages + DRAM, sampled now)", rapl_total(&watts));
        }
        Err(e) => println!("RAPL      -          {}", reason(&e)),
    }
    match BatteryMeter::open(&roots.sys) {
        Ok(battery) => println!("battery   measured   discharging, {:.1} W now", battery.watts()?),
        Err(e) => println!("battery   -          {}", reason(&e)),
    }
    let watts = watts_per_core_override().unwrap_or_else(|| hearth_energy::default_watts_per_core(&roots.proc));
    println!("estimate  estimated  {watts} W per busy core of hearth's own CPU time (set HEARTH_WATTS_PER_CORE)");
    let detected = hearth_energy::detect(roots, watts_per_core_override())?;
    println!("in use: {} ({})", detected.description, detected.meter.source().as_str());
    if let Some(hint) = detected.hint {
        println!("hint: {hint}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a meter kind is not available, in a few words.
fn reason(error: &EnergyError) -> String {
    match error {
        EnergyError::NotFound(what) => format!("not found (no {what})"),
        other => other.to_string(),
    }
}

/// Power of every RAPL zone over one interval.
fn sample_zones(rapl: &mut RaplMeter, interval: Duration) -> Result<Vec<(String, f64)>> {
    let before: Vec<f64> = rapl.zones()?.iter().map(|z| z.joules()).collect();
    let started = Instant::now();
    std::thread::sleep(interval);
    let seconds = started.elapsed().as_secs_f64();
    Ok(rapl
        .zones()?
        .iter()
        .zip(before)
        .map(|(zone, joules)| (zone.name.clone(), (zone.joules() - joules) / seconds))
        .collect())
}

/// The machine's power as hearth attributes it: packages and DRAM.
fn rapl_total(watts: &[(String, f64)]) -> f64 {
    watts.iter().filter(|(name, _)| name.starts_with("package") || name == "dram").map(|(_, w)| w).sum()
}

fn watch(roots: &Roots, interval: Duration, count: Option<u64>) -> Result<ExitCode> {
    let mut lines = 0;
    if let Ok(mut rapl) = RaplMeter::open(&roots.sys) {
        while count.is_none_or(|n| lines < n) {
            let watts = sample_zones(&mut rapl, interval)?;
            let zones: Vec<String> = watts.iter().map(|(name, w)| format!("{name} {w:.1} W")).collect();
            println!("{:.1} W  ({})", rapl_total(&watts), zones.join(", "));
            lines += 1;
        }
    } else if let Ok(battery) = BatteryMeter::open(&roots.sys) {
        while count.is_none_or(|n| lines < n) {
            std::thread::sleep(interval);
            println!("{:.1} W  (battery)", battery.watts()?);
            lines += 1;
        }
    } else {
        bail!("no power meter to watch: neither RAPL counters nor a discharging battery (the estimate only covers hearth's own work)");
    }
    Ok(ExitCode::SUCCESS)
}

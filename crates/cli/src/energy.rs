//! `hearth energy`: which energy meters this machine has, what they read now, and which one
//! hearth uses; `--watch` prints the power once an interval.

use anyhow::{bail, Result};
use hearth_core::{EnergyMeter, EnergyPrices};
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

/// What energy costs, from `HEARTH_GRID_INTENSITY` (grams of CO2e per kWh of your grid),
/// `HEARTH_ENERGY_PRICE` (price per kWh) and `HEARTH_CURRENCY` (its currency, for display).
pub fn prices() -> Result<EnergyPrices> {
    let number = |name: &str| -> Result<Option<f64>> {
        match std::env::var(name) {
            Ok(text) => match text.trim().parse::<f64>() {
                Ok(value) if value.is_finite() && value >= 0.0 => Ok(Some(value)),
                _ => bail!("{name} must be a number of 0 or more, got {text:?}"),
            },
            Err(_) => Ok(None),
        }
    };
    Ok(EnergyPrices {
        grams_co2e_per_kwh: number("HEARTH_GRID_INTENSITY")?,
        price_per_kwh: number("HEARTH_ENERGY_PRICE")?,
        currency: std::env::var("HEARTH_CURRENCY").unwrap_or_default(),
    })
}

pub fn watts_per_core_override() -> Option<f64> {
    std::env::var("HEARTH_WATTS_PER_CORE").ok().and_then(|w| w.parse().ok())
}

/// The power per busy core the estimate uses: `HEARTH_WATTS_PER_CORE`, else the default for
/// this CPU family.
pub fn watts_per_core(roots: &Roots) -> f64 {
    watts_per_core_override().unwrap_or_else(|| hearth_energy::default_watts_per_core(&roots.proc))
}

/// The best energy meter this machine offers. `HEARTH_WATTS_PER_CORE` sets the power per
/// busy core the estimate uses when no counter can be read; `HEARTH_SYSFS_ROOT` says where
/// sysfs is mounted (default `/sys`). With `verbose`, says why a measuring meter was not
/// usable (usually: RAPL counters readable by root only).
pub fn meter(verbose: bool) -> Option<Box<dyn EnergyMeter>> {
    scoped_meter(verbose, hearth_energy::EstimateScope::Process)
}

/// As [`meter`], with an estimate (if that is all there is) counting `scope`'s CPU time:
/// the whole machine's when the work happens in another process, such as a server.
pub fn scoped_meter(verbose: bool, scope: hearth_energy::EstimateScope) -> Option<Box<dyn EnergyMeter>> {
    match hearth_energy::detect_scoped(&roots(), watts_per_core_override(), scope) {
        Ok(detected) => {
            if let (true, Some(hint)) = (verbose, &detected.hint) {
                eprintln!("energy: {hint}");
            }
            Some(detected.meter)
        }
        Err(e) => {
            tracing::warn!("no energy meter: {e}");
            None
        }
    }
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
            let zones = sample_zones(&mut rapl, interval)?;
            println!("RAPL      measured   {}", describe(&zones));
            println!("          idle baseline {:.1} W (packages + DRAM, sampled now)", rapl_total(&zones));
        }
        Err(e) => println!("RAPL      -          {}", reason(&e)),
    }
    match BatteryMeter::open(&roots.sys) {
        Ok(battery) => {
            let gauge = if battery.gauge_joules().is_some() { "fuel gauge cross-check" } else { "no fuel gauge" };
            println!("battery   measured   discharging, {:.1} W now ({gauge})", battery.watts()?);
        }
        Err(e) => println!("battery   -          {}", reason(&e)),
    }
    #[cfg(feature = "nvml")]
    match hearth_energy::NvmlCounters::init().and_then(hearth_energy::GpuMeter::open) {
        Ok(gpus) => println!("GPU       measured   NVIDIA: {}", gpus.describe()),
        Err(e) => println!("GPU       -          {}", reason(&e)),
    }
    #[cfg(not(feature = "nvml"))]
    println!("GPU       -          not in this build (build with --features nvml for NVIDIA GPUs)");
    let watts = watts_per_core(roots);
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

/// Power of one RAPL zone over an interval.
struct ZonePower {
    name: String,
    /// Whether hearth counts this zone in the machine's total (see `RaplZone`).
    in_total: bool,
    watts: f64,
}

/// Power of every RAPL zone over one interval.
fn sample_zones(rapl: &mut RaplMeter, interval: Duration) -> Result<Vec<ZonePower>> {
    let before: Vec<f64> = rapl.zones()?.iter().map(|z| z.joules()).collect();
    let started = Instant::now();
    std::thread::sleep(interval);
    let seconds = started.elapsed().as_secs_f64();
    Ok(rapl
        .zones()?
        .iter()
        .zip(before)
        .map(|(zone, joules)| ZonePower {
            name: zone.name.clone(),
            in_total: zone.counts_towards_total(),
            watts: (zone.joules() - joules) / seconds,
        })
        .collect())
}

/// The machine's power as hearth attributes it.
fn rapl_total(zones: &[ZonePower]) -> f64 {
    zones.iter().filter(|z| z.in_total).map(|z| z.watts).sum()
}

fn describe(zones: &[ZonePower]) -> String {
    zones.iter().map(|z| format!("{} {:.1} W", z.name, z.watts)).collect::<Vec<_>>().join(", ")
}

fn watch(roots: &Roots, interval: Duration, count: Option<u64>) -> Result<ExitCode> {
    let mut lines = 0;
    if let Ok(mut rapl) = RaplMeter::open(&roots.sys) {
        while count.is_none_or(|n| lines < n) {
            let zones = sample_zones(&mut rapl, interval)?;
            println!("{:.1} W  ({})", rapl_total(&zones), describe(&zones));
            lines += 1;
        }
    } else if let Ok(mut battery) = BatteryMeter::open(&roots.sys) {
        while count.is_none_or(|n| lines < n) {
            std::thread::sleep(interval);
            let watts = battery.watts()?;
            let integrated = hearth_core::EnergyMeter::joules(&mut battery).map_err(anyhow::Error::msg)?;
            let gauge = battery.gauge_joules().map_or("no fuel gauge".into(), |j| format!("fuel gauge {j:.0} J"));
            println!("{watts:.1} W  (battery; {integrated:.0} J so far, {gauge})");
            lines += 1;
        }
    } else {
        bail!("no power meter to watch: neither RAPL counters nor a discharging battery (the estimate only covers hearth's own work)");
    }
    Ok(ExitCode::SUCCESS)
}

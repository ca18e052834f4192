//! Energy vocabulary: a meter the engine reads at step boundaries, and the report each
//! request carries back. Meters live in `hearth-energy`; the engine only sees this trait.

use serde::{Deserialize, Serialize};

/// Whether an energy figure was read from a hardware counter or computed from a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EnergySource {
    Measured,
    Estimated,
}

impl EnergySource {
    pub fn as_str(self) -> &'static str {
        match self {
            EnergySource::Measured => "measured",
            EnergySource::Estimated => "estimated",
        }
    }
}

/// A cumulative energy counter: joules consumed since the meter was opened, only ever
/// growing (counter wraps are the meter's to correct).
pub trait EnergyMeter: Send {
    fn source(&self) -> EnergySource;
    /// Joules since the meter was opened.
    fn joules(&mut self) -> Result<f64, String>;
    /// Joules since opening per domain the meter sees (`package-0`, `package-0/dram`,
    /// `gpu-0`, ...). A domain may be part of another (a package's `core`), so they need not
    /// sum to [`EnergyMeter::joules`]. A meter with one domain reports it as `total`.
    fn domains(&mut self) -> Result<Vec<(String, f64)>, String> {
        Ok(vec![("total".to_string(), self.joules()?)])
    }
}

/// What energy costs besides joules, when the user has said: the grid's carbon intensity
/// and the electricity price.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnergyPrices {
    /// Grams of CO2-equivalent per kWh of the grid that powers the machine.
    pub grams_co2e_per_kwh: Option<f64>,
    /// Price of one kWh, in `currency`.
    pub price_per_kwh: Option<f64>,
    /// The price's currency as the user wrote it (`EUR`, `USD`, ...), for display.
    pub currency: String,
}

const JOULES_PER_KWH: f64 = 3.6e6;

impl EnergyPrices {
    pub fn co2e_grams(&self, joules: f64) -> Option<f64> {
        self.grams_co2e_per_kwh.map(|g| g * joules / JOULES_PER_KWH)
    }

    pub fn cost(&self, joules: f64) -> Option<f64> {
        self.price_per_kwh.map(|p| p * joules / JOULES_PER_KWH)
    }
}

/// What one request cost. Prefill is prompt processing; decode is producing the answer.
/// The joules are gross: everything the meter saw while the request ran.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EnergyReport {
    pub prefill_joules: f64,
    pub decode_joules: f64,
    /// Wall-clock seconds the joules were measured over.
    pub seconds: f64,
    /// Power the meter saw while no request ran, when it has been measured.
    pub idle_watts: Option<f64>,
    pub source: EnergySource,
}

impl EnergyReport {
    pub fn total_joules(&self) -> f64 {
        self.prefill_joules + self.decode_joules
    }

    /// The joules above what the machine would have drawn idle over the same time: what the
    /// request added. Unknown until an idle baseline has been measured.
    pub fn net_joules(&self) -> Option<f64> {
        self.idle_watts.map(|idle| (self.total_joules() - idle * self.seconds).max(0.0))
    }

    /// Joules per generated token: the whole request's energy over the answer's tokens.
    pub fn joules_per_generated_token(&self, completion_tokens: u32) -> Option<f64> {
        (completion_tokens > 0).then(|| self.total_joules() / f64::from(completion_tokens))
    }

    /// Joules per token processed, prompt and answer together.
    pub fn joules_per_token(&self, prompt_tokens: u32, completion_tokens: u32) -> Option<f64> {
        let tokens = prompt_tokens + completion_tokens;
        (tokens > 0).then(|| self.total_joules() / f64::from(tokens))
    }

    /// Average power while the request ran.
    pub fn average_watts(&self) -> Option<f64> {
        (self.seconds > 0.0).then(|| self.total_joules() / self.seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_convert_joules_through_kilowatt_hours() {
        let prices =
            EnergyPrices { grams_co2e_per_kwh: Some(400.0), price_per_kwh: Some(0.30), currency: "EUR".into() };
        assert!((prices.co2e_grams(3.6e6).unwrap() - 400.0).abs() < 1e-9);
        assert!((prices.cost(36_000.0).unwrap() - 0.003).abs() < 1e-12);
        assert_eq!(EnergyPrices::default().co2e_grams(1.0), None);
    }

    #[test]
    fn per_token_figures_divide_the_whole_request() {
        let report = EnergyReport {
            prefill_joules: 2.0,
            decode_joules: 6.0,
            seconds: 2.0,
            idle_watts: Some(1.5),
            source: EnergySource::Estimated,
        };
        assert_eq!(report.total_joules(), 8.0);
        assert_eq!(report.net_joules(), Some(5.0));
        assert_eq!(report.joules_per_generated_token(4), Some(2.0));
        assert_eq!(report.joules_per_token(12, 4), Some(0.5));
        assert_eq!(report.average_watts(), Some(4.0));
        assert_eq!(report.joules_per_generated_token(0), None);
        assert_eq!(EnergyReport { idle_watts: None, ..report }.net_joules(), None);
        assert_eq!(serde_json::to_string(&report.source).unwrap(), "\"estimated\"");
    }
}

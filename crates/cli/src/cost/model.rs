//! The arithmetic of `hearth cost`, apart from where its inputs come from: a day's tokens,
//! the machine's price, life, idle power and energy per token, the electricity price and
//! the cloud models' prices in; per-million and per-day costs, break-even months, three-year
//! totals and a sensitivity table out.

use anyhow::{bail, Result};
use serde::Serialize;

pub const DAYS_PER_YEAR: f64 = 365.0;
pub const DAYS_PER_MONTH: f64 = DAYS_PER_YEAR / 12.0;
const JOULES_PER_KWH: f64 = 3.6e6;
const JOULES_PER_WH: f64 = 3600.0;
const SECONDS_PER_HOUR: f64 = 3600.0;
/// The total cost of ownership's horizon.
pub const TCO_YEARS: f64 = 3.0;
/// The sensitivity table's rows and columns: multiples of the given tokens per day and
/// electricity price.
pub const TOKEN_FACTORS: [f64; 5] = [0.1, 0.5, 1.0, 2.0, 10.0];
pub const PRICE_FACTORS: [f64; 3] = [0.5, 1.0, 2.0];

/// A cloud model's prices per million tokens, as the user gave them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloudModel {
    pub name: String,
    pub input_per_million: f64,
    pub output_per_million: f64,
    /// When the user read the prices (`as_of` in the config file), shown beside them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Inputs {
    pub tokens_in_per_day: f64,
    pub tokens_out_per_day: f64,
    pub hardware_price: f64,
    pub lifetime_years: f64,
    /// The machine's power while on and not answering, W (0: not counted).
    pub idle_watts: f64,
    /// Hours a day the machine is on.
    pub hours_on: f64,
    /// Price of a kWh.
    pub electricity_price: f64,
    pub joules_per_input_token: f64,
    pub joules_per_output_token: f64,
    pub grams_co2e_per_kwh: Option<f64>,
    pub clouds: Vec<CloudModel>,
}

impl Inputs {
    /// The first thing wrong with the inputs, as one line.
    pub fn check(&self) -> Result<()> {
        let at_least_zero = |what: &str, value: f64| -> Result<()> {
            if !value.is_finite() || value < 0.0 {
                bail!("{what} must be a number of 0 or more, got {value}");
            }
            Ok(())
        };
        at_least_zero("tokens in per day", self.tokens_in_per_day)?;
        at_least_zero("tokens out per day", self.tokens_out_per_day)?;
        if self.tokens_per_day() <= 0.0 {
            bail!("tokens per day must be more than 0");
        }
        at_least_zero("the hardware price", self.hardware_price)?;
        if !self.lifetime_years.is_finite() || self.lifetime_years <= 0.0 {
            bail!("the lifetime must be more than 0 years, got {}", self.lifetime_years);
        }
        at_least_zero("the idle power", self.idle_watts)?;
        if !(0.0..=24.0).contains(&self.hours_on) {
            bail!("hours on must be between 0 and 24, got {}", self.hours_on);
        }
        at_least_zero("the electricity price", self.electricity_price)?;
        at_least_zero("the energy per prompt token", self.joules_per_input_token)?;
        at_least_zero("the energy per token", self.joules_per_output_token)?;
        if self.clouds.is_empty() {
            bail!("no cloud model to compare with: pass --cloud NAME=INPUT,OUTPUT (prices per million tokens) or --cloud-price-input and --cloud-price-output");
        }
        for cloud in &self.clouds {
            at_least_zero(&format!("{}'s input price", cloud.name), cloud.input_per_million)?;
            at_least_zero(&format!("{}'s output price", cloud.name), cloud.output_per_million)?;
        }
        Ok(())
    }

    pub fn tokens_per_day(&self) -> f64 {
        self.tokens_in_per_day + self.tokens_out_per_day
    }

    fn token_joules_per_day(&self) -> f64 {
        self.tokens_in_per_day * self.joules_per_input_token + self.tokens_out_per_day * self.joules_per_output_token
    }

    /// The idle draw counted whole while the machine is on: answering adds to it, it does
    /// not replace it, since the per-token figures are what a request's window measured.
    fn idle_joules_per_day(&self) -> f64 {
        self.idle_watts * self.hours_on * SECONDS_PER_HOUR
    }

    /// Electricity for a day: the tokens' and the idle machine's.
    fn energy_cost_per_day(&self) -> f64 {
        (self.token_joules_per_day() + self.idle_joules_per_day()) / JOULES_PER_KWH * self.electricity_price
    }

    /// How often the hardware is bought within the three years.
    fn purchases_in_tco(&self) -> f64 {
        // A lifetime of exactly 1.5 years is two purchases, not three from rounding.
        (TCO_YEARS / self.lifetime_years - 1e-9).ceil().max(1.0)
    }

    fn break_even_months(&self, cloud: &CloudModel) -> Option<f64> {
        let saved_per_day = cloud_cost_per_day(self, cloud) - self.energy_cost_per_day();
        (saved_per_day > 0.0).then(|| self.hardware_price / saved_per_day / DAYS_PER_MONTH)
    }
}

fn cloud_cost_per_day(inputs: &Inputs, cloud: &CloudModel) -> f64 {
    (inputs.tokens_in_per_day * cloud.input_per_million + inputs.tokens_out_per_day * cloud.output_per_million) / 1e6
}

/// The local machine's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Local {
    /// The tokens' energy and the idle machine's, Wh a day.
    pub energy_wh_per_day: f64,
    pub token_energy_wh_per_day: f64,
    pub idle_energy_wh_per_day: f64,
    /// With a grid intensity given.
    pub co2e_grams_per_day: Option<f64>,
    /// Electricity, tokens and idle.
    pub energy_cost_per_day: f64,
    /// The hardware's price spread over its lifetime.
    pub hardware_cost_per_day: f64,
    pub cost_per_day: f64,
    /// The tokens' own electricity per million: what one more token costs.
    pub energy_only_per_million: f64,
    /// Everything a day costs (electricity, idle included, and hardware) per million tokens.
    pub with_hardware_per_million: f64,
    /// The hardware (bought again when its lifetime is shorter) and three years of electricity.
    pub three_year_cost: f64,
}

/// One cloud model against the local machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloudComparison {
    #[serde(flatten)]
    pub model: CloudModel,
    /// At the day's mix of input and output tokens.
    pub per_million: f64,
    pub cost_per_day: f64,
    /// Months until the hardware has paid for itself in saved cloud bills; `None` (never)
    /// when the cloud costs no more a day than the local electricity.
    pub break_even_months: Option<f64>,
    pub three_year_cost: f64,
    /// The cloud's three years less the local machine's (negative: the cloud is cheaper).
    pub three_year_saving: f64,
}

/// Break-even months against one cloud model as tokens per day and the electricity price vary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensitivity {
    pub cloud: String,
    pub electricity_prices: Vec<f64>,
    pub rows: Vec<SensitivityRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensitivityRow {
    pub tokens_per_day: f64,
    /// One per electricity price, in the same order; `None` is never.
    pub break_even_months: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub local: Local,
    pub clouds: Vec<CloudComparison>,
    pub sensitivity: Sensitivity,
}

/// Every figure, from inputs that passed [`Inputs::check`].
pub fn compute(inputs: &Inputs) -> Outcome {
    let tokens = inputs.tokens_per_day();
    let token_joules = inputs.token_joules_per_day();
    let idle_joules = inputs.idle_joules_per_day();
    let energy_kwh = (token_joules + idle_joules) / JOULES_PER_KWH;
    let energy_cost_per_day = inputs.energy_cost_per_day();
    let hardware_cost_per_day = inputs.hardware_price / (inputs.lifetime_years * DAYS_PER_YEAR);
    let tco_days = TCO_YEARS * DAYS_PER_YEAR;
    let local_tco = inputs.hardware_price * inputs.purchases_in_tco() + energy_cost_per_day * tco_days;
    let local = Local {
        energy_wh_per_day: (token_joules + idle_joules) / JOULES_PER_WH,
        token_energy_wh_per_day: token_joules / JOULES_PER_WH,
        idle_energy_wh_per_day: idle_joules / JOULES_PER_WH,
        co2e_grams_per_day: inputs.grams_co2e_per_kwh.map(|g| g * energy_kwh),
        energy_cost_per_day,
        hardware_cost_per_day,
        cost_per_day: energy_cost_per_day + hardware_cost_per_day,
        energy_only_per_million: token_joules / JOULES_PER_KWH * inputs.electricity_price / tokens * 1e6,
        with_hardware_per_million: (energy_cost_per_day + hardware_cost_per_day) / tokens * 1e6,
        three_year_cost: local_tco,
    };
    let clouds = inputs
        .clouds
        .iter()
        .map(|cloud| {
            let cost_per_day = cloud_cost_per_day(inputs, cloud);
            CloudComparison {
                model: cloud.clone(),
                per_million: cost_per_day / tokens * 1e6,
                cost_per_day,
                break_even_months: inputs.break_even_months(cloud),
                three_year_cost: cost_per_day * tco_days,
                three_year_saving: cost_per_day * tco_days - local_tco,
            }
        })
        .collect();
    let first = &inputs.clouds[0];
    let rows = TOKEN_FACTORS
        .iter()
        .map(|tokens_factor| {
            let break_even_months = PRICE_FACTORS
                .iter()
                .map(|price_factor| {
                    let varied = Inputs {
                        tokens_in_per_day: inputs.tokens_in_per_day * tokens_factor,
                        tokens_out_per_day: inputs.tokens_out_per_day * tokens_factor,
                        electricity_price: inputs.electricity_price * price_factor,
                        clouds: Vec::new(),
                        ..inputs.clone()
                    };
                    varied.break_even_months(first)
                })
                .collect();
            SensitivityRow { tokens_per_day: tokens * tokens_factor, break_even_months }
        })
        .collect();
    let sensitivity = Sensitivity {
        cloud: first.name.clone(),
        electricity_prices: PRICE_FACTORS.iter().map(|f| inputs.electricity_price * f).collect(),
        rows,
    };
    Outcome { local, clouds, sensitivity }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(name: &str, input: f64, output: f64) -> CloudModel {
        CloudModel { name: name.into(), input_per_million: input, output_per_million: output, as_of: None }
    }

    /// 1M tokens a day half in, half out, at 1 J each; a 3,600 machine for 3 years;
    /// 0.30 a kWh; a cloud at 3 in and 15 out.
    fn claim() -> Inputs {
        Inputs {
            tokens_in_per_day: 500_000.0,
            tokens_out_per_day: 500_000.0,
            hardware_price: 3600.0,
            lifetime_years: 3.0,
            idle_watts: 0.0,
            hours_on: 24.0,
            electricity_price: 0.30,
            joules_per_input_token: 1.0,
            joules_per_output_token: 1.0,
            grams_co2e_per_kwh: Some(400.0),
            clouds: vec![cloud("sonnet", 3.0, 15.0)],
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn break_even_by_hand() {
        // (what changes, cloud per day, local electricity per day, break-even months).
        // 1e6 J = 0.2778 kWh = 0.0833 a day at 0.30; break-even = 3600 / (cloud - 0.0833) / (365/12).
        let energy = 1e6 / 3.6e6 * 0.30;
        let cases: Vec<(&str, Inputs, f64, f64, Option<f64>)> = vec![
            ("the claim", claim(), 9.0, energy, Some(3600.0 / (9.0 - energy) / (365.0 / 12.0))),
            (
                "a cloud cheaper than the electricity never pays",
                Inputs { clouds: vec![cloud("cheap", 0.01, 0.01)], ..claim() },
                0.01,
                energy,
                None,
            ),
            (
                "no energy: the hardware over the whole cloud bill",
                Inputs { joules_per_input_token: 0.0, joules_per_output_token: 0.0, ..claim() },
                9.0,
                0.0,
                Some(400.0 / (365.0 / 12.0)),
            ),
            (
                "10 W idle for 12 hours adds 120 Wh",
                Inputs { idle_watts: 10.0, hours_on: 12.0, ..claim() },
                9.0,
                energy + 0.12 * 0.30,
                Some(3600.0 / (9.0 - energy - 0.036) / (365.0 / 12.0)),
            ),
            ("free hardware pays at once", Inputs { hardware_price: 0.0, ..claim() }, 9.0, energy, Some(0.0)),
            (
                "output-only tokens at the output price",
                Inputs { tokens_in_per_day: 0.0, tokens_out_per_day: 1e6, ..claim() },
                15.0,
                energy,
                Some(3600.0 / (15.0 - energy) / (365.0 / 12.0)),
            ),
        ];
        for (what, inputs, cloud_per_day, energy_per_day, months) in cases {
            inputs.check().unwrap();
            let outcome = compute(&inputs);
            let compared = &outcome.clouds[0];
            assert!(close(compared.cost_per_day, cloud_per_day), "{what}: {}", compared.cost_per_day);
            assert!(close(outcome.local.energy_cost_per_day, energy_per_day), "{what}: {:?}", outcome.local);
            match (compared.break_even_months, months) {
                (Some(got), Some(want)) => assert!(close(got, want), "{what}: {got} months, not {want}"),
                (got, want) => assert_eq!(got, want, "{what}"),
            }
        }
    }

    #[test]
    fn per_million_per_day_and_three_years_by_hand() {
        let outcome = compute(&claim());
        let local = &outcome.local;
        // 1e6 J a day: 277.78 Wh, 0.2778 kWh, 111.1 g at 400 g/kWh, 0.0833 at 0.30.
        assert!(close(local.energy_wh_per_day, 1e6 / 3600.0));
        assert!(close(local.co2e_grams_per_day.unwrap(), 400.0 / 3.6));
        assert!(close(local.energy_only_per_million, 0.25 / 3.0));
        // 3600 / (3 * 365) = 3.2877 a day, and the 0.0833.
        assert!(close(local.hardware_cost_per_day, 3600.0 / 1095.0));
        assert!(close(local.with_hardware_per_million, 3600.0 / 1095.0 + 0.25 / 3.0));
        // 3600 + 1095 * 0.0833 = 3691.25; the cloud 1095 * 9 = 9855.
        assert!(close(local.three_year_cost, 3691.25));
        assert!(close(outcome.clouds[0].three_year_cost, 9855.0));
        assert!(close(outcome.clouds[0].three_year_saving, 9855.0 - 3691.25));
        assert!(close(outcome.clouds[0].per_million, 9.0));
        // A one-year machine is bought three times in three years; a 1.5-year one twice.
        let short = compute(&Inputs { lifetime_years: 1.0, ..claim() });
        assert!(close(short.local.three_year_cost, 3.0 * 3600.0 + 91.25));
        let half = compute(&Inputs { lifetime_years: 1.5, ..claim() });
        assert!(close(half.local.three_year_cost, 2.0 * 3600.0 + 91.25));
        // Prompt tokens at a tenth of the energy: 500k * 0.1 + 500k * 1 = 550 kJ.
        let cheap_prompts = compute(&Inputs { joules_per_input_token: 0.1, ..claim() });
        assert!(close(cheap_prompts.local.token_energy_wh_per_day, 550_000.0 / 3600.0));
    }

    #[test]
    fn sensitivity_varies_tokens_and_price() {
        let inputs = Inputs { clouds: vec![cloud("a", 3.0, 15.0), cloud("b", 1.0, 1.0)], ..claim() };
        let table = compute(&inputs).sensitivity;
        assert_eq!(table.cloud, "a", "against the first cloud model");
        assert_eq!(table.electricity_prices, vec![0.15, 0.30, 0.60]);
        assert_eq!(table.rows.iter().map(|r| r.tokens_per_day).collect::<Vec<_>>(), vec![1e5, 5e5, 1e6, 2e6, 1e7]);
        // The middle cell is the headline figure; ten times the tokens, a tenth of the time.
        let middle = table.rows[2].break_even_months[1].unwrap();
        assert!(close(middle, compute(&inputs).clouds[0].break_even_months.unwrap()));
        let tenfold = table.rows[4].break_even_months[1].unwrap();
        assert!(close(tenfold, 3600.0 / (90.0 - 10.0 / 12.0) / (365.0 / 12.0)));
        // Dearer electricity, later break-even.
        let row = &table.rows[2].break_even_months;
        assert!(row[0].unwrap() < row[1].unwrap() && row[1].unwrap() < row[2].unwrap());
        // At 100 J a token the electricity outgrows the cloud: 1e8 J = 27.8 kWh = 8.33 a day,
        // under 9.0 at 0.30 but over it at 0.60.
        let hungry = compute(&Inputs { joules_per_input_token: 100.0, joules_per_output_token: 100.0, ..claim() });
        assert!(hungry.sensitivity.rows[2].break_even_months[1].is_some());
        assert_eq!(hungry.sensitivity.rows[2].break_even_months[2], None);
    }

    #[test]
    fn bad_inputs_say_which() {
        let cases: Vec<(Inputs, &str)> = vec![
            (
                Inputs { tokens_in_per_day: 0.0, tokens_out_per_day: 0.0, ..claim() },
                "tokens per day must be more than 0",
            ),
            (Inputs { hardware_price: -1.0, ..claim() }, "the hardware price must be a number of 0 or more"),
            (Inputs { electricity_price: f64::NAN, ..claim() }, "the electricity price must be"),
            (Inputs { lifetime_years: 0.0, ..claim() }, "the lifetime must be more than 0 years"),
            (Inputs { hours_on: 25.0, ..claim() }, "hours on must be between 0 and 24"),
            (Inputs { clouds: Vec::new(), ..claim() }, "no cloud model to compare with"),
            (Inputs { clouds: vec![cloud("x", -3.0, 1.0)], ..claim() }, "x's input price must be"),
            (Inputs { clouds: vec![cloud("x", 3.0, f64::INFINITY)], ..claim() }, "x's output price must be"),
        ];
        for (inputs, message) in cases {
            let error = inputs.check().unwrap_err().to_string();
            assert!(error.starts_with(message), "{error:?} does not start with {message:?}");
            assert!(!error.contains('\n'), "{error:?}");
        }
    }
}

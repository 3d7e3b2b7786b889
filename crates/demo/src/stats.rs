//! Live flight statistics: counts per carrier and per origin, cancellations, and
//! departure-delay distributions, plus the compact table the analytics consumer prints.
//!
//! Owns the aggregation only; it never talks to the server. Delays are whole minutes and
//! may be negative (early departures), so histograms store `delay + DELAY_OFFSET`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::data::FlightView;

/// Added to a delay before it goes into a histogram, which only takes positive values.
const DELAY_OFFSET: i64 = 1_000;
/// Largest delay tracked by the histograms, in minutes; larger ones are clamped.
const DELAY_MAX: i64 = 3_000;

/// Aggregates of one group of flights (one carrier, one origin, or all).
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) flights: u64,
    pub(crate) cancelled: u64,
    pub(crate) delay_sum: i64,
    delays: Option<Histogram<u64>>,
}

impl Default for Group {
    fn default() -> Self {
        let high = u64::try_from(DELAY_OFFSET + DELAY_MAX).unwrap_or(u64::MAX);
        Group {
            flights: 0,
            cancelled: 0,
            delay_sum: 0,
            // Three significant figures keep every stored value below 2,048 exact, so
            // quantiles of delays up to 1,047 minutes are whole minutes, not bucket edges.
            delays: Histogram::new_with_max(high, 3).ok(),
        }
    }
}

impl Group {
    fn add(&mut self, flight: &FlightView) {
        self.flights += 1;
        if flight.dep_time.is_none() {
            self.cancelled += 1;
        }
        if let Some(delay) = flight.dep_delay {
            self.delay_sum += delay;
            let shifted = (delay.clamp(-DELAY_OFFSET + 1, DELAY_MAX) + DELAY_OFFSET).unsigned_abs();
            if let Some(histogram) = &mut self.delays {
                histogram.saturating_record(shifted);
            }
        }
    }

    /// Flights with a departure delay.
    pub(crate) fn delayed_count(&self) -> u64 {
        self.delays.as_ref().map_or(0, Histogram::len)
    }

    /// Mean departure delay in minutes.
    pub(crate) fn mean_delay(&self) -> f64 {
        match self.delayed_count() {
            0 => 0.0,
            n => self.delay_sum as f64 / n as f64,
        }
    }

    /// A departure-delay quantile in minutes.
    pub(crate) fn delay_quantile(&self, quantile: f64) -> i64 {
        let Some(histogram) = self.delays.as_ref().filter(|h| !h.is_empty()) else {
            return 0;
        };
        i64::try_from(histogram.value_at_quantile(quantile)).unwrap_or(i64::MAX) - DELAY_OFFSET
    }
}

/// Statistics over every flight seen.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    pub(crate) all: Group,
    pub(crate) by_carrier: BTreeMap<String, Group>,
    pub(crate) by_origin: BTreeMap<String, Group>,
}

/// The totals of [`Stats`] that checks compare, as sent from a consumer process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Totals {
    pub(crate) flights: u64,
    pub(crate) cancelled: u64,
    pub(crate) dep_delay_sum: i64,
    pub(crate) dep_delay_count: u64,
    pub(crate) by_carrier: BTreeMap<String, u64>,
    pub(crate) by_origin: BTreeMap<String, u64>,
}

impl Stats {
    pub(crate) fn add(&mut self, flight: &FlightView) {
        self.all.add(flight);
        self.by_carrier
            .entry(flight.carrier.clone())
            .or_default()
            .add(flight);
        self.by_origin
            .entry(flight.origin.clone())
            .or_default()
            .add(flight);
    }

    pub(crate) fn totals(&self) -> Totals {
        Totals {
            flights: self.all.flights,
            cancelled: self.all.cancelled,
            dep_delay_sum: self.all.delay_sum,
            dep_delay_count: self.all.delayed_count(),
            by_carrier: counts(&self.by_carrier),
            by_origin: counts(&self.by_origin),
        }
    }

    /// The compact table: one row per origin, then the `carriers` busiest carriers.
    pub(crate) fn table(&self, carriers: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<8} {:>9} {:>9} {:>10} {:>5} {:>5} {:>5}",
            "", "flights", "cancelled", "mean delay", "p50", "p90", "p99"
        );
        let mut busiest: Vec<_> = self.by_carrier.iter().collect();
        busiest.sort_by(|a, b| b.1.flights.cmp(&a.1.flights).then(a.0.cmp(b.0)));
        let rows = self
            .by_origin
            .iter()
            .map(|(name, g)| (format!("from {name}"), g))
            .chain(
                busiest
                    .into_iter()
                    .take(carriers)
                    .map(|(n, g)| (n.clone(), g)),
            )
            .chain(std::iter::once(("all".to_owned(), &self.all)));
        for (name, group) in rows {
            let _ = writeln!(
                out,
                "{:<8} {:>9} {:>9} {:>9.1}m {:>5} {:>5} {:>5}",
                name,
                thousands(group.flights),
                thousands(group.cancelled),
                group.mean_delay(),
                group.delay_quantile(0.5),
                group.delay_quantile(0.9),
                group.delay_quantile(0.99),
            );
        }
        out
    }
}

fn counts(groups: &BTreeMap<String, Group>) -> BTreeMap<String, u64> {
    groups.iter().map(|(k, g)| (k.clone(), g.flights)).collect()
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flight(carrier: &str, origin: &str, delay: Option<i64>) -> FlightView {
        FlightView {
            month: 1,
            day: 1,
            dep_time: delay.map(|_| 900),
            dep_delay: delay,
            carrier: carrier.to_owned(),
            origin: origin.to_owned(),
        }
    }

    #[test]
    fn groups_count_flights_cancellations_and_negative_delays() {
        let mut stats = Stats::default();
        stats.add(&flight("UA", "EWR", Some(-5)));
        stats.add(&flight("UA", "JFK", Some(15)));
        stats.add(&flight("B6", "JFK", None));
        let totals = stats.totals();
        assert_eq!(totals.flights, 3);
        assert_eq!(totals.cancelled, 1);
        assert_eq!(totals.dep_delay_sum, 10);
        assert_eq!(totals.dep_delay_count, 2);
        assert_eq!(totals.by_carrier["UA"], 2);
        assert_eq!(totals.by_origin["JFK"], 2);
        assert!((stats.all.mean_delay() - 5.0).abs() < 1e-9);
        assert_eq!(stats.by_origin["EWR"].delay_quantile(0.5), -5);
        assert!(stats.table(5).contains("from JFK"));
    }

    #[test]
    fn delay_quantiles_are_exact_minutes() {
        let mut stats = Stats::default();
        for delay in 1..=100 {
            stats.add(&flight("UA", "EWR", Some(delay)));
        }
        stats.add(&flight("UA", "EWR", Some(-7)));
        let group = &stats.by_origin["EWR"];
        assert_eq!(group.delay_quantile(0.0), -7);
        assert_eq!(group.delay_quantile(0.5), 50);
        assert_eq!(group.delay_quantile(0.9), 90);
        assert_eq!(group.delay_quantile(0.99), 99);
        assert_eq!(group.delay_quantile(1.0), 100);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(336_776), "336,776");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}

//! The demo's input: the 2013 New York flights and hourly weather, read from the project's
//! zstd-compressed CSV copies in `data/`, turned into JSON records with event times, and the
//! totals every check compares against, computed from the same rows.
//!
//! Owns parsing (`NA` is a missing value), the evenly spread sample behind `--limit`, the
//! chronological order records are produced in, and [`Expected`]. The totals published for
//! the full file are kept here too, so a full run also checks the file itself.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{Context, bail};
use rivulet_format::partition_for_key;
use serde::{Deserialize, Deserializer, Serialize};

use crate::event_time::{new_york_to_utc_ms, parse_utc_ms};

/// Partitions of the `flights` topic.
pub(crate) const FLIGHT_PARTITIONS: u32 = 8;

/// Totals published for the full flights file.
pub(crate) mod known {
    /// Every departure in the file.
    pub(crate) const FLIGHTS: u64 = 336_776;
    /// Flights without a departure time.
    pub(crate) const CANCELLED: u64 = 8_255;
    /// Flights per origin airport.
    pub(crate) const ORIGINS: [(&str, u64); 3] =
        [("EWR", 120_835), ("JFK", 111_279), ("LGA", 104_662)];
    /// The three largest carriers.
    pub(crate) const CARRIERS: [(&str, u64); 3] = [("UA", 58_665), ("B6", 54_635), ("EV", 54_173)];
}

/// One row of `flights.csv`, as produced (JSON, `null` for `NA`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Flight {
    pub(crate) year: i64,
    pub(crate) month: u32,
    pub(crate) day: u32,
    #[serde(deserialize_with = "na")]
    pub(crate) dep_time: Option<u32>,
    pub(crate) sched_dep_time: u32,
    #[serde(deserialize_with = "na")]
    pub(crate) dep_delay: Option<i64>,
    #[serde(deserialize_with = "na")]
    pub(crate) arr_time: Option<u32>,
    pub(crate) sched_arr_time: u32,
    #[serde(deserialize_with = "na")]
    pub(crate) arr_delay: Option<i64>,
    pub(crate) carrier: String,
    pub(crate) flight: u32,
    #[serde(deserialize_with = "na")]
    pub(crate) tailnum: Option<String>,
    pub(crate) origin: String,
    pub(crate) dest: String,
    #[serde(deserialize_with = "na")]
    pub(crate) air_time: Option<u32>,
    pub(crate) distance: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) time_hour: String,
}

impl Flight {
    /// Cancelled flights are those that never departed.
    pub(crate) fn cancelled(&self) -> bool {
        self.dep_time.is_none()
    }

    /// Scheduled departure in UTC ms, from the local date and `sched_dep_time`.
    pub(crate) fn event_time_ms(&self) -> i64 {
        new_york_to_utc_ms(
            self.year,
            self.month,
            self.day,
            self.sched_dep_time / 100,
            self.sched_dep_time % 100,
        )
    }
}

/// What consumers read back from a flight record: the fields they aggregate.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct FlightView {
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) dep_time: Option<u32>,
    pub(crate) dep_delay: Option<i64>,
    pub(crate) carrier: String,
    pub(crate) origin: String,
}

/// A record ready to produce.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) topic: &'static str,
    pub(crate) key: String,
    pub(crate) timestamp_ms: i64,
    pub(crate) value: Vec<u8>,
}

/// Totals of the rows in use, which every check compares against.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Expected {
    pub(crate) flights: u64,
    pub(crate) weather: u64,
    pub(crate) cancelled: u64,
    pub(crate) by_origin: BTreeMap<String, u64>,
    pub(crate) by_carrier: BTreeMap<String, u64>,
    /// Flights per partition of `flights` under the key partitioner.
    pub(crate) by_partition: BTreeMap<u32, u64>,
    /// Flights on 2013-07-04, New York local date.
    pub(crate) july_fourth: u64,
    /// Sum and count of `dep_delay` over flights that have one.
    pub(crate) dep_delay_sum: i64,
    pub(crate) dep_delay_count: u64,
    /// Rows whose derived event time disagrees with `time_hour` plus the minute.
    pub(crate) time_mismatches: u64,
    /// Whether these are the full files (no `--limit`).
    pub(crate) full: bool,
}

/// The demo's input, sampled and in production order.
#[derive(Debug)]
pub(crate) struct Dataset {
    /// Flights and weather merged in event-time order.
    pub(crate) events: Vec<Event>,
    pub(crate) expected: Expected,
    /// Bytes of JSON values.
    pub(crate) value_bytes: u64,
}

/// Reads the data files in `dir`, keeping an even spread of about `limit` flights (and the
/// same share of weather rows) when a limit is given.
pub(crate) fn load(dir: &Path, limit: Option<u64>) -> anyhow::Result<Dataset> {
    let mut flights: Vec<Flight> = read_csv(&dir.join("flights.csv.zst"))?;
    if flights.is_empty() {
        bail!("{} holds no flights", dir.join("flights.csv.zst").display());
    }
    let total = u64::try_from(flights.len())?;
    let stride = match limit {
        Some(limit) if limit < total => total.div_ceil(limit.max(1)),
        _ => 1,
    };
    keep_every(&mut flights, stride);
    let weather = read_weather(&dir.join("weather.csv.zst"), stride)?;

    let mut expected = Expected {
        full: stride == 1,
        weather: u64::try_from(weather.len())?,
        ..Expected::default()
    };
    let mut events = Vec::with_capacity(flights.len() + weather.len());
    for flight in &flights {
        tally_expected(&mut expected, flight)?;
        events.push(Event {
            topic: "flights",
            key: flight.carrier.clone(),
            timestamp_ms: flight.event_time_ms(),
            value: serde_json::to_vec(flight)?,
        });
    }
    events.extend(weather);
    // The file runs month 1, 10, 11, 12, 2, ...; a stable sort gives a chronological stream
    // with the file's order kept among equal times.
    events.sort_by_key(|e| e.timestamp_ms);
    let value_bytes = events.iter().map(|e| e.value.len() as u64).sum();
    Ok(Dataset {
        events,
        expected,
        value_bytes,
    })
}

/// Adds one flight to the totals.
fn tally_expected(expected: &mut Expected, flight: &Flight) -> anyhow::Result<()> {
    expected.flights += 1;
    *expected.by_origin.entry(flight.origin.clone()).or_default() += 1;
    *expected
        .by_carrier
        .entry(flight.carrier.clone())
        .or_default() += 1;
    let partition = partition_for_key(flight.carrier.as_bytes(), FLIGHT_PARTITIONS);
    *expected.by_partition.entry(partition).or_default() += 1;
    if flight.cancelled() {
        expected.cancelled += 1;
    }
    if (flight.month, flight.day) == (7, 4) {
        expected.july_fourth += 1;
    }
    if let Some(delay) = flight.dep_delay {
        expected.dep_delay_sum += delay;
        expected.dep_delay_count += 1;
    }
    let hour_ms = parse_utc_ms(&flight.time_hour)
        .with_context(|| format!("bad time_hour {:?}", flight.time_hour))?;
    if hour_ms + i64::from(flight.minute) * 60_000 != flight.event_time_ms() {
        expected.time_mismatches += 1;
    }
    Ok(())
}

/// Keeps rows 0, stride, 2 * stride, ... of the file.
fn keep_every<T>(rows: &mut Vec<T>, stride: u64) {
    if stride <= 1 {
        return;
    }
    let mut index = 0u64;
    rows.retain(|_| {
        let keep = index.is_multiple_of(stride);
        index += 1;
        keep
    });
}

/// Reads every row of a zstd-compressed CSV file.
fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let mut reader = csv::Reader::from_reader(open_zstd(path)?);
    let mut rows = Vec::new();
    for (line, row) in reader.deserialize().enumerate() {
        rows.push(row.with_context(|| format!("{} row {}", path.display(), line + 1))?);
    }
    Ok(rows)
}

/// Reads `weather.csv.zst` into weather records keyed by airport, every `stride`th row,
/// with numbers as JSON numbers and `NA` as `null`.
fn read_weather(path: &Path, stride: u64) -> anyhow::Result<Vec<Event>> {
    let mut reader = csv::Reader::from_reader(open_zstd(path)?);
    let headers = reader.headers()?.clone();
    let mut events = Vec::new();
    for (index, row) in reader.records().enumerate() {
        let row = row.with_context(|| format!("{} row {}", path.display(), index + 1))?;
        if !(index as u64).is_multiple_of(stride) {
            continue;
        }
        let mut object = serde_json::Map::new();
        for (name, field) in headers.iter().zip(row.iter()) {
            object.insert(name.to_owned(), json_field(name, field));
        }
        let (Some(origin), Some(time_hour)) = (row.get(0), row.get(14)) else {
            bail!(
                "{} row {}: missing origin or time_hour",
                path.display(),
                index + 1
            );
        };
        let timestamp_ms = parse_utc_ms(time_hour)
            .with_context(|| format!("{} row {}: bad time_hour", path.display(), index + 1))?;
        events.push(Event {
            topic: "weather",
            key: origin.to_owned(),
            timestamp_ms,
            value: serde_json::to_vec(&object)?,
        });
    }
    Ok(events)
}

/// A CSV field as JSON: `NA` is null, numbers are numbers except in text columns.
fn json_field(name: &str, field: &str) -> serde_json::Value {
    if field == "NA" {
        return serde_json::Value::Null;
    }
    if name != "origin" && name != "time_hour" {
        if let Ok(n) = field.parse::<i64>() {
            return n.into();
        }
        if let Some(n) = field
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
        {
            return n.into();
        }
    }
    field.into()
}

fn open_zstd(path: &Path) -> anyhow::Result<zstd::Decoder<'static, BufReader<File>>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    zstd::Decoder::new(file).with_context(|| format!("cannot decompress {}", path.display()))
}

/// Deserializes an optional CSV field, with `NA` (or nothing) for a missing value.
fn na<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    if text.is_empty() || text == "NA" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "year,month,day,dep_time,sched_dep_time,dep_delay,arr_time,\
        sched_arr_time,arr_delay,carrier,flight,tailnum,origin,dest,air_time,distance,hour,\
        minute,time_hour\n";

    fn parse(rows: &str) -> Vec<Flight> {
        let text = format!("{HEADER}{rows}");
        csv::Reader::from_reader(text.as_bytes())
            .deserialize()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn na_fields_become_null_and_cancelled_flights_have_no_departure() {
        let flights = parse(
            "2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z\n\
             2013,1,1,NA,1630,NA,NA,1815,NA,EV,4308,NA,EWR,RDU,NA,416,16,30,2013-01-01T21:00:00Z\n",
        );
        assert!(!flights[0].cancelled());
        assert!(flights[1].cancelled());
        assert_eq!(flights[1].tailnum, None);
        let json = serde_json::to_string(&flights[1]).unwrap();
        assert!(json.contains("\"dep_time\":null"), "{json}");
        let view: FlightView = serde_json::from_str(&json).unwrap();
        assert_eq!(view.carrier, "EV");
        assert_eq!(view.dep_time, None);
    }

    #[test]
    fn event_time_agrees_with_time_hour() {
        let mut expected = Expected::default();
        for flight in parse(
            "2013,7,4,1,2359,2,830,819,11,B6,1,N1,JFK,BOS,40,187,23,59,2013-07-05T03:00:00Z\n",
        ) {
            tally_expected(&mut expected, &flight).unwrap();
        }
        assert_eq!(expected.time_mismatches, 0);
        assert_eq!(expected.july_fourth, 1);
    }

    #[test]
    fn a_stride_keeps_an_even_spread() {
        let mut rows: Vec<u32> = (0..10).collect();
        keep_every(&mut rows, 3);
        assert_eq!(rows, [0, 3, 6, 9]);
    }

    #[test]
    fn weather_fields_are_typed() {
        assert_eq!(json_field("temp", "39.02"), serde_json::json!(39.02));
        assert_eq!(json_field("wind_dir", "270"), serde_json::json!(270));
        assert_eq!(json_field("wind_gust", "NA"), serde_json::Value::Null);
        assert_eq!(json_field("origin", "EWR"), serde_json::json!("EWR"));
    }
}

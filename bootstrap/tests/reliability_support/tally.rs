//! Counts what a function printed on stdout while it runs, line by line, without keeping the
//! lines: Forwarder metric lines (`{"m":...}`) by name, the values of one custom metric, trace
//! lines (`{"traces":...}`) and their spans by name. A long run prints hundreds of megabytes;
//! only the counts stay in memory.
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Metric lines by metric name.
    pub metrics: HashMap<String, u64>,
    /// How many times each value of the watched custom metric was printed.
    pub custom_values: HashMap<i64, u32>,
    pub trace_lines: u64,
    /// Spans by name, over every trace line.
    pub spans: HashMap<String, u64>,
    /// Trace lines whose spans are not one `aws.lambda` span and one inferred span (or more).
    pub malformed_traces: u64,
    /// Numbered lines (`flood-line <n> ...`, anywhere in the line) seen, and those whose number
    /// was not the one after the previous line's.
    pub numbered_lines: u64,
    pub numbered_out_of_order: u64,
    pub other_lines: u64,
    pub bytes: u64,
}

/// The marker of a numbered line.
pub const NUMBERED_LINE: &[u8] = b"flood-line ";

impl Tally {
    pub fn metric(&self, name: &str) -> u64 {
        self.metrics.get(name).copied().unwrap_or(0)
    }

    pub fn spans_named(&self, name: &str) -> u64 {
        self.spans.get(name).copied().unwrap_or(0)
    }

    pub fn total_spans(&self) -> u64 {
        self.spans.values().sum()
    }

    /// Values in `0..n` printed other than exactly once: `(lost, duplicated)`.
    pub fn custom_losses(&self, n: u64) -> (u64, u64) {
        let mut lost = 0;
        let mut duplicated = 0;
        for i in 0..n as i64 {
            match self.custom_values.get(&i).copied().unwrap_or(0) {
                0 => lost += 1,
                1 => {}
                more => duplicated += u64::from(more - 1),
            }
        }
        (lost, duplicated)
    }
}

/// A stream being tallied on its own thread.
#[derive(Clone)]
pub struct TalliedStream(Arc<Mutex<Tally>>);

impl TalliedStream {
    /// Tallies `stream`; `custom_metric` is the metric whose integer values are counted.
    pub fn spawn(stream: impl Read + Send + 'static, custom_metric: &str) -> Self {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let shared = Arc::clone(&tally);
        let custom_metric = custom_metric.to_owned();
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 20, stream);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let mut tally = shared.lock().unwrap();
                tally.bytes += line.len() as u64;
                count_line(&mut tally, &line, &custom_metric);
                line.clear();
            }
        });
        Self(tally)
    }

    pub fn snapshot(&self) -> Tally {
        self.0.lock().unwrap().clone()
    }

    /// Waits until `done` holds of the tally; returns it either way.
    pub fn wait_until(&self, limit: Duration, done: impl Fn(&Tally) -> bool) -> Tally {
        let start = Instant::now();
        loop {
            let tally = self.snapshot();
            if done(&tally) || start.elapsed() > limit {
                return tally;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn count_line(tally: &mut Tally, line: &[u8], custom_metric: &str) {
    if line.starts_with(b"{\"m\":") {
        let Ok(json) = serde_json::from_slice::<Value>(line) else {
            tally.other_lines += 1;
            return;
        };
        let name = json["m"].as_str().unwrap_or_default();
        if name == custom_metric {
            if let Some(v) = json["v"].as_f64() {
                *tally.custom_values.entry(v as i64).or_default() += 1;
            }
        }
        *tally.metrics.entry(name.to_owned()).or_default() += 1;
    } else if line.starts_with(b"{\"traces\":") {
        let Ok(json) = serde_json::from_slice::<Value>(line) else {
            tally.other_lines += 1;
            return;
        };
        tally.trace_lines += 1;
        let mut lambda_spans = 0;
        let mut total = 0;
        for trace in json["traces"].as_array().into_iter().flatten() {
            for span in trace.as_array().into_iter().flatten() {
                let name = span["name"].as_str().unwrap_or_default();
                lambda_spans += u32::from(name == "aws.lambda");
                total += 1;
                *tally.spans.entry(name.to_owned()).or_default() += 1;
            }
        }
        if lambda_spans != 1 || total < 2 {
            tally.malformed_traces += 1;
        }
    } else if let Some(at) = line.windows(NUMBERED_LINE.len()).position(|w| w == NUMBERED_LINE) {
        let digits: Vec<u8> = line[at + NUMBERED_LINE.len()..]
            .iter()
            .copied()
            .take_while(u8::is_ascii_digit)
            .collect();
        let number: Option<u64> = std::str::from_utf8(&digits).ok().and_then(|d| d.parse().ok());
        if number != Some(tally.numbered_lines) {
            tally.numbered_out_of_order += 1;
        }
        tally.numbered_lines += 1;
    } else {
        tally.other_lines += 1;
    }
}

//! Measurements, percentiles and the result tables.

use std::time::Duration;

/// What one side of one scenario did in its measured window.
#[derive(Debug, Default, Clone)]
pub struct Measurement {
    /// Events written or read.
    pub events: u64,
    /// Length of the measured window.
    pub elapsed: Duration,
    /// Duration of each operation (an append, or one page read).
    pub latencies: Vec<Duration>,
}

impl Measurement {
    pub fn events_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 { self.events as f64 / secs } else { 0.0 }
    }

    /// The `p`-quantile (0 < p <= 1) of the latencies in milliseconds, by nearest rank.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        percentile(&sorted, p).as_secs_f64() * 1000.0
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One scenario measured through the library and against the floors.
pub struct Row {
    pub name: String,
    pub library: Measurement,
    /// The plain floor: event rows only.
    pub floor: Measurement,
    /// The floor that writes the same rows as the library (appends only).
    pub same_rows: Option<Measurement>,
}

impl Row {
    /// Library events/s over the plain floor's.
    pub fn ratio(&self) -> f64 {
        ratio(&self.library, &self.floor)
    }

    /// Library events/s over the same-rows floor's, when measured.
    pub fn same_rows_ratio(&self) -> Option<f64> {
        self.same_rows.as_ref().map(|f| ratio(&self.library, f))
    }

    fn cells(&self) -> [String; COLUMNS] {
        let ms = |m: &Measurement, p| format!("{:.2}", m.percentile_ms(p));
        let same = self.same_rows.as_ref();
        [
            self.name.clone(),
            format!("{:.0}", self.library.events_per_sec()),
            format!("{:.0}", self.floor.events_per_sec()),
            format!("{:.2}", self.ratio()),
            same.map_or("-".into(), |f| format!("{:.0}", f.events_per_sec())),
            self.same_rows_ratio().map_or("-".into(), |r| format!("{r:.2}")),
            ms(&self.library, 0.50),
            ms(&self.library, 0.99),
            ms(&self.floor, 0.50),
            ms(&self.floor, 0.99),
        ]
    }
}

fn ratio(library: &Measurement, floor: &Measurement) -> f64 {
    let floor = floor.events_per_sec();
    if floor > 0.0 { library.events_per_sec() / floor } else { 0.0 }
}

const COLUMNS: usize = 10;

const HEADERS: [&str; COLUMNS] = [
    "scenario",
    "library ev/s",
    "floor ev/s",
    "lib/floor",
    "same-rows floor ev/s",
    "lib/same-rows",
    "lib p50 ms",
    "lib p99 ms",
    "floor p50 ms",
    "floor p99 ms",
];

/// The table aligned for a terminal.
pub fn text_table(rows: &[Row]) -> String {
    let cells: Vec<[String; COLUMNS]> = rows.iter().map(Row::cells).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |row: &[String]| {
        let mut out = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i == 0 {
                out.push_str(&format!("{c:<w$}"));
            } else {
                out.push_str(&format!("  {c:>w$}"));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(&HEADERS.map(String::from));
    out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
    out.push('\n');
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

/// The same table as Markdown.
pub fn markdown_table(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n", HEADERS.join(" | "));
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        out.push_str(&format!("| {} |\n", row.cells().join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms = |n| Duration::from_millis(n);
        let sorted: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 0.50), ms(50));
        assert_eq!(percentile(&sorted, 0.99), ms(99));
        assert_eq!(percentile(&[ms(7)], 0.99), ms(7));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}

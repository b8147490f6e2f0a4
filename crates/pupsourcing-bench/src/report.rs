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
    /// Events per second over the measured window.
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
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// Through the library.
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

    /// The progress line of a throughput row: both sides' events/s and their ratio.
    pub fn throughput_line(&self) -> String {
        format!(
            "{}: library {:.0} ev/s, floor {:.0} ev/s, ratio {:.2}",
            self.name,
            self.library.events_per_sec(),
            self.floor.events_per_sec(),
            self.ratio()
        )
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
fn text_table(rows: &[Row]) -> String {
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
fn markdown_table(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n", HEADERS.join(" | "));
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        out.push_str(&format!("| {} |\n", row.cells().join(" | ")));
    }
    out
}

/// What a run measured: the setup, one row per scenario, notes and the goals checked.
#[derive(Debug, Clone)]
pub struct Report {
    /// The machine, server, settings and schemas of the run.
    pub header: String,
    /// The scenarios, in the order they ran.
    pub rows: Vec<Row>,
    /// Notes of the orchestrator workloads.
    pub notes: Vec<String>,
    /// The goals of the issues, checked against this run (MET / MISSED).
    pub goals: String,
    /// The load average when the run ended.
    pub load_average_at_end: String,
}

impl Report {
    /// For a terminal: the header, the aligned table, the notes and the goals.
    pub fn text(&self) -> String {
        let mut out = format!("{}\n\n{}\n", self.header, text_table(&self.rows));
        for note in &self.notes {
            out.push_str(&format!("{note}\n\n"));
        }
        out.push_str(&format!("{}load average at end: {}\n", self.goals, self.load_average_at_end));
        out
    }

    /// For docs/benchmarks.md: the header as a code block, the table in Markdown, the notes
    /// and the goals.
    pub fn markdown(&self) -> String {
        let mut out = format!("```text\n{}\n```\n\n", self.header);
        out.push_str("Latencies: per append, or per page read.\n\n");
        out.push_str(&markdown_table(&self.rows));
        for note in &self.notes {
            out.push_str(&format!("\n{note}\n"));
        }
        out.push_str(&format!(
            "\n```text\n{}load average at end: {}\n```\n",
            self.goals, self.load_average_at_end
        ));
        out
    }

    /// For scripts: every row's rates, ratios and latencies.
    pub fn json(&self) -> serde_json::Value {
        let side = |m: &Measurement| {
            serde_json::json!({
                "events": m.events,
                "seconds": m.elapsed.as_secs_f64(),
                "events_per_sec": m.events_per_sec(),
                "p50_ms": m.percentile_ms(0.50),
                "p99_ms": m.percentile_ms(0.99),
            })
        };
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "scenario": r.name,
                    "library": side(&r.library),
                    "floor": side(&r.floor),
                    "ratio": r.ratio(),
                    "same_rows_floor": r.same_rows.as_ref().map(side),
                    "same_rows_ratio": r.same_rows_ratio(),
                })
            })
            .collect();
        serde_json::json!({
            "header": self.header,
            "rows": rows,
            "notes": self.notes,
            "goals": self.goals.lines().map(str::trim).filter(|l| !l.is_empty() && *l != "Goals:").collect::<Vec<_>>(),
            "load_average_at_end": self.load_average_at_end,
        })
    }
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

//! Read topics from earliest to end through an ordered [`Scan`] and count rows and value
//! bytes: the engine alone, without DuckDB or Python, for profiling.
//!
//! ```text
//! cargo run --release -p kafkars-core --example scan_count -- <topics> [brokers] [max_buffer_bytes]
//! ```

use std::time::Instant;

use kafkars_core::{ClientSettings, Scan, ScanOptions, ScanSelection, StartPolicy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let topics = args
        .next()
        .ok_or("usage: scan_count <topics> [brokers] [max_buffer_bytes]")?;
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:19092".into());
    let mut options = ScanOptions::default();
    if let Some(budget) = args.next() {
        options.max_buffer_bytes = budget.parse()?;
    }
    // Extra librdkafka properties for experiments: SCAN_CONFIG="key=value,key=value".
    let extra: Vec<(String, String)> = std::env::var("SCAN_CONFIG")
        .unwrap_or_default()
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let settings = ClientSettings::builder()
        .brokers(brokers)
        .properties(extra)
        .build()?;
    let selection = ScanSelection::for_topic_list(&topics, StartPolicy::Earliest, None, None)?;
    let started = Instant::now();
    let mut scan = Scan::open(&settings, &selection, options)?;
    let opened = started.elapsed();
    let (mut rows, mut bytes) = (0usize, 0usize);
    let batch: usize = std::env::var("SCAN_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(2048);
    let mut out = Vec::with_capacity(batch);
    let mut peak_buffered = 0;
    while !scan.is_done() {
        out.clear();
        let deadline = std::env::var("SCAN_DEADLINE_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(|ms| Instant::now() + std::time::Duration::from_millis(ms));
        scan.next_records(batch, &mut out, deadline)?;
        peak_buffered = peak_buffered.max(scan.buffered_bytes());
        rows += out.len();
        bytes += out
            .iter()
            .map(|r| r.value().map_or(0, <[u8]>::len))
            .sum::<usize>();
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("peak buffered (as charged): {} MiB", peak_buffered >> 20);
    println!(
        "{rows} rows, {bytes} value bytes in {seconds:.3} s (open {:.3} s): {:.2} M rows/s, {:.1} MB/s",
        opened.as_secs_f64(),
        rows as f64 / seconds / 1e6,
        bytes as f64 / seconds / 1e6
    );
    Ok(())
}

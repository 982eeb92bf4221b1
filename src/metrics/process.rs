//! The standard `process_*` metrics every Prometheus exporter has (the names
//! and units of client_golang's process collector), read from `/proc` at
//! scrape time.
//!
//! Linux only: elsewhere the collector writes nothing. A file that cannot be
//! read drops only the metrics taken from it, never the scrape.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds` and
/// `process_start_time_seconds` of this process.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// What one scrape read; `None` where the source was unreadable.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
}

/// `/proc/<pid>/stat` counts CPU time and start time in clock ticks of
/// `USER_HZ`, which Linux fixes at 100 for user space on every architecture
/// (`sysconf(_SC_CLK_TCK)`, which would need `unsafe`, returns the same).
const USER_HZ: f64 = 100.0;

// === impl ProcessCollector ===

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let s = Sample::read();
        if let Some(v) = s.cpu_seconds {
            let help = "Total user and system CPU time spent in seconds";
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                help,
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(v).encode(metric)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.virtual_bytes.map(|v| v as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                s.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                s.max_fds.map(|v| v as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                s.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(v) = value {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(v).encode(metric)?;
            }
        }
        Ok(())
    }
}

// === impl Sample ===

impl Sample {
    #[cfg(not(target_os = "linux"))]
    fn read() -> Self {
        Self::default()
    }

    #[cfg(target_os = "linux")]
    fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let stat = read("/proc/self/stat");
        let stat = stat.as_deref().and_then(Stat::parse);
        let boot_time = read("/proc/stat").as_deref().and_then(boot_time_seconds);
        Self {
            cpu_seconds: stat.as_ref().map(|s| s.cpu_ticks as f64 / USER_HZ),
            resident_bytes: read("/proc/self/status")
                .as_deref()
                .and_then(resident_bytes),
            virtual_bytes: stat.as_ref().map(|s| s.virtual_bytes),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count() as u64),
            max_fds: read("/proc/self/limits")
                .as_deref()
                .and_then(max_open_files),
            start_time_seconds: stat
                .zip(boot_time)
                .map(|(s, boot)| boot as f64 + s.start_ticks as f64 / USER_HZ),
        }
    }
}

/// The fields of `/proc/self/stat` used here.
#[derive(Debug, PartialEq)]
struct Stat {
    /// `utime + stime`.
    cpu_ticks: u64,
    /// Since boot.
    start_ticks: u64,
    virtual_bytes: u64,
}

impl Stat {
    /// Fields are counted after the command name's closing `)`: the name may
    /// hold spaces and parentheses of its own. `state` is field 3 (`proc(5)`).
    fn parse(stat: &str) -> Option<Self> {
        let (_, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Self {
            cpu_ticks: field(14)? + field(15)?,
            start_ticks: field(22)?,
            virtual_bytes: field(23)?,
        })
    }
}

/// `btime` of `/proc/stat`: boot time, in seconds since the epoch.
fn boot_time_seconds(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// `VmRSS` of `/proc/self/status`, given in kB (kibibytes). Read there rather
/// than from `stat`, which counts pages of a size only `sysconf` knows.
fn resident_bytes(status: &str) -> Option<u64> {
    let value = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit on open files from `/proc/self/limits`; `None` if unlimited.
fn max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        // A command name with a space and a parenthesis of its own.
        let stat = "4242 (gr ant)mux) S 1 4242 4242 0 -1 4194560 900 0 0 0 \
                    250 50 0 0 20 0 9 0 123456 987654321 2048 18446744073709551615";
        let parsed = Stat::parse(stat);
        assert_eq!(
            parsed,
            Some(Stat {
                cpu_ticks: 300,
                start_ticks: 123456,
                virtual_bytes: 987654321,
            })
        );
    }

    #[test]
    fn status_limits_and_boot_time_parse() {
        let status = "Name:\tgrantmux\nVmSize:\t  20000 kB\nVmRSS:\t    1500 kB\n";
        assert_eq!(resident_bytes(status), Some(1500 * 1024));
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(unlimited), None);
        assert_eq!(
            boot_time_seconds("cpu 1 2 3\nbtime 1700000000\n"),
            Some(1700000000)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_whole() {
        let s = Sample::read();
        assert!(s.cpu_seconds.is_some());
        assert!(s.resident_bytes.is_some_and(|b| b > 0));
        assert!(s.virtual_bytes.is_some_and(|b| b > 0));
        assert!(s.open_fds.is_some_and(|n| n > 0));
        assert!(s.start_time_seconds.is_some_and(|t| t > 1.0e9));
    }
}

//! The results file `bench-results/<date>-<host>.json`: the machine, the
//! run, and one section per measured part, every figure next to the
//! baseline it was measured against in the same run. Field names are
//! documented in docs/PERFORMANCE.md.

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    /// YYYY-MM-DD (UTC).
    pub date: String,
    pub host: String,
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    pub cpu_flags: CpuFlags,
    /// The Ed25519 field arithmetic in use (`dataplane::host::ed25519_backend`);
    /// empty in reports written before it was recorded.
    #[serde(default)]
    pub ed25519_backend: String,
    /// Logical CPUs.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
    pub quick: bool,
    /// Short commit of the tree that was measured.
    pub git: String,
    pub sections: Vec<Section>,
}

/// CPU features the crypto libraries pick their code paths by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuFlags {
    pub aes: bool,
    pub vaes: bool,
    pub avx2: bool,
    pub avx512f: bool,
    pub sha_ni: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    pub name: String,
    /// Why the section was not measured; `null` when it was.
    pub skipped: Option<String>,
    /// What the rows mean, how they were measured.
    pub note: String,
    pub rows: Vec<Row>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    pub value: f64,
    pub unit: String,
    /// What `value` is compared with; `null` for a row that is itself a
    /// baseline or a plain figure.
    pub baseline_name: Option<String>,
    /// The baseline, in `unit`.
    pub baseline: Option<f64>,
    /// `value / baseline`.
    pub ratio: Option<f64>,
    /// The least (or, when lower is better, the largest) acceptable ratio.
    pub goal: Option<f64>,
    pub higher_is_better: bool,
}

impl Row {
    /// A figure with no baseline.
    pub fn plain(name: impl Into<String>, value: f64, unit: &str, higher_is_better: bool) -> Row {
        Row {
            name: name.into(),
            value,
            unit: unit.into(),
            baseline_name: None,
            baseline: None,
            ratio: None,
            goal: None,
            higher_is_better,
        }
    }

    /// A figure and its baseline (same unit); the ratio is `value / baseline`.
    pub fn vs(name: impl Into<String>, value: f64, unit: &str, baseline_name: impl Into<String>, baseline: f64) -> Row {
        Row {
            name: name.into(),
            value,
            unit: unit.into(),
            baseline_name: Some(baseline_name.into()),
            baseline: Some(baseline),
            ratio: (baseline != 0.0).then(|| value / baseline),
            goal: None,
            higher_is_better: true,
        }
    }

    pub fn goal(mut self, goal: f64) -> Row {
        self.goal = Some(goal);
        self
    }

    pub fn lower_is_better(mut self) -> Row {
        self.higher_is_better = false;
        self
    }

    /// Whether the row meets its goal (`None` without a goal or ratio).
    pub fn meets_goal(&self) -> Option<bool> {
        let (r, g) = (self.ratio?, self.goal?);
        Some(if self.higher_is_better { r >= g } else { r <= g })
    }
}

impl Section {
    pub fn measured(name: &str, note: impl Into<String>, rows: Vec<Row>) -> Section {
        Section { name: name.into(), skipped: None, note: note.into(), rows }
    }

    pub fn skipped(name: &str, reason: impl Into<String>) -> Section {
        Section { name: name.into(), skipped: Some(reason.into()), note: String::new(), rows: Vec::new() }
    }
}

impl Report {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a report serialises");
        s.push('\n');
        s
    }

    pub fn from_json(text: &str) -> Result<Report, String> {
        let r: Report = serde_json::from_str(text).map_err(|e| format!("results JSON: {e}"))?;
        if r.version != VERSION {
            return Err(format!("results JSON: version {} (this program reads {VERSION})", r.version));
        }
        Ok(r)
    }

    pub fn write(&self, path: &std::path::Path) -> Result<(), String> {
        std::fs::write(path, self.to_json()).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn read(path: &std::path::Path) -> Result<Report, String> {
        Report::from_json(&std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?)
    }

    /// `<date>-<host>`, the stem of the results and plot files.
    pub fn stem(&self) -> String {
        let host: String = self
            .host
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
            .collect();
        format!("{}-{}", self.date, host)
    }
}

/// The machine this process runs on.
pub mod machine {
    use super::CpuFlags;

    fn cpuinfo() -> String {
        std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()
    }

    pub fn cpu() -> String {
        cpuinfo()
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|m| m.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    }

    pub fn cpu_flags() -> CpuFlags {
        let info = cpuinfo();
        let flags = dataplane::host::cpuinfo_flags(&info);
        let has = |f: &str| flags.contains(&f);
        CpuFlags {
            aes: has("aes"),
            vaes: has("vaes"),
            avx2: has("avx2"),
            avx512f: has("avx512f"),
            sha_ni: has("sha_ni"),
        }
    }

    pub fn cores() -> usize {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    }

    fn proc_line(p: &str) -> String {
        std::fs::read_to_string(p).map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".into())
    }

    pub fn kernel() -> String {
        proc_line("/proc/sys/kernel/osrelease")
    }

    pub fn hostname() -> String {
        proc_line("/proc/sys/kernel/hostname")
    }

    /// Today's date (UTC) as YYYY-MM-DD.
    pub fn today() -> String {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        date_of_days((secs / 86_400) as i64)
    }

    /// The civil date of a day count since 1970-01-01 (proleptic Gregorian).
    pub fn date_of_days(days: i64) -> String {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// Short commit of the repository at `dir`, or "unknown".
    pub fn git_commit(dir: &std::path::Path) -> String {
        std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn civil_dates() {
            assert_eq!(super::date_of_days(0), "1970-01-01");
            assert_eq!(super::date_of_days(19_782), "2024-02-29");
            assert_eq!(super::date_of_days(20_783), "2026-11-26");
        }
    }
}

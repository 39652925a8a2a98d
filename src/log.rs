//! Logging in the format Terraform reads from a provider's stderr: one JSON object per
//! line with `@level`, `@message`, `@module` and `@timestamp` (RFC 3339), plus fields.
//! Terraform shows these under `TF_LOG` / `TF_LOG_PROVIDER` and filters them by level, so
//! everything is written and nothing goes to stdout (the plugin handshake lives there).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns logging on. The provider binary does this at start (Terraform filters the lines
/// by level); library users such as tests and benchmarks stay quiet unless they ask.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

#[derive(Clone, Copy, Debug)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Writes one log line with `fields`.
pub fn write(level: Level, message: &str, fields: &[(&str, String)]) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let mut line = serde_json::Map::new();
    line.insert("@level".into(), level.as_str().into());
    line.insert("@message".into(), message.into());
    line.insert("@module".into(), "resin".into());
    line.insert("@timestamp".into(), rfc3339(SystemTime::now()).into());
    for (key, value) in fields {
        line.insert((*key).into(), value.clone().into());
    }
    let mut text = serde_json::Value::Object(line).to_string();
    text.push('\n');
    // A closed stderr must not take the provider down.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

pub fn debug(message: &str, fields: &[(&str, String)]) {
    write(Level::Debug, message, fields);
}

pub fn info(message: &str, fields: &[(&str, String)]) {
    write(Level::Info, message, fields);
}

pub fn warn(message: &str, fields: &[(&str, String)]) {
    write(Level::Warn, message, fields);
}

/// `2026-11-22T03:56:04.123456Z` from a system time (UTC, microseconds).
fn rfc3339(time: SystemTime) -> String {
    let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX / 2));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
        since_epoch.subsec_micros()
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    // Both in 1..=31 and 1..=12 by construction.
    let day = u32::try_from(day_of_year - (153 * month_index + 2) / 5 + 1).expect("a day of the month");
    let month = u32::try_from(if month_index < 10 { month_index + 3 } else { month_index - 9 }).expect("a month");
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, "2000-02-29T00:00:00.000000Z"),
            (1_492_533_000, "2017-04-18T16:30:00.000000Z"),
            (1_795_320_000, "2026-11-22T04:00:00.000000Z"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(seconds)), expected);
        }
    }
}

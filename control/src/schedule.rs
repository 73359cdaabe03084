//! CronJob schedules: the five-field cron syntax Kubernetes accepts (and the `@hourly`-style
//! descriptors), parsed with the `croner` crate, in UTC. Shared by validation (a schedule that
//! does not parse is refused) and the CronJob controller.

use std::str::FromStr;

use chrono::{DateTime, Utc};

/// A parsed schedule.
pub struct Schedule(croner::Cron);

impl Schedule {
    /// Parses `text`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
            return Err(
                "CRON_TZ or TZ used in schedule is not supported, use timeZone instead".into(),
            );
        }
        if !text.starts_with('@') && text.split_whitespace().count() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: {text}",
                text.split_whitespace().count()
            ));
        }
        croner::Cron::from_str(text)
            .map(Schedule)
            .map_err(|e| e.to_string())
    }

    /// The first time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.find_next_occurrence(&after, false).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_fields_and_descriptors_parse_in_utc() {
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 9, 33, 10).unwrap();
        let every5 = Schedule::parse("*/5 * * * *").unwrap();
        assert_eq!(
            every5.next_after(at),
            Some(Utc.with_ymd_and_hms(2026, 12, 2, 9, 35, 0).unwrap())
        );
        let hourly = Schedule::parse("@hourly").unwrap();
        assert_eq!(
            hourly.next_after(at),
            Some(Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap())
        );
        for bad in [
            "",
            "* * * *",
            "0 * * * * *",
            "TZ=UTC * * * * *",
            "61 * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad}");
        }
    }
}

//! kubelet's `/containerLogs` query parameters (`follow`, `previous`, `tailLines`,
//! `sinceSeconds`, `sinceTime`, `timestamps`, `limitBytes`), decoded and checked. Pure: the
//! caller passes `now`. An unknown parameter or a value that does not parse is refused with
//! its name, never ignored.

use std::time::{Duration, SystemTime};

/// What a log request asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    /// Only the last this many records.
    pub tail_lines: Option<u64>,
    /// Only records written at or after this time.
    pub since: Option<SystemTime>,
    /// Each record prefixed with its RFC 3339 timestamp and a space.
    pub timestamps: bool,
    /// At most this many bytes of text.
    pub limit_bytes: Option<u64>,
}

fn flag(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(format!("{name}: {other:?} is not a boolean")),
    }
}

fn number(name: &str, value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .map_err(|_| format!("{name}: {value:?} is not a non-negative integer"))
}

/// Decodes `query` (the URL's query string).
pub fn parse(query: &str, now: SystemTime) -> Result<LogOptions, String> {
    let mut o = LogOptions::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let (name, value) = (name.as_ref(), value.as_ref());
        match name {
            "follow" => o.follow = flag(name, value)?,
            "previous" => o.previous = flag(name, value)?,
            "timestamps" => o.timestamps = flag(name, value)?,
            "tailLines" => o.tail_lines = Some(number(name, value)?),
            "limitBytes" => o.limit_bytes = Some(number(name, value)?),
            "sinceSeconds" => {
                let secs = number(name, value)?;
                o.since = Some(now - Duration::from_secs(secs));
            }
            "sinceTime" => {
                let t = humantime::parse_rfc3339(value)
                    .map_err(|e| format!("sinceTime: {value:?}: {e}"))?;
                o.since = Some(t);
            }
            other => return Err(format!("unknown query parameter {other:?}")),
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_parameters_are_decoded() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let o = parse(
            "follow=true&previous=false&tailLines=3&limitBytes=10&timestamps=true&sinceSeconds=60",
            now,
        )
        .expect("valid");
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!(o.tail_lines, Some(3));
        assert_eq!(o.limit_bytes, Some(10));
        assert_eq!(o.since, Some(now - Duration::from_secs(60)));
        let o = parse("sinceTime=1970-01-01T00%3A00%3A10Z", now).expect("valid");
        assert_eq!(
            o.since,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(10))
        );
    }

    #[test]
    fn unknown_parameters_and_bad_values_are_refused_by_name() {
        let now = SystemTime::now();
        assert_eq!(
            parse("tailLines=-1", now).expect_err("negative"),
            "tailLines: \"-1\" is not a non-negative integer"
        );
        assert_eq!(
            parse("stream=Stdout", now).expect_err("unknown"),
            "unknown query parameter \"stream\""
        );
        assert!(parse("follow=maybe", now).is_err());
    }
}

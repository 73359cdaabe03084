//! Durations as Go prints a `time.Duration`, for kubelet's texts (pull times, crash-loop
//! back-offs, probe timeouts).

/// A duration as Go prints a `time.Duration` truncated to milliseconds (kubelet's pull
/// times): `532ms`, `1.5s`, `2m3.004s`.
pub fn go_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let seconds = format!("{}.{:03}", (ms / 1000) % 60, ms % 1000);
    let seconds = seconds.trim_end_matches('0').trim_end_matches('.');
    match ms / 60_000 {
        0 => format!("{seconds}s"),
        m if m < 60 => format!("{m}m{seconds}s"),
        m => format!("{}h{}m{seconds}s", m / 60, m % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::go_duration;
    use std::time::Duration;

    #[test]
    fn pull_times_print_as_go_durations() {
        let table = [
            (0, "0s"),
            (532, "532ms"),
            (1000, "1s"),
            (1500, "1.5s"),
            (1234, "1.234s"),
            (60_000, "1m0s"),
            (123_004, "2m3.004s"),
            (3_723_000, "1h2m3s"),
        ];
        for (ms, text) in table {
            assert_eq!(go_duration(Duration::from_millis(ms)), text, "{ms}");
        }
    }
}

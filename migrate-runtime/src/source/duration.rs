//! Durations as users write them in directives, flags and environment variables (`500ms`,
//! `30s`, `2min`, `1h`), and back.

use std::time::Duration;

/// Reads `500ms`, `30s`, `2min` or `1h` (a whole number and a unit, PostgreSQL's spelling;
/// a bare number is seconds).
///
/// ```
/// use std::time::Duration;
/// use migrate_runtime::source::parse_duration;
///
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("2min"), Ok(Duration::from_secs(120)));
/// assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write a whole number and a unit, e.g. `500ms`, `30s`, `2min`"))?;
    let millis_per_unit = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "min" => 60_000,
        "h" => 3_600_000,
        other => {
            return Err(format!(
                "`{other}` is not a unit of time: use `ms`, `s`, `min` or `h`"
            ))
        }
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long a duration"))
}

/// The shortest exact spelling of `duration` in milliseconds, seconds or minutes, as
/// [`parse_duration`] reads it back.
///
/// ```
/// use std::time::Duration;
/// use migrate_runtime::source::format_duration;
///
/// assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
/// assert_eq!(format_duration(Duration::from_secs(120)), "2min");
/// ```
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    match ms {
        0 => "0ms".to_owned(),
        _ if ms.is_multiple_of(60_000) => format!("{}min", ms / 60_000),
        _ if ms.is_multiple_of(1_000) => format!("{}s", ms / 1_000),
        _ => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_round_trips() {
        for (text, ms) in [
            ("0", 0),
            ("250ms", 250),
            ("1s", 1_000),
            ("90 s", 90_000),
            ("1h", 3_600_000),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
            assert_eq!(
                parse_duration(&format_duration(Duration::from_millis(ms))),
                Ok(Duration::from_millis(ms))
            );
        }
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1.5s").is_err());
        assert!(parse_duration("3 days").unwrap_err().contains("`days`"));
        assert!(parse_duration("99999999999999999h").is_err());
    }
}

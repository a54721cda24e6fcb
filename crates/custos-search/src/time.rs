//! Times in queries and in `start`/`end`: ISO 8601 as SPS documents it (`2017-01-25T10:00`),
//! to any precision, in UTC unless an offset is given; also `now` and `now-7d`.
//!
//! An instant keeps its precision as a span, so that `start_time:2024-01-31` means the whole
//! day and `[… TO 2024-01-31T10:00]` includes that whole minute.

const MICROS_PER_SECOND: i64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instant {
    /// Unix microseconds of the start of the span.
    pub micros: i64,
    /// How long the written precision covers (a day, a minute, …), at least 1 µs.
    pub span: i64,
}

/// Parses an instant; `None` if it is not one of the accepted forms.
pub fn parse_instant(text: &str) -> Option<Instant> {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("now") {
        return relative(rest);
    }
    let (date, rest) = text.split_at_checked(10)?;
    let day = civil_day(date)?;
    let mut micros = day.checked_mul(86_400 * MICROS_PER_SECOND)?;
    if rest.is_empty() {
        return Some(Instant {
            micros,
            span: 86_400 * MICROS_PER_SECOND,
        });
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (clock, offset) = split_offset(rest)?;
    let (clock_micros, span) = clock_of_day(clock)?;
    micros = micros.checked_add(clock_micros)?.checked_sub(offset)?;
    Some(Instant { micros, span })
}

/// `""`, `-7d`, `-12h`, `-30m`, `-45s`.
fn relative(rest: &str) -> Option<Instant> {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_micros(),
    )
    .ok()?;
    if rest.is_empty() {
        return Some(Instant {
            micros: now,
            span: 1,
        });
    }
    let amount = rest.strip_prefix('-')?;
    let unit = amount.chars().last()?;
    let count: i64 = amount[..amount.len() - unit.len_utf8()].parse().ok()?;
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    let micros = now.checked_sub(count.checked_mul(seconds * MICROS_PER_SECOND)?)?;
    Some(Instant { micros, span: 1 })
}

/// Days since 1970-01-01 of `YYYY-MM-DD` (proleptic Gregorian), checking the day of month.
fn civil_day(date: &str) -> Option<i64> {
    let bytes = date.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year: i64 = digits(&date[0..4])?;
    let month: i64 = digits(&date[5..7])?;
    let day: i64 = digits(&date[8..10])?;
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn digits(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits `10:00:00+02:00` into the clock and the offset in microseconds east of UTC.
fn split_offset(rest: &str) -> Option<(&str, i64)> {
    if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    if let Some(at) = rest.rfind(['+', '-']) {
        let (clock, offset) = rest.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let offset = &offset[1..];
        let (hours, minutes) = match offset.split_once(':') {
            Some((h, m)) => (digits(h)?, digits(m)?),
            None if offset.len() == 4 => (digits(&offset[..2])?, digits(&offset[2..])?),
            None => (digits(offset)?, 0),
        };
        if hours > 23 || minutes > 59 {
            return None;
        }
        return Some((
            clock,
            sign * (hours * 3600 + minutes * 60) * MICROS_PER_SECOND,
        ));
    }
    Some((rest, 0))
}

/// `HH`, `HH:MM`, `HH:MM:SS`, `HH:MM:SS.ffffff` → (microseconds into the day, precision).
fn clock_of_day(clock: &str) -> Option<(i64, i64)> {
    let (whole, fraction) = match clock.split_once(['.', ',']) {
        Some((w, f)) => (w, Some(f)),
        None => (clock, None),
    };
    let parts: Vec<&str> = whole.split(':').collect();
    let hour = digits(parts.first()?)?;
    let minute = parts.get(1).map_or(Some(0), |m| digits(m))?;
    let second = parts.get(2).map_or(Some(0), |s| digits(s))?;
    if parts.len() > 3
        || hour > 23
        || minute > 59
        || second > 60
        || parts.iter().any(|p| p.len() != 2)
    {
        return None;
    }
    let mut micros = ((hour * 60 + minute) * 60 + second) * MICROS_PER_SECOND;
    let mut span = match parts.len() {
        1 => 3600 * MICROS_PER_SECOND,
        2 => 60 * MICROS_PER_SECOND,
        _ => MICROS_PER_SECOND,
    };
    if let Some(fraction) = fraction {
        if parts.len() != 3 || fraction.is_empty() || fraction.len() > 9 {
            return None;
        }
        let value = digits(fraction)?;
        let scale = 10_i64.pow(fraction.len() as u32);
        micros += value * MICROS_PER_SECOND / scale;
        span = (MICROS_PER_SECOND / scale).max(1);
    }
    Some((micros, span))
}

/// Unix microseconds as `2024-01-31T10:00:00.000Z`, as session records render times (the
/// same renderer); empty beyond the representable range.
pub fn iso(micros: i64) -> String {
    custos_sessions::iso_time(micros).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400 * MICROS_PER_SECOND;

    #[test]
    fn every_precision_parses_with_its_span() {
        // 2017-01-25 is day 17191 of the epoch.
        let day = 17_191 * DAY;
        assert_eq!(
            parse_instant("2017-01-25"),
            Some(Instant {
                micros: day,
                span: DAY
            })
        );
        assert_eq!(
            parse_instant("2017-01-25T10:00"),
            Some(Instant {
                micros: day + 10 * 3600 * MICROS_PER_SECOND,
                span: 60 * MICROS_PER_SECOND
            })
        );
        assert_eq!(
            parse_instant("2017-01-25T10:00:05Z").map(|i| (i.micros - day, i.span)),
            Some((36_005 * MICROS_PER_SECOND, MICROS_PER_SECOND))
        );
        assert_eq!(
            parse_instant("2017-01-25T10:00:05.25").map(|i| (i.micros - day, i.span)),
            Some((36_005 * MICROS_PER_SECOND + 250_000, 10_000))
        );
        assert_eq!(
            parse_instant("2017-01-25T12:00:00+02:00").map(|i| i.micros - day),
            Some(36_000 * MICROS_PER_SECOND)
        );
        assert_eq!(
            parse_instant("2017-01-25T08:00:00-0200").map(|i| i.micros - day),
            Some(36_000 * MICROS_PER_SECOND)
        );
    }

    #[test]
    fn nonsense_is_refused() {
        for bad in [
            "",
            "2017",
            "2017-13-01",
            "2017-02-29",
            "2017-01-25T25:00",
            "2017-01-25T10:0",
            "2017-01-25X10:00",
            "yesterday",
            "now+1d",
            "now-d",
            "2017-01-25T10:00:00+25:00",
        ] {
            assert_eq!(parse_instant(bad), None, "{bad}");
        }
        assert!(parse_instant("2016-02-29").is_some(), "leap day");
    }

    #[test]
    fn now_relative_times_are_in_the_past() {
        let now = parse_instant("now").unwrap().micros;
        let week = parse_instant("now-7d").unwrap().micros;
        assert!((now - week - 7 * DAY).abs() < 5 * MICROS_PER_SECOND);
    }

    #[test]
    fn iso_renders_what_parse_reads() {
        let i = parse_instant("2023-11-14T22:13:20.123Z").unwrap();
        assert_eq!(iso(i.micros), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(-1), "1969-12-31T23:59:59.999Z");
    }
}

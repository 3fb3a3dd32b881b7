//! Clock and calendar helpers every layer may use (they depend on nothing else in the crate).
//!
//! Invariants: calendar arithmetic is exact integer arithmetic on the proleptic Gregorian
//! calendar (any year, BC included as year ≤ 0); nothing goes through floating point.

/// Milliseconds since the Unix epoch, now (0 if the clock is before 1970).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (any year).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str) -> Result<i64, String> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("invalid number `{s}`"));
    }
    s.parse::<i64>().map_err(|e| e.to_string())
}

/// `YYYY-MM-DD[ BC]` → days since the epoch.
pub(crate) fn parse_date(s: &str) -> Result<i64, String> {
    if s == "infinity" || s == "-infinity" {
        return Err(format!("date {s} has no epoch value"));
    }
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(x) => (x, true),
        None => (s, false),
    };
    let mut it = s.splitn(3, '-');
    let (y, m, d) = (
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
        it.next().unwrap_or(""),
    );
    let (y, m, d) = (num(y)?, num(m)?, num(d)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err("invalid date".into());
    }
    let y = if bc { 1 - y } else { y };
    Ok(days_from_civil(y, m as u32, d as u32))
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]][ BC]` → µs since the epoch (UTC): the text
/// form of Postgres and of MySQL's text protocol.
pub(crate) fn parse_timestamp(s: &str, with_tz: bool) -> Result<i64, String> {
    if s == "infinity" || s == "-infinity" {
        return Err(format!("timestamp {s} has no epoch value"));
    }
    let (s, bc) = match s.strip_suffix(" BC") {
        Some(x) => (x, true),
        None => (s, false),
    };
    let (date, time) = s.split_once(' ').ok_or("timestamp without time part")?;
    let mut days = parse_date(date)?;
    if bc {
        // parse_date saw no BC suffix; redo the year
        let y = num(date.split('-').next().unwrap_or(""))?;
        let rest: Vec<&str> = date.splitn(3, '-').collect();
        days = days_from_civil(1 - y, num(rest[1])? as u32, num(rest[2])? as u32);
    }
    // split off the zone: the first + or - after the time digits
    let (clock, offset_us) = if with_tz {
        let idx = time.find(['+', '-']).ok_or("timestamptz without offset")?;
        let (c, z) = time.split_at(idx);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let mut parts = z[1..].split(':');
        let h = num(parts.next().unwrap_or("0"))?;
        let m = parts.next().map(num).transpose()?.unwrap_or(0);
        let sec = parts.next().map(num).transpose()?.unwrap_or(0);
        (c, sign * (h * 3600 + m * 60 + sec) * 1_000_000)
    } else {
        (time, 0)
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut it = hms.split(':');
    let h = num(it.next().unwrap_or(""))?;
    let mi = num(it.next().unwrap_or(""))?;
    let se = num(it.next().unwrap_or(""))?;
    if frac.len() > 6 {
        return Err("more than 6 fractional digits".into());
    }
    let mut us = if frac.is_empty() { 0 } else { num(frac)? };
    for _ in frac.len()..6 {
        us *= 10;
    }
    Ok((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000 + us - offset_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert!(now_ms() > 1_600_000_000_000);
    }
}

//! The printf subset MetaIO slice patterns use: one `%d`/`%i` conversion with
//! optional `0` flag and width (`slice%03d.raw`), plus `%%`.

struct Conversion {
    zero_pad: bool,
    width: usize,
}

enum Piece<'a> {
    Text(&'a str),
    Number(Conversion),
}

fn pieces(pattern: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = pattern;
    let mut conversions = 0;
    while let Some(at) = rest.find('%') {
        out.push(Piece::Text(&rest[..at]));
        let spec = &rest[at + 1..];
        if let Some(after) = spec.strip_prefix('%') {
            out.push(Piece::Text("%"));
            rest = after;
            continue;
        }
        let zero_pad = spec.starts_with('0');
        let digits = spec.chars().take_while(char::is_ascii_digit).count();
        let width = if digits == 0 {
            0
        } else {
            spec[..digits].parse::<usize>().map_err(|_| bad(pattern))?
        };
        if width > 64 {
            return Err(bad(pattern));
        }
        match spec[digits..].chars().next() {
            Some('d' | 'i') => {}
            _ => return Err(bad(pattern)),
        }
        out.push(Piece::Number(Conversion { zero_pad, width }));
        conversions += 1;
        rest = &spec[digits + 1..];
    }
    out.push(Piece::Text(rest));
    if conversions != 1 {
        return Err(bad(pattern));
    }
    Ok(out)
}

fn bad(pattern: &str) -> String {
    format!(
        "ElementDataFile pattern {pattern:?}: need exactly one %d conversion (flags: 0 and width)"
    )
}

/// Validate a pattern without formatting.
pub(crate) fn check(pattern: &str) -> Result<(), String> {
    pieces(pattern).map(|_| ())
}

/// Substitute `n` into the pattern.
pub(crate) fn format(pattern: &str, n: i64) -> Result<String, String> {
    let mut out = String::new();
    for piece in pieces(pattern)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Number(Conversion {
                zero_pad: true,
                width,
            }) => out.push_str(&format!("{n:0width$}")),
            Piece::Number(Conversion {
                zero_pad: false,
                width,
            }) => out.push_str(&format!("{n:width$}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_printf() {
        assert_eq!(format("s%03d.raw", 7).unwrap(), "s007.raw");
        assert_eq!(format("s%d.raw", 12).unwrap(), "s12.raw");
        assert_eq!(format("s%3i.raw", 5).unwrap(), "s  5.raw");
        assert_eq!(format("100%%_%02d", 3).unwrap(), "100%_03");
        assert_eq!(format("s%03d.raw", -4).unwrap(), "s-04.raw");
    }

    #[test]
    fn rejects_other_conversions() {
        for p in [
            "a%s",
            "a%d%d",
            "a%",
            "noconv",
            "a%5.2f",
            "a%99999999999999999999d",
        ] {
            assert!(check(p).is_err(), "{p}");
        }
    }
}

//! Writing CSV by hand, for the small files the tools write line by line
//! (`skipped.csv`, predictions) where a `csv::Writer` buys nothing.

use std::borrow::Cow;

/// A CSV field, quoted (RFC 4180) when it holds a separator, quote or newline.
pub fn field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(field("1.3.6.1.4"), "1.3.6.1.4");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
    }
}

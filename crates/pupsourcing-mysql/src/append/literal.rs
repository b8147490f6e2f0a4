//! SQL literals for the write statements (`append/write.rs`), which travel as text so that
//! several of them and the COMMIT fit one round trip (`sqlx::raw_sql` takes no parameters).
//!
//! Every value is a hex literal (`X'..'`: bytes as they are; `_utf8mb4 X'..'` for text
//! columns, so the server reads the bytes as UTF-8 whatever the connection's character set), an
//! integer written by Rust, or `NULL`. Nothing the caller gave is ever copied into the SQL as
//! it is, so there is nothing to quote and nothing to inject.

use std::fmt::Write;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Bytes a hex literal of `len` bytes takes: `X'` and `'` around two digits per byte.
pub(crate) const fn bytes_len(len: usize) -> usize {
    3 + 2 * len
}

const TEXT_PREFIX: &str = "_utf8mb4 ";

/// Writes `value` as a hex literal, for binary columns (`X''` for no bytes).
pub(crate) fn bytes(out: &mut String, value: &[u8]) {
    out.reserve(bytes_len(value.len()));
    out.push_str("X'");
    for byte in value {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    out.push('\'');
}

/// Writes `value` as a hex literal introduced as utf8mb4, for text columns.
pub(crate) fn text(out: &mut String, value: &str) {
    out.push_str(TEXT_PREFIX);
    bytes(out, value.as_bytes());
}

/// Writes `value` as [`bytes`], or `NULL`.
pub(crate) fn bytes_or_null(out: &mut String, value: Option<&[u8]>) {
    match value {
        Some(value) => bytes(out, value),
        None => out.push_str("NULL"),
    }
}

/// Writes `value` as [`text`], or `NULL`.
pub(crate) fn text_or_null(out: &mut String, value: Option<&str>) {
    match value {
        Some(value) => text(out, value),
        None => out.push_str("NULL"),
    }
}

/// Writes an integer in decimal (MySQL reads `-9223372036854775808` as a BIGINT too).
pub(crate) fn int(out: &mut String, value: i64) {
    // Writing to a String cannot fail.
    let _ = write!(out, "{value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        f(&mut out);
        out
    }

    #[test]
    fn bytes_are_hex_digits_only() {
        assert_eq!(
            render(|o| bytes(o, &[0x00, 0x0f, 0xa5, 0xff, b'\'', b'\\'])),
            "X'000FA5FF275C'"
        );
        assert_eq!(render(|o| bytes(o, &[])), "X''");
        let all: Vec<u8> = (0..=255).collect();
        let literal = render(|o| bytes(o, &all));
        assert_eq!(literal.len(), bytes_len(all.len()));
        let digits = &literal[2..literal.len() - 1];
        assert!(digits.bytes().all(|b| b.is_ascii_hexdigit()), "{literal}");
        let back: Vec<u8> = (0..all.len())
            .map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(back, all);
    }

    #[test]
    fn text_is_its_utf8_bytes_introduced_as_utf8mb4() {
        assert_eq!(render(|o| text(o, "")), "_utf8mb4 X''");
        // á precomposed, then a + combining acute: different bytes, different literals.
        assert_eq!(render(|o| text(o, "t\u{e1}g")), "_utf8mb4 X'74C3A167'");
        assert_eq!(render(|o| text(o, "ta\u{301}g")), "_utf8mb4 X'7461CC8167'");
        let quote = render(|o| text(o, "'; DROP TABLE x; --"));
        assert_eq!(quote.len(), TEXT_PREFIX.len() + bytes_len(19));
        assert!(!quote[TEXT_PREFIX.len() + 2..quote.len() - 1].contains('\''), "{quote}");
        let emoji = render(|o| text(o, "\u{1f600}"));
        assert_eq!(emoji, "_utf8mb4 X'F09F9880'");
    }

    #[test]
    fn nulls_and_integers() {
        assert_eq!(render(|o| bytes_or_null(o, None)), "NULL");
        assert_eq!(render(|o| text_or_null(o, None)), "NULL");
        assert_eq!(render(|o| bytes_or_null(o, Some(&[1]))), "X'01'");
        assert_eq!(render(|o| text_or_null(o, Some("a"))), "_utf8mb4 X'61'");
        assert_eq!(render(|o| int(o, 0)), "0");
        assert_eq!(render(|o| int(o, -1)), "-1");
        assert_eq!(render(|o| int(o, i64::MAX)), "9223372036854775807");
        assert_eq!(render(|o| int(o, i64::MIN)), "-9223372036854775808");
    }
}

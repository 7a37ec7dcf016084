//! Free-text fields at the edge: every string that is stored or echoed back is bounded and free
//! of NUL and other control characters (PostgreSQL `text` cannot hold NUL; control characters
//! in ids break logs, CSV exports and carrier requests). Used by the gRPC conversions and the
//! carrier push parsers alike, so both edges enforce the same rules.

/// Checks a free-text value: at most `max_chars` characters (Unicode scalar values), no control
/// characters (C0, DEL, C1). `allow_newlines` lets `\n`, `\r` and `\t` through (descriptive
/// fields such as `ext`); ids never take them. The error is a description for a
/// `BadRequest` violation or a 400 body; it never echoes the value.
pub fn check_text(s: &str, max_chars: usize, allow_newlines: bool) -> Result<(), String> {
    let mut n = 0usize;
    for c in s.chars() {
        n += 1;
        if n > max_chars {
            return Err(format!("must be at most {max_chars} characters"));
        }
        if c == '\0' {
            return Err("must not contain NUL characters".into());
        }
        if c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')) {
            return Err(format!(
                "must not contain control characters (found U+{:04X})",
                c as u32
            ));
        }
    }
    Ok(())
}

/// Longest excerpt of a client-supplied value echoed in an error message or `ErrorInfo`
/// metadata, so an error can never grow with the input.
pub const MAX_ECHO_CHARS: usize = 64;

/// `s` cut to [`MAX_ECHO_CHARS`] characters (with `…` when cut) and with control characters
/// replaced by `?`, for echoing client input in errors.
pub fn echo(s: &str) -> String {
    excerpt(s, MAX_ECHO_CHARS)
}

/// `s` cut to `max_chars` characters (with `…` when cut) and with control characters replaced
/// by `?`: [`echo`] with another bound, for messages that are ours but may embed client text.
pub fn excerpt(s: &str, max_chars: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max_chars)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// The longest prefix of `s` of at most `max_bytes` bytes that ends on a character boundary,
/// with `…` appended when cut (so the result is at most `max_bytes + 3` bytes).
pub fn cut_bytes(s: &str, max_bytes: usize) -> String {
    if s.len() <= max_bytes {
        return s.to_owned();
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_control_characters() {
        assert!(check_text("order-1001", 128, false).is_ok());
        assert!(check_text("包裹 1001", 8, false).is_ok());
        assert!(check_text("abc", 2, false).is_err_and(|e| e.contains("at most 2")));
        assert!(check_text("a\0b", 10, true).is_err_and(|e| e.contains("NUL")));
        assert!(check_text("a\u{1b}b", 10, true).is_err_and(|e| e.contains("U+001B")));
        assert!(check_text("a\u{85}b", 10, true).is_err());
        assert!(check_text("line\nnext\t", 20, true).is_ok());
        assert!(check_text("line\nnext", 20, false).is_err());
    }

    #[test]
    fn echo_is_bounded_and_printable() {
        assert_eq!(echo("demo"), "demo");
        let long = "x".repeat(3_000_000);
        let e = echo(&long);
        assert_eq!(e.chars().count(), MAX_ECHO_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(echo("a\0b"), "a?b");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("abc", 3), "abc");
    }

    #[test]
    fn cut_bytes_respects_character_boundaries() {
        assert_eq!(cut_bytes("abc", 3), "abc");
        assert_eq!(cut_bytes("abcd", 3), "abc…");
        // "é" is two bytes: a cut inside it backs off to the boundary before it.
        assert_eq!(cut_bytes("aé", 2), "a…");
        assert!(cut_bytes(&"包".repeat(1000), 100).len() <= 103);
    }
}

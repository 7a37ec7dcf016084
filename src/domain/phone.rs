//! Phone numbers and extensions. Real numbers are only ever printed masked.

use std::fmt;

/// E.164 digits without `+`: 5–15 digits (China's 15-digit `700…` range fits). A leading `+` is
/// accepted on input and dropped.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        let digits = s.strip_prefix('+').unwrap_or(s);
        if digits.is_empty() {
            return Err("must not be empty".into());
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must contain only digits (E.164 without '+')".into());
        }
        if !(5..=15).contains(&digits.len()) {
            return Err(format!("must have 5 to 15 digits, got {}", digits.len()));
        }
        Ok(Self(digits.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The number with its middle replaced by `*`, e.g. `8525****987`.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// Debug and Display both mask, so a number cannot leak into a log line by accident.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Masks any number-like string: keeps the first 4 and last 3 characters of numbers longer than
/// 8, fewer of shorter ones, and stars the rest.
pub fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    let (head, tail) = match n {
        0..=4 => (0, 0),
        5..=8 => (2, 2),
        _ => (4, 3),
    };
    let mut out = String::with_capacity(n);
    for (i, c) in chars.iter().enumerate() {
        if i < head || i >= n - tail {
            out.push(*c);
        } else {
            out.push('*');
        }
    }
    out
}

/// An extension dialled after X: 1–4 ASCII digits. Local and Aliyun AXN use 1–3 digits,
/// NXCloud AXE assigns 4; the pool's provider decides which lengths it takes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Extension(String);

impl Extension {
    pub fn parse(raw: &str, max_len: usize) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() || s.len() > max_len || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("must be 1 to {max_len} digits"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_e164_digits_and_drops_plus() {
        assert_eq!(
            PhoneNumber::parse("+8613800138000").unwrap().as_str(),
            "8613800138000"
        );
        assert_eq!(
            PhoneNumber::parse("700123456789012").unwrap().as_str(),
            "700123456789012"
        );
        assert!(PhoneNumber::parse("1380013800a").is_err());
        assert!(PhoneNumber::parse("1234").is_err());
        assert!(PhoneNumber::parse("1234567890123456").is_err());
        assert!(PhoneNumber::parse("").is_err());
    }

    #[test]
    fn masks_the_middle_in_debug_and_display() {
        let p = PhoneNumber::parse("85254987987").unwrap();
        assert_eq!(format!("{p}"), "8525****987");
        assert_eq!(format!("{p:?}"), "8525****987");
        assert_eq!(mask("12345"), "12*45");
    }

    #[test]
    fn extension_lengths_are_bounded() {
        assert!(Extension::parse("130", 3).is_ok());
        assert!(Extension::parse("1300", 3).is_err());
        assert!(Extension::parse("1a", 3).is_err());
        assert!(Extension::parse("0193", 4).is_ok());
    }
}

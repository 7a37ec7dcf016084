//! NXCloud request signature: lowercase hex of
//! `md5("accessKey=…&action=…&bizType=…&ts=…[&body=<raw body>]&accessSecret=…")`.
//! The header names are in ASCII order and spelled camelCase regardless of how they go on the
//! wire; the body part is the exact bytes sent (NXCloud rejects a re-serialised body with 1003).

use md5::{Digest, Md5};

/// Signs one request. `body` must be the bytes that are sent; an empty body is left out of the
/// signed string, as the docs require.
pub fn sign(
    access_key: &str,
    action: &str,
    biz_type: &str,
    ts: &str,
    body: &[u8],
    access_secret: &str,
) -> String {
    let mut h = Md5::new();
    h.update(
        format!("accessKey={access_key}&action={action}&bizType={biz_type}&ts={ts}").as_bytes(),
    );
    if !body.is_empty() {
        h.update(b"&body=");
        h.update(body);
    }
    h.update(b"&accessSecret=");
    h.update(access_secret.as_bytes());
    to_hex(&h.finalize())
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::sign;

    // The vectors from NXCloud's "API接口调用约定" page and its PHP/Go/Python samples.
    const KEY: &str = "fme2na3kdi3ki";
    const SECRET: &str = "abciiiko2k3";
    const TS: &str = "1655710885431";

    #[test]
    fn documented_example() {
        let body = r#"{"name":"牛小信","id":10001}"#;
        assert_eq!(
            sign(KEY, "send", "1", TS, body.as_bytes(), SECRET),
            "87c3560d3331ae23f1021e2025722354"
        );
    }

    #[test]
    fn php_go_serialisation() {
        let body = r#"{"id":10001,"name":"牛小信"}"#;
        assert_eq!(
            sign(KEY, "send", "1", TS, body.as_bytes(), SECRET),
            "7750759da06333f20d0640be09355e34"
        );
    }

    #[test]
    fn python_serialisation_signs_the_spaces_too() {
        let body = r#"{"id": 10001, "name": "牛小信"}"#;
        assert_eq!(
            sign(KEY, "send", "1", TS, body.as_bytes(), SECRET),
            "d0c24a9886c629330d7f3f2056c65bc2"
        );
    }

    #[test]
    fn empty_body_is_left_out() {
        assert_eq!(
            sign(KEY, "send", "1", TS, b"", SECRET),
            "884afe159e39b6c88a0d6102ca97d704"
        );
    }
}

//! Aliyun RPC signature V2 (`SignatureVersion=1.0`, HMAC-SHA1).
//!
//! The string to sign is built from the *unencoded* parameters sorted by key, RFC 3986-encoded
//! once for the canonical query string and once more as a whole; the HTTP method is part of it,
//! so signing with `GET` and sending `POST` is rejected with `SignatureDoesNotMatch`.

use std::collections::BTreeMap;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha1::Sha1;

/// Everything but the RFC 3986 unreserved set (`A–Z a–z 0–9 - _ . ~`) is percent-encoded, so a
/// space becomes `%20` (never `+`), `*` becomes `%2A` and `~` stays as it is.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Request parameters by wire name. A `BTreeMap` keeps them in byte order of the key, which is
/// the order the canonical query string needs (all keys are ASCII).
pub(super) type Params = BTreeMap<&'static str, String>;

/// UTF-8 percent-encoding with upper-case hex, as Aliyun's `percentEncode`.
pub(super) fn enc(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

/// `enc(k)=enc(v)` joined by `&`, sorted by key; `Signature` is never part of it.
pub(super) fn canonical_query(params: &Params) -> String {
    params
        .iter()
        .filter(|(k, _)| **k != "Signature")
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `METHOD&%2F&enc(canonical)`.
pub(super) fn string_to_sign(method: &str, canonical: &str) -> String {
    format!("{method}&{}&{}", enc("/"), enc(canonical))
}

/// The HMAC key could not be built. Unreachable for HMAC (any key length is valid), but the
/// API is fallible and a request path must not panic.
#[derive(Debug)]
pub(super) struct SignError;

/// Base64(HMAC-SHA1(secret + "&", string_to_sign)).
pub(super) fn signature(method: &str, params: &Params, secret: &str) -> Result<String, SignError> {
    let sts = string_to_sign(method, &canonical_query(params));
    let key = format!("{secret}&");
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).map_err(|_| SignError)?;
    mac.update(sts.as_bytes());
    Ok(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&'static str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
    }

    fn v2a() -> Params {
        p(&[
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ])
    }

    #[test]
    fn encoding_follows_rfc3986() {
        assert_eq!(enc("a b*c~d-e_f.g"), "a%20b%2Ac~d-e_f.g");
        assert_eq!(enc("+/=:"), "%2B%2F%3D%3A");
        assert_eq!(enc("北京"), "%E5%8C%97%E4%BA%AC");
    }

    #[test]
    fn v2a_official_ecs_example() {
        let params = v2a();
        assert_eq!(
            string_to_sign("GET", &canonical_query(&params)),
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML\
             %26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\
             %26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(
            signature("GET", &params, "testsecret").unwrap(),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
        assert_eq!(
            signature("POST", &params, "testsecret").unwrap(),
            "MxbnVAM4w6sft9xjVpe/GCKueuk="
        );
    }

    #[test]
    fn v2a_ignores_an_existing_signature_param() {
        let mut params = v2a();
        params.insert("Signature", "whatever".into());
        assert_eq!(
            signature("GET", &params, "testsecret").unwrap(),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn v2b_fixed_parameter_example() {
        let params = p(&[
            ("AccessKeyId", "testid"),
            ("Action", "DescribeDedicatedHosts"),
            ("Format", "JSON"),
            ("RegionId", "cn-beijing"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "edb2b34af0af9a6d14deaf7c1a5315eb"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2023-03-13T08:34:30Z"),
            ("Version", "2014-05-26"),
        ]);
        assert_eq!(
            canonical_query(&params),
            "AccessKeyId=testid&Action=DescribeDedicatedHosts&Format=JSON&RegionId=cn-beijing\
             &SignatureMethod=HMAC-SHA1&SignatureNonce=edb2b34af0af9a6d14deaf7c1a5315eb\
             &SignatureVersion=1.0&Timestamp=2023-03-13T08%3A34%3A30Z&Version=2014-05-26"
        );
        let sig = signature("GET", &params, "testsecret").unwrap();
        assert_eq!(sig, "9NaGiOspFP5UPcwX8Iwt2YJXXuk=");
        assert_eq!(enc(&sig), "9NaGiOspFP5UPcwX8Iwt2YJXXuk%3D");
        assert_eq!(
            signature("POST", &params, "testsecret").unwrap(),
            "ZvQ9xGiFnquSJRvj+WE6kdSpTwU="
        );
    }

    #[test]
    fn v2c_utf8_and_json_values() {
        let params = p(&[
            ("AccessKeyId", "testId"),
            ("Action", "SendSms"),
            ("Format", "XML"),
            ("OutId", "123"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "阿里云短信测试专用"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_71390007"),
            ("TemplateParam", r#"{"customer":"test"}"#),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Version", "2017-05-25"),
        ]);
        let canonical = canonical_query(&params);
        assert!(canonical.contains(
            "SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95%E4%B8%93%E7%94%A8"
        ));
        assert!(canonical.contains("TemplateParam=%7B%22customer%22%3A%22test%22%7D"));
        let sig = signature("GET", &params, "testSecret").unwrap();
        assert_eq!(sig, "zJDF+Lrzhj/ThnlvIToysFRq6t4=");
        assert_eq!(enc(&sig), "zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D");
    }

    #[test]
    fn v2d_openapi_util_go_empty_method() {
        let params = p(&[("test", "ok")]);
        assert_eq!(
            string_to_sign("", &canonical_query(&params)),
            "&%2F&test%3Dok"
        );
        assert_eq!(
            signature("", &params, "accessKeySecret").unwrap(),
            "jHx/oHoHNrbVfhncHEvPdHXZwHU="
        );
    }

    #[test]
    fn v2e_darabonba_openapi_util() {
        let params = p(&[("query", "test"), ("body", "test")]);
        assert_eq!(
            signature("GET", &params, "secret").unwrap(),
            "XlUyV4sXjOuX5FnjUz9IF9tm5rU="
        );
    }

    #[test]
    fn v2f_dyplsapi_shaped_get_and_post() {
        let params = p(&[
            ("AccessKeyId", "testid"),
            ("Action", "BindAxnExtension"),
            ("ExpectCity", "北京"),
            ("Expiration", "2024-01-02 12:00:00"),
            ("Extension", "130"),
            ("Format", "JSON"),
            ("IsRecordingEnabled", "true"),
            ("OutId", "order-42"),
            ("PhoneNoA", "13900000000"),
            ("PhoneNoX", "17000000000"),
            ("PoolKey", "FC100000000000001"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2024-01-01T00:00:00Z"),
            ("Version", "2017-05-25"),
        ]);
        assert_eq!(
            canonical_query(&params),
            "AccessKeyId=testid&Action=BindAxnExtension&ExpectCity=%E5%8C%97%E4%BA%AC\
             &Expiration=2024-01-02%2012%3A00%3A00&Extension=130&Format=JSON&IsRecordingEnabled=true\
             &OutId=order-42&PhoneNoA=13900000000&PhoneNoX=17000000000&PoolKey=FC100000000000001\
             &SignatureMethod=HMAC-SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf\
             &SignatureVersion=1.0&Timestamp=2024-01-01T00%3A00%3A00Z&Version=2017-05-25"
        );
        assert_eq!(
            signature("GET", &params, "testsecret").unwrap(),
            "B/LMSIQu9m8zrIZYB9txCkU8u6c="
        );
        assert_eq!(
            signature("POST", &params, "testsecret").unwrap(),
            "B+AIBq3s/DfFKxzr4+1NxGvJm2g="
        );
    }
}

//! Strategies for the property tests of the request conversions: mostly plausible values,
//! often hostile ones (NUL and other control characters, huge strings, values just over a
//! limit, overflowing timestamps and integers).

use proptest::prelude::*;
use prost_types::Timestamp;

/// The clock of the property tests: 2026-01-01T00:00:00Z.
pub(crate) const NOW: i64 = 1_767_225_600_000;

/// Any string a client could send.
pub(crate) fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z]{0,4}[\\x00-\\x1f\\x7f\\u{80}-\\u{9f}][a-z]{0,4}",
        (
            0usize..700,
            prop::sample::select(vec!['x', 'é', '包', '\n'])
        )
            .prop_map(|(n, c)| { std::iter::repeat_n(c, n).collect() }),
        Just("k".repeat(3 * 1024 * 1024)),
        Just(String::new()),
        Just(" ".into()),
    ]
}

/// An id-like value: usually valid, sometimes hostile.
pub(crate) fn id() -> impl Strategy<Value = String> {
    prop_oneof![8 => "[A-Za-z0-9_.-]{0,20}", 1 => hostile()]
}

/// Free text: usually valid (with newlines), sometimes hostile.
pub(crate) fn free_text() -> impl Strategy<Value = String> {
    prop_oneof![8 => "[a-z \\n\\t包]{0,40}", 1 => hostile()]
}

pub(crate) fn pool_key() -> impl Strategy<Value = String> {
    prop_oneof![8 => "[A-Za-z0-9_.-]{1,64}", 1 => hostile()]
}

pub(crate) fn phone() -> impl Strategy<Value = String> {
    prop_oneof![8 => "\\+?[0-9]{5,15}", 1 => "[0-9+ ]{0,18}", 1 => hostile()]
}

pub(crate) fn opt_phone() -> impl Strategy<Value = String> {
    prop_oneof![4 => Just(String::new()), 4 => "[0-9]{5,15}", 1 => hostile()]
}

pub(crate) fn uuid_or_not() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).simple().to_string().to_uppercase()),
        1 => hostile(),
    ]
}

/// A timestamp near `NOW` (valid or just out of range) or any pair of integers.
pub(crate) fn timestamp() -> impl Strategy<Value = Timestamp> {
    let now_s = NOW / 1000;
    prop_oneof![
        3 => (now_s - 86_400..now_s + 11 * 366 * 86_400, 0..1_000_000_000i32)
            .prop_map(|(seconds, nanos)| Timestamp { seconds, nanos }),
        1 => (any::<i64>(), any::<i32>()).prop_map(|(seconds, nanos)| Timestamp { seconds, nanos }),
        1 => prop::sample::select(vec![
            i64::MIN, i64::MAX, 645_636_044_375_992_648, -62_135_596_801, -62_135_596_800,
            253_402_300_799, 253_402_300_800, 0,
        ])
        .prop_flat_map(|seconds| {
            prop::sample::select(vec![0, 999_999_999, 1_000_000_000, -1, i32::MAX, i32::MIN])
                .prop_map(move |nanos| Timestamp { seconds, nanos })
        }),
    ]
}

/// A timestamp for a call report: usually within a month before `NOW` (or just after), else
/// anything [`timestamp`] makes.
pub(crate) fn call_timestamp() -> impl Strategy<Value = Timestamp> {
    let now_s = NOW / 1000;
    prop_oneof![
        4 => (now_s - 30 * 86_400..now_s + 2 * 86_400, 0..1_000_000_000i32)
            .prop_map(|(seconds, nanos)| Timestamp { seconds, nanos }),
        1 => timestamp(),
    ]
}

/// A lifetime in seconds: 0 (the default), plausible, around the minimum, or any.
pub(crate) fn lifetime() -> impl Strategy<Value = i64> {
    prop_oneof![1 => Just(0i64), 4 => 60..1_000_000i64, 1 => -100..100i64, 1 => any::<i64>()]
}

/// A duration in seconds: plausible or any.
pub(crate) fn duration() -> impl Strategy<Value = i64> {
    prop_oneof![4 => 0..100_000i64, 1 => any::<i64>(), 1 => -10..0i64]
}

/// An integer: small (the interesting range of enums and codes) or any.
pub(crate) fn int32() -> impl Strategy<Value = i32> {
    prop_oneof![3 => -2i32..200, 1 => any::<i32>()]
}

/// A proto enum value: usually one of the `n` defined values, sometimes any integer.
pub(crate) fn enum_value(n: i32) -> impl Strategy<Value = i32> {
    prop_oneof![4 => 0..n, 1 => int32()]
}

//! Properties of the binding request conversions: whatever a client sends, the conversion
//! does not panic, and it either yields a command whose every field is within its documented
//! bounds or INVALID_ARGUMENT with at least one field violation.

use proptest::prelude::*;

use super::*;
use crate::domain::{BindingRef, DomainError, MAX_TENANT_LEN, text::check_text};
use crate::grpc::proptest_support::{self as s, NOW};
use crate::grpc::validate::{self as val, MAX_TIMESTAMP_SECONDS, MIN_TIMESTAMP_SECONDS};

fn is_id(x: &str) -> bool {
    check_text(x, MAX_ID_LEN, false).is_ok()
}

fn is_ext(x: &str) -> bool {
    check_text(x, MAX_EXT_LEN, true).is_ok()
}

fn is_tenant(t: &str) -> bool {
    (1..=MAX_TENANT_LEN).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn is_pool_key(k: &str) -> bool {
    crate::domain::validate_pool_key(k).is_ok()
}

fn is_uuid(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok_and(|u| u.hyphenated().to_string() == id)
}

fn is_lifetime(secs: i64) -> bool {
    (60..=MAX_EXPIRE_SECONDS).contains(&secs)
}

/// A rejection is INVALID_ARGUMENT with violations that name a field; anything else fails.
fn rejected(e: DomainError) -> Result<(), TestCaseError> {
    match e {
        DomainError::InvalidArgument { violations, .. } => {
            prop_assert!(!violations.is_empty());
            for v in &violations {
                prop_assert!(!v.field.is_empty() && !v.description.is_empty());
            }
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "not INVALID_ARGUMENT: {other:?}"
        ))),
    }
}

/// NOT_FOUND without a lookup is the answer for a clean `binding_id` that is not a UUID, and
/// only for that.
fn not_found(e: DomainError, binding_id: &str) -> Result<(), TestCaseError> {
    match e {
        DomainError::BindingNotFound => {
            let t = binding_id.trim();
            prop_assert!(!t.is_empty() && uuid::Uuid::try_parse(t).is_err());
            prop_assert!(check_text(t, val::MAX_BINDING_ID_LEN, false).is_ok());
            Ok(())
        }
        e => rejected(e),
    }
}

fn tenant_header() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        4 => Just(None),
        3 => "[A-Za-z0-9._-]{1,64}".prop_map(|t| Some(t.into_bytes())),
        1 => any::<Vec<u8>>().prop_map(Some),
        1 => s::hostile().prop_map(|t| Some(t.into_bytes())),
    ]
}

fn tenant(raw: &Option<Vec<u8>>) -> Result<Tenant, String> {
    val::parse_tenant(raw.as_deref())
}

prop_compose! {
    fn xyb_req()(
        pool_key in s::pool_key(),
        (phone_b, number_x, number_y) in (s::phone(), s::opt_phone(), s::opt_phone()),
        (iso2_x, iso2_y) in (prop_oneof![2 => Just(String::new()), 2 => "[a-zA-Z]{2}", 1 => s::hostile()],
                             prop_oneof![2 => Just(String::new()), 2 => "[a-zA-Z]{2}", 1 => s::hostile()]),
        delayed_y in any::<bool>(),
        (bind_expire_seconds, call_in_expire_seconds) in (s::lifetime(), s::lifetime()),
        (bind_expire_strategy, call_in_expire_strategy) in (s::enum_value(4), s::enum_value(4)),
        (customer_bind_id, customer_user_id, ext) in (s::id(), s::id(), s::free_text()),
        recording in any::<bool>(),
    ) -> pb::BindXybRequest {
        pb::BindXybRequest {
            pool_key, phone_b, number_x, number_y, iso2_x, iso2_y, delayed_y,
            bind_expire_seconds, bind_expire_strategy, call_in_expire_seconds,
            call_in_expire_strategy, customer_bind_id, customer_user_id, recording, ext,
        }
    }
}

prop_compose! {
    fn axn_req()(
        pool_key in s::pool_key(),
        (phone_a, phone_b, number_x) in (s::phone(), s::opt_phone(), s::opt_phone()),
        extension in prop_oneof![2 => Just(String::new()), 2 => "[0-9]{1,4}", 1 => s::hostile()],
        expect_city in s::id(),
        city_match in s::enum_value(3),
        expire_time in prop::option::weighted(0.9, s::timestamp()),
        (out_id, customer_bind_id, customer_user_id, ext) in (s::id(), s::id(), s::id(), s::free_text()),
        recording in any::<bool>(),
    ) -> pb::BindAxnExtensionRequest {
        pb::BindAxnExtensionRequest {
            pool_key, phone_a, phone_b, extension, number_x, expect_city, city_match,
            expire_time, recording, out_id, customer_bind_id, customer_user_id, ext,
        }
    }
}

prop_compose! {
    fn update_req()(
        (binding_id, customer_bind_id) in (prop_oneof![Just(String::new()), s::uuid_or_not()],
                                           prop_oneof![Just(String::new()), s::id()]),
        expire_time in prop::option::of(s::timestamp()),
        phone_b in prop::option::of(s::opt_phone()),
        recording in prop::option::of(any::<bool>()),
        customer_user_id in prop::option::of(s::id()),
        ext in prop::option::of(s::free_text()),
        out_id in prop::option::of(s::id()),
    ) -> pb::UpdateBindingRequest {
        pb::UpdateBindingRequest {
            binding_id, customer_bind_id, expire_time, phone_b, recording,
            customer_user_id, ext, out_id,
        }
    }
}

fn check_ref(r: &BindingRef) -> Result<(), TestCaseError> {
    match r {
        BindingRef::Id { tenant, id } => {
            prop_assert!(is_tenant(tenant));
            prop_assert!(is_uuid(id), "{id:?}")
        }
        BindingRef::CustomerBindId { tenant, id } => {
            prop_assert!(is_tenant(tenant));
            prop_assert!(!id.is_empty() && is_id(id) && id.trim() == id);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn bind_xyb_yields_a_bounded_command_or_invalid_argument(
        req in xyb_req(), t in tenant_header()
    ) {
        match xyb(req, tenant(&t)) {
            Ok(c) => {
                prop_assert!(is_tenant(&c.tenant));
                prop_assert!(is_pool_key(&c.pool_key));
                prop_assert!(c.customer_bind_id.as_deref().is_none_or(|i| !i.is_empty() && is_id(i)));
                prop_assert!(is_id(&c.customer_user_id));
                prop_assert!(is_ext(&c.ext));
                prop_assert!(is_lifetime(c.bind_expire_seconds));
                prop_assert!(is_lifetime(c.call_in_expire_seconds));
                for iso in [&c.iso2_x, &c.iso2_y].into_iter().flatten() {
                    prop_assert!(iso.len() == 2 && iso.bytes().all(|b| b.is_ascii_uppercase()));
                }
                prop_assert!(!(c.delayed_y && c.number_y.is_some()));
            }
            Err(e) => rejected(e)?,
        }
    }

    #[test]
    fn bind_axn_yields_a_bounded_command_or_invalid_argument(
        req in axn_req(), t in tenant_header()
    ) {
        match axn(req, tenant(&t), NOW) {
            Ok(c) => {
                prop_assert!(is_tenant(&c.tenant));
                prop_assert!(is_pool_key(&c.pool_key));
                prop_assert!(c.customer_bind_id.as_deref().is_none_or(|i| !i.is_empty() && is_id(i)));
                prop_assert!(is_id(&c.customer_user_id) && is_id(&c.out_id));
                prop_assert!(is_ext(&c.ext));
                prop_assert!(c.expect_city.as_deref().is_none_or(|x| check_text(x, MAX_CITY_LEN, false).is_ok()));
                prop_assert!(c.expire_at >= NOW + MIN_EXPIRE_AHEAD_MS);
                prop_assert!(c.expire_at <= NOW + MAX_EXPIRE_SECONDS * 1000);
                prop_assert!(c.extension.as_ref().is_none_or(|e| (1..=3).contains(&e.as_str().len())));
                prop_assert!(c.extension.is_none() || c.number_x.is_some());
            }
            Err(e) => rejected(e)?,
        }
    }

    #[test]
    fn update_binding_yields_a_bounded_update_or_invalid_argument(
        req in update_req(), t in tenant_header()
    ) {
        let expire = req.expire_time;
        let id = req.binding_id.clone();
        match update(req, tenant(&t), NOW) {
            Ok((r, u)) => {
                check_ref(&r)?;
                if let Some(at) = u.expire_at {
                    let ts = expire.expect("expire_at comes from expire_time");
                    prop_assert!((MIN_TIMESTAMP_SECONDS..=MAX_TIMESTAMP_SECONDS).contains(&ts.seconds));
                    prop_assert!((0..1_000_000_000).contains(&ts.nanos));
                    prop_assert!((NOW + MIN_EXPIRE_AHEAD_MS..=NOW + MAX_EXPIRE_SECONDS * 1000).contains(&at));
                }
                prop_assert!(u.customer_user_id.as_deref().is_none_or(is_id));
                prop_assert!(u.out_id.as_deref().is_none_or(is_id));
                prop_assert!(u.ext.as_deref().is_none_or(is_ext));
            }
            Err(e) => not_found(e, &id)?,
        }
    }

    #[test]
    fn binding_refs_are_uuids_or_bounded_customer_ids(
        id in prop_oneof![Just(String::new()), s::uuid_or_not()],
        cb in prop_oneof![Just(String::new()), s::id()],
        t in tenant_header(),
    ) {
        match binding_ref(&id, &cb, tenant(&t)) {
            Ok(r) => check_ref(&r)?,
            Err(e) => not_found(e, &id)?,
        }
    }

    #[test]
    fn list_filters_are_bounded_or_invalid_argument(
        pool_key in prop_oneof![Just(String::new()), s::pool_key()],
        state in s::enum_value(7),
        customer_user_id in prop_oneof![Just(String::new()), s::id()],
        page_size in s::int32(),
        page_token in prop_oneof![
            Just(String::new()),
            s::uuid_or_not().prop_map(|u| format!("b.{u}")),
            s::hostile(),
        ],
    ) {
        let req = pb::ListBindingsRequest { pool_key, state, customer_user_id, page_size, page_token };
        match list_filter(&req, Ok("default".into())) {
            Ok((f, limit)) => {
                prop_assert!((1..=MAX_PAGE_SIZE).contains(&limit));
                prop_assert_eq!(f.limit, limit + 1);
                prop_assert!(f.pool_key.as_deref().is_none_or(is_pool_key));
                prop_assert!(f.customer_user_id.as_deref().is_none_or(is_id));
                prop_assert!(f.before_id.as_deref().is_none_or(is_uuid));
            }
            Err(e) => rejected(e)?,
        }
    }
}

#[test]
fn the_overflowing_expiry_of_issue_7_is_expire_date_illegal() {
    let mut req = pb::BindAxnExtensionRequest {
        pool_key: "p".into(),
        phone_a: "85291112222".into(),
        ..Default::default()
    };
    // 645636044375992648 * 1000 wraps to about "tomorrow" in i64 arithmetic.
    req.expire_time = Some(Timestamp {
        seconds: 645_636_044_375_992_648,
        nanos: 0,
    });
    match axn(req, Ok("default".into()), NOW) {
        Err(DomainError::InvalidArgument { reason, violations }) => {
            assert_eq!(reason, reason::EXPIRE_DATE_ILLEGAL);
            assert_eq!(violations.len(), 1, "{violations:?}");
            assert_eq!(violations[0].field, "expire_time.seconds");
        }
        other => panic!("{other:?}"),
    }
}

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bindings")]
pub struct Model {
    /// UUID v7: sorts by creation time, used as the page cursor.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant: String,
    pub mode: String,
    pub state: String,
    /// 1 while the binding is active (XYB, AXYB, AXN), else 0; indexed with `expire_at` for the sweeper.
    pub active: i16,
    pub pool_id: i64,
    pub pool_key: String,
    pub provider: String,
    pub phone_a: Option<String>,
    pub phone_b: Option<String>,
    pub number_x: String,
    pub number_y: Option<String>,
    pub extension: Option<String>,
    pub expire_at: i64,
    pub customer_bind_id: Option<String>,
    pub customer_user_id: String,
    pub ext: String,
    pub out_id: String,
    pub provider_binding_id: String,
    pub recording: bool,
    pub delayed_y: bool,
    pub bind_expire_seconds: i64,
    pub bind_strategy: i32,
    pub call_in_expire_seconds: i64,
    pub call_in_strategy: i32,
    /// The bind request's canonical payload, compared on an idempotent replay.
    pub fingerprint: String,
    /// AXN: the last party that talked with A through this binding.
    pub last_party: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When retention erased the real numbers of this ended binding (m0004).
    pub purged_at: Option<i64>,
    pub ended_at: Option<i64>,
    /// Carrier pools: the upstream request of a PENDING reservation, for the reconciler.
    pub upstream_request: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

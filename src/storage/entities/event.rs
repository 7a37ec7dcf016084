use sea_orm::entity::prelude::*;

/// One entry of the event log. `seq` comes from `event_seq`, in commit order.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub kind: String,
    /// Tenant of the binding (m0004); empty for events about no binding.
    pub tenant: String,
    pub binding_id: Option<String>,
    pub pool_key: String,
    pub provider: Option<String>,
    pub customer_bind_id: Option<String>,
    pub customer_user_id: String,
    pub ext: String,
    pub out_id: String,
    pub call_id: String,
    pub caller: String,
    pub called: String,
    pub callee: String,
    #[sea_orm(column_type = "Text")]
    pub detail_json: String,
    pub occurred_at: i64,
    pub created_at: i64,
    pub dedupe_key: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

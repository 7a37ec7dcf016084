use sea_orm::entity::prelude::*;

/// A virtual number. `locked_by` and `shared_count` are its claims: an XYB binding locks it
/// exclusively (only when `shared_count = 0`); AXN extensions and Y of XYB/AXYB bindings share it
/// (only while `locked_by IS NULL`). Both are changed only by conditional UPDATEs, so the
/// database arbitrates every race.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "numbers")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub pool_id: i64,
    #[sea_orm(unique)]
    pub number: String,
    pub iso2: String,
    pub city: String,
    pub state: String,
    pub locked_by: Option<String>,
    pub shared_count: i64,
    /// Active AXN extension bindings on this number.
    pub ext_count: i64,
    /// Counter that hands out auto-assigned extensions.
    pub ext_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

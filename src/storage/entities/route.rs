use sea_orm::entity::prelude::*;

/// One entry of the routing index: (dialled number, route key) -> binding, unique.
/// Route keys: `c:<caller digits>` or `e:<extension>`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "routes")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub number: String,
    pub route_key: String,
    pub binding_id: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

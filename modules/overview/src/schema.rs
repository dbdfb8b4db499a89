//! Diesel table definitions of the analytics (migrations in `migrations/overview`).

diesel::table! {
    analytics_cells (zone, dims, day, project_id, currency, method, country, brand, status, decline) {
        zone -> Text,
        dims -> SmallInt,
        day -> Date,
        project_id -> BigInt,
        currency -> Text,
        method -> Text,
        country -> Text,
        brand -> Text,
        status -> Text,
        decline -> Text,
        payments -> BigInt,
        approved -> BigInt,
        declined -> BigInt,
        captures -> BigInt,
        captured -> BigInt,
        refunds -> BigInt,
        refunded -> BigInt,
        chargebacks -> BigInt,
        charged_back -> BigInt,
        payouts -> BigInt,
        paid_out -> BigInt,
    }
}

diesel::table! {
    analytics_zones (zone) {
        zone -> Text,
        ready_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    analytics_boards (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        query -> Text,
        charts -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    analytics_changes (id) {
        id -> BigInt,
        project_id -> BigInt,
        hour -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(analytics_cells, analytics_zones, analytics_boards, analytics_changes,);

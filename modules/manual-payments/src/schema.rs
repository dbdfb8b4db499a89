//! The tables of Manual payments (see `migrations/manual`).

diesel::table! {
    batches (id) {
        id -> BigInt,
        company_id -> BigInt,
        created_by -> BigInt,
        file_name -> Text,
        file_hash -> Text,
        header -> Text,
        status -> Text,
        row_count -> Integer,
        error_count -> Integer,
        totals -> Text,
        kinds -> Text,
        project_ids -> Text,
        succeeded -> Integer,
        declined -> Integer,
        failed -> Integer,
        confirmed_by -> Nullable<BigInt>,
        confirmed_at -> Nullable<Timestamp>,
        lease_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    batch_rows (batch_id, row_number) {
        batch_id -> BigInt,
        row_number -> Integer,
        kind -> Text,
        cells -> Text,
        error -> Nullable<Text>,
        payment_id -> Nullable<Text>,
        project_id -> Nullable<BigInt>,
        amount -> Nullable<BigInt>,
        currency -> Nullable<Text>,
        card -> Nullable<Text>,
        merchant_order_id -> Nullable<Text>,
        status -> Text,
        result -> Nullable<Text>,
        done_at -> Nullable<Timestamp>,
        reason -> Nullable<Text>,
    }
}

diesel::joinable!(batch_rows -> batches (batch_id));
diesel::allow_tables_to_appear_in_same_query!(batches, batch_rows);

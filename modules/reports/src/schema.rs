//! The tables of Reports (see `migrations/reports`).

diesel::table! {
    reports (id) {
        id -> BigInt,
        company_id -> BigInt,
        created_by -> BigInt,
        schedule_id -> Nullable<BigInt>,
        report_type -> Text,
        first_day -> Date,
        last_day -> Date,
        time_zone -> Text,
        project_ids -> Nullable<Text>,
        filters -> Text,
        column_ids -> Text,
        format -> Text,
        status -> Text,
        rows_done -> BigInt,
        progress -> Integer,
        size_bytes -> Nullable<BigInt>,
        error -> Nullable<Text>,
        lease_token -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
        mailed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    report_schedules (id) {
        id -> BigInt,
        company_id -> BigInt,
        created_by -> BigInt,
        report_type -> Text,
        project_ids -> Nullable<Text>,
        filters -> Text,
        column_ids -> Text,
        format -> Text,
        frequency -> Text,
        run_at -> Text,
        time_zone -> Text,
        recipients -> Text,
        active -> Bool,
        next_run_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::joinable!(reports -> report_schedules (schedule_id));
diesel::allow_tables_to_appear_in_same_query!(reports, report_schedules);

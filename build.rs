//! `sqlx::migrate!` embeds `migrations/` at compile time, but cargo does not
//! know to rebuild when a migration is added there (sqlx's documented fix).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}

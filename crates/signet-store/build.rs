// `sqlx::migrate!` embeds the migration files at compile time; without this,
// Cargo does not know to rebuild the crate when one is added or changed.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}

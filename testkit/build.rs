//! Rebuilds testkit when a migration is added or removed, which `sqlx::migrate!` cannot notice.

fn main() {
    // Edits to existing files are tracked through the macro's `include_str!`; this line covers
    // new and deleted files.
    println!("cargo:rerun-if-changed=../db/migrations");
}

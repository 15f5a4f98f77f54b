//! Rebuilds the API when a migration is added or removed: `sqlx::migrate!` embeds the files
//! but only tracks the ones it saw.

fn main() {
    println!("cargo:rerun-if-changed=../db/migrations");
}

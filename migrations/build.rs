// `sqlx::migrate!` embeds the SQL files at compile time but cannot tell Cargo
// to watch them on stable Rust: without this, a new migration is not picked
// up until something else rebuilds the crate.
fn main() {
    println!("cargo:rerun-if-changed=sqlite");
    println!("cargo:rerun-if-changed=postgres");
}

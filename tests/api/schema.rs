//! Goal: the checked-in `schema.graphql` is the served schema.
//! Method: compare the SDL built from the code with the file;
//! `UPDATE_SCHEMA=1 cargo test schema` rewrites the file.

#[test]
fn schema_graphql_is_the_served_schema() {
    let served = protodesk_credits::graphql::sdl();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &served).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == served,
        "schema.graphql differs from the served schema; run `UPDATE_SCHEMA=1 cargo test schema` and commit it"
    );
}

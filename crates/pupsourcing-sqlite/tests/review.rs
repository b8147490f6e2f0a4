//! Review probes shared with PostgreSQL (see pupsourcing_testkit::review).

mod common;

/// Awkward but valid input reads back as appended; prints the differences found.
#[tokio::test]
async fn awkward_input_round_trips() {
    let Some(store) = common::fresh_store().await else { return };
    let differences = pupsourcing_testkit::review::awkward_input_round_trips(store).await;
    for d in &differences {
        println!("sqlite: {d}");
    }
    assert!(differences.is_empty(), "{differences:#?}");
}

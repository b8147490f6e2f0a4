//! Awkward but valid input reads back unchanged (see pupsourcing_testkit::round_trip).

mod common;

/// Awkward but valid input reads back as appended; prints the differences found.
#[tokio::test]
async fn awkward_input_round_trips() {
    let Some(store) = common::fresh_store().await else { return };
    let differences = pupsourcing_testkit::round_trip::awkward_input_round_trips(store).await;
    for d in &differences {
        println!("mysql: {d}");
    }
    assert!(differences.is_empty(), "{differences:#?}");
}

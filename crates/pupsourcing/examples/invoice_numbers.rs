//! DCB example: gapless invoice numbers. Each invoice gets the next number, with no gap and no
//! duplicate, even when many invoices are created at once: the decision's boundary is "every
//! InvoiceCreated event", so concurrent creators serialise on it and losers retry.
//!
//! Run with `cargo run --example invoice_numbers` (embedded SQLite).

use pupsourcing::dcb::{
    CommandExecutor, CommandHandler, DcbStore, DecisionModel, Handle, Query, QueryItem,
    ReadOptions, StateProjector, States,
};
use pupsourcing::sqlite::SqliteEventStore;
use pupsourcing::{NewEvent, RecordedEvent, StoreConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CreateInvoice {
    customer: String,
    amount_cents: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct InvoiceCreated {
    number: u64,
    customer: String,
    amount_cents: u64,
}

fn invoices() -> Query {
    Query::from_items([QueryItem::types(["InvoiceCreated"])])
}

/// The highest invoice number so far.
fn last_number() -> StateProjector<u64> {
    StateProjector::new("last invoice number", invoices(), 0, |last, e: &RecordedEvent| {
        e.json::<InvoiceCreated>().map_or(last, |i| i.number.max(last))
    })
}

struct Invoicing;

impl CommandHandler for Invoicing {
    type Command = CreateInvoice;
    type Error = std::convert::Infallible;
    type Handles = Handle<u64>;

    fn command_type(&self, _: &CreateInvoice) -> String {
        "CreateInvoice".into()
    }

    fn model(&self, _: &CreateInvoice, model: &mut DecisionModel) -> Handle<u64> {
        model.add(last_number())
    }

    fn decide(
        &self,
        c: &CreateInvoice,
        last: &Handle<u64>,
        states: &States,
    ) -> Result<Vec<NewEvent>, Self::Error> {
        let invoice = InvoiceCreated {
            number: states.get(*last) + 1,
            customer: c.customer.clone(),
            amount_cents: c.amount_cents,
        };
        Ok(vec![NewEvent::json("InvoiceCreated", &invoice).expect("plain structs serialise")])
    }
}

#[tokio::main]
async fn main() -> pupsourcing::Result<()> {
    let store = SqliteEventStore::connect("sqlite::memory:", StoreConfig::default()).await?;
    store.migrate().await?;
    let executor = CommandExecutor::new(store.clone()).max_attempts(50);
    let creators: Vec<_> = (0..20)
        .map(|i| {
            let executor = executor.clone();
            tokio::spawn(async move {
                let command =
                    CreateInvoice { customer: format!("customer {i}"), amount_cents: 100 * i };
                executor.execute(&Invoicing, &command).await
            })
        })
        .collect();
    for creator in creators {
        if let Ok(Err(err)) = creator.await {
            println!("an invoice failed: {err}");
        }
    }
    let read = store.read(&invoices(), ReadOptions::new()).await?;
    let mut numbers: Vec<u64> = read
        .events
        .iter()
        .filter_map(|e| e.json::<InvoiceCreated>().ok())
        .map(|i| i.number)
        .collect();
    numbers.sort_unstable();
    println!("invoice numbers: {numbers:?}");
    assert_eq!(numbers, (1..=20).collect::<Vec<_>>(), "gapless and unique");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pupsourcing::dcb::Scenario;

    /// The example itself, end to end on embedded SQLite (its races included).
    #[test]
    fn the_example_runs() {
        main().expect("the example runs");
    }

    fn created(number: u64) -> NewEvent {
        let invoice = InvoiceCreated { number, customer: "c".into(), amount_cents: 1 };
        NewEvent::json("InvoiceCreated", &invoice).unwrap()
    }

    #[test]
    fn numbers_follow_the_last_invoice() {
        let command = CreateInvoice { customer: "acme".into(), amount_cents: 500 };
        let first = Scenario::new(&Invoicing).when(&command).then_event_types(&["InvoiceCreated"]);
        let number =
            |e: &NewEvent| serde_json::from_slice::<InvoiceCreated>(&e.payload).unwrap().number;
        assert_eq!(number(&first[0]), 1);
        let next = Scenario::new(&Invoicing)
            .given([created(1), created(2)])
            .when(&command)
            .then_event_types(&["InvoiceCreated"]);
        assert_eq!(number(&next[0]), 3);
    }
}

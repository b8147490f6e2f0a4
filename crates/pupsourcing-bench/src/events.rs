//! The events both sides write: realistic order events with a ~150-byte JSON payload, a tag,
//! a bounded context, JSON metadata and a correlation id.

use pupsourcing_core::NewEvent;
use uuid::Uuid;

/// Builds the events of one writer task. Library and floor get identical events.
pub struct EventFactory {
    task: usize,
    seq: u64,
    tag: String,
    metadata: serde_json::Value,
}

impl EventFactory {
    pub fn new(task: usize) -> Self {
        Self {
            task,
            seq: 0,
            tag: format!("customer:{task}"),
            metadata: serde_json::json!({ "source": "bench", "user_id": format!("user-{task}") }),
        }
    }

    /// The next `n` events of this task.
    pub fn next_batch(&mut self, n: usize) -> Vec<NewEvent> {
        (0..n).map(|_| self.next_event()).collect()
    }

    fn next_event(&mut self) -> NewEvent {
        self.seq += 1;
        let quantity = self.seq % 7 + 1;
        let payload = format!(
            concat!(
                r#"{{"order_id":"{}","customer_id":"customer-{}","line":{{"sku":"SKU-{:05}","#,
                r#""quantity":{},"unit_price_cents":1999}},"total_cents":{},"currency":"EUR"}}"#
            ),
            Uuid::now_v7(),
            self.task,
            self.seq % 100_000,
            quantity,
            quantity * 1999,
        );
        NewEvent::new("OrderPlaced", payload)
            .with_bounded_context("sales")
            .with_tags([self.tag.clone()])
            .with_metadata(self.metadata.clone())
            .with_correlation_id(Uuid::now_v7())
    }
}

/// The same payload, built server-side for bulk loads (`g` is the generate_series value).
pub const SQL_PAYLOAD: &str = r#"convert_to(format(
    '{"order_id":"%s","customer_id":"customer-%s","line":{"sku":"SKU-%s","quantity":%s,"unit_price_cents":1999},"total_cents":%s,"currency":"EUR"}',
    gen_random_uuid(), g % 1000, lpad((g % 100000)::text, 5, '0'), g % 7 + 1, (g % 7 + 1) * 1999
), 'UTF8')"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_realistic_json() {
        let event = EventFactory::new(3).next_batch(1).remove(0);
        let len = event.payload.len();
        assert!((100..=200).contains(&len), "payload is {len} bytes");
        serde_json::from_slice::<serde_json::Value>(&event.payload).unwrap();
    }
}

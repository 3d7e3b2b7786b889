//! Produces records to a topic, creating it if needed, and prints where each landed.
//!
//! ```text
//! cargo run -p rivulet-client --example produce -- [ADDRESS] [TOPIC] [COUNT]
//! ```
//!
//! Defaults: `127.0.0.1:7070`, `demo`, 10.

use std::time::Instant;

use rivulet_client::{Client, ClientError, Compression, NewTopic, ProducerRecord};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:7070".to_owned());
    let topic = args.next().unwrap_or_else(|| "demo".to_owned());
    let count: usize = args.next().map_or(Ok(10), |n| n.parse())?;

    let client = Client::connect(&address).await?;
    match client.admin().create_topic(NewTopic::new(&topic, 3)).await {
        Ok(()) | Err(ClientError::AlreadyExists { .. }) => {}
        Err(err) => return Err(err.into()),
    }

    let producer = client.producer().compression(Compression::Lz4).build();
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(count);
    for i in 0..count {
        let record = ProducerRecord::new(&topic)
            .key(format!("key-{}", i % 5))
            .value(format!("message {i}"));
        deliveries.push(producer.send(record).await?);
    }
    for delivery in deliveries {
        let offset = delivery.await?;
        println!(
            "{}/{} @ {}",
            offset.topic(),
            offset.partition(),
            offset.offset()
        );
    }
    println!("{count} records in {:?}", started.elapsed());
    Ok(())
}

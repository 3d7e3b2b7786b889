//! Reads a topic as a member of a consumer group, printing records and committing after each
//! poll, until no record arrives for five seconds.
//!
//! ```text
//! cargo run -p rivulet-client --example consume -- [ADDRESS] [TOPIC] [GROUP]
//! ```
//!
//! Defaults: `127.0.0.1:7070`, `demo`, `demo-readers`.

use std::time::Duration;

use rivulet_client::{Client, OffsetReset};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:7070".to_owned());
    let topic = args.next().unwrap_or_else(|| "demo".to_owned());
    let group = args.next().unwrap_or_else(|| "demo-readers".to_owned());

    let client = Client::connect(&address).await?;
    let mut consumer = client
        .consumer()
        .group(group)
        .offset_reset(OffsetReset::Earliest)
        .auto_commit(None)
        .build();
    consumer.subscribe([&topic]).await?;

    loop {
        let records = consumer.poll(Duration::from_secs(5)).await?;
        if records.is_empty() {
            break;
        }
        for record in &records {
            let value = record
                .value()
                .map(|v| String::from_utf8_lossy(v).into_owned());
            println!(
                "{}/{} @ {}: {}",
                record.topic(),
                record.partition(),
                record.offset(),
                value.as_deref().unwrap_or("<null>")
            );
        }
        consumer.commit().await?;
    }
    consumer.close().await?;
    Ok(())
}

//! librdkafka's mock cluster as a process, for benchmarks of what tansu cannot do
//! (transactions: `kafka.exactly_once`). Creates the given topics (1 partition each), prints
//! `BOOTSTRAP host:port` and serves until killed.
//!
//!   cargo run --release --example mock_kafka -- TOPIC...
use rdkafka::mocking::MockCluster;
use std::io::Write;

fn main() {
    let mock = MockCluster::new(1).expect("mock cluster");
    for t in std::env::args().skip(1) {
        mock.create_topic(&t, 1, 1).expect("create topic");
    }
    println!("BOOTSTRAP {}", mock.bootstrap_servers());
    let _ = std::io::stdout().flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

//! Criterion benchmarks live in `engine.rs`; run them with `cargo bench -p autoscaler-benches`.

//! Runnable programs live beside this file; run one with `cargo run -p autoscaler-examples --example NAME`.

//! Parses arbitrary bytes as a JSON sample: invalid input must be an error, never a panic or
//! a sample that breaks the validation rules.

#![no_main]

use autoscaler_core::{Sample, Signal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sample) = serde_json::from_slice::<Sample>(data) else { return };
    for signal in Signal::ALL {
        if let Some(value) = sample.value(signal) {
            assert!(value.is_finite());
            assert!(value >= 0.0);
            if signal.is_percent() {
                assert!(value <= 100.0);
            }
        }
    }
});

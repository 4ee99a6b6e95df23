#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| resilient_ws_testkit::scan_skip(data));

#![allow(unused_imports)]
pub use dataplane::testkit::*;

#![allow(unused_imports)]
pub use attnet_core::testkit::*;

pub mod counting;
pub mod faults;
pub mod ignoring;
pub mod model;
pub mod moto;

pub mod counting;
pub mod ignoring;
pub mod model;
pub mod moto;

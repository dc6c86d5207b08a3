pub mod counting;
pub mod model;
pub mod moto;

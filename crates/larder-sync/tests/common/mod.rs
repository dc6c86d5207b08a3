pub mod model;
pub mod moto;

//! The runtime of nnc: data sources, initialisation, the training loop and checkpoints,
//! around the executor that runs the compiled training step.

pub mod checkpoint;
pub mod data;
pub mod init;
pub mod interchange;
pub mod plots;
pub mod train;
